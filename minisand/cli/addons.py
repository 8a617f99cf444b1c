"""`minisand addons list|enable|disable`."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Annotated, cast

import typer

from minisand.cluster.context import Context
from minisand.errors import bad_input

app = typer.Typer(help="List, enable and disable addons.", no_args_is_help=True)


def _ctx() -> Context:
    from minisand.cli.common import context

    return cast(Context, context())


def _output(output: str, flow: str) -> AbstractContextManager[None]:
    if output not in ("text", "json"):
        raise bad_input(f"--output {output!r} is not text or json", "use -o json")
    if output == "text":
        return nullcontext()
    from minisand import ui

    return ui.json_events(flow)


@app.command("list")
def list_(output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text") -> None:
    """List addons and whether they are enabled in this profile."""
    import json

    from minisand.cluster import addons as manage

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
    output: Annotated[str, typer.Option("--output", "-o", help="text, or json: a JSON-lines event stream")] = "text",
) -> None:
    """Enable an addon (installs, configures and verifies it on the running cluster)."""
    from minisand.cluster import addons as manage

    with _output(output, "addons enable"):
        manage.enable(_ctx(), name)


@app.command()
def disable(
    name: Annotated[str, typer.Argument(help="Addon name.")],
    force: Annotated[bool, typer.Option("--force", help="Delete pods that still use the addon.")] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="text, or json: a JSON-lines event stream")] = "text",
) -> None:
    """Disable an addon and remove what it installed."""
    from minisand.cluster import addons as manage

    with _output(output, "addons disable"):
        manage.disable(_ctx(), name, force=force)
