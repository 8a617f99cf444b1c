"""`minisand addons list|enable|disable`."""

from __future__ import annotations

from typing import Annotated, cast

import typer

from minisand.cluster.context import Context
from minisand.errors import bad_input

app = typer.Typer(help="List, enable and disable addons.", no_args_is_help=True)


def _ctx() -> Context:
    from minisand.cli.app import context

    return cast(Context, context())


@app.command("list")
def list_(output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text") -> None:
    """List addons and whether they are enabled in this profile."""
    import json

    from minisand.addons import manage

    if output not in ("text", "json"):
        raise bad_input(f"--output {output!r} is not text or json", "use -o json")
    rows = manage.list_addons(_ctx())
    if output == "json":
        typer.echo(json.dumps({r["name"]: {k: v for k, v in r.items() if k != "name"} for r in rows}, indent=2))
        return
    width = max(len(str(r["name"])) for r in rows) + 2
    typer.echo(f"{'ADDON':<{width}}{'STATUS':<11}{'RUNTIME':<12}DESCRIPTION")
    for r in rows:
        typer.echo(f"{r['name']!s:<{width}}{r['status']!s:<11}{r['runtime']!s:<12}{r['description']}")


@app.command()
def enable(
    name: Annotated[str, typer.Argument(help="Addon name.")],
) -> None:
    """Enable an addon (installs, configures and verifies it on the running cluster)."""
    from minisand.addons import manage

    manage.enable(_ctx(), name)


@app.command()
def disable(
    name: Annotated[str, typer.Argument(help="Addon name.")],
    force: Annotated[bool, typer.Option("--force", help="Delete pods that still use the addon.")] = False,
) -> None:
    """Disable an addon and remove what it installed."""
    from minisand.addons import manage

    manage.disable(_ctx(), name, force=force)
