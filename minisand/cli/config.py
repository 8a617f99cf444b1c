"""`minisand config set|get|unset|view`: global defaults for later starts, and the profile's stored config."""

from __future__ import annotations

import json
from typing import Annotated, cast

import typer

from minisand.cluster.context import Context
from minisand.errors import ExitCode, MinisandError

app = typer.Typer(help="Get and set defaults for later starts; view the profile's configuration.",
                  no_args_is_help=True)


def _ctx() -> Context:
    from minisand.cli.common import context

    return cast(Context, context())


@app.command("set", context_settings={"ignore_unknown_options": True})  # VALUE may start with -
def set_(key: Annotated[str, typer.Argument(help="Setting name (see `config view`).")],
         value: Annotated[str, typer.Argument(help="Value (lists: comma-separated).")]) -> None:
    """Set a default used by later `minisand start`s (checked like the start flag of the same name)."""
    from minisand.cluster.options import setting_value

    checked = setting_value(key, value)  # raises before anything is written
    _ctx().settings.set(key, checked)


@app.command()
def get(key: Annotated[str, typer.Argument(help="Setting name.")]) -> None:
    """Print a default."""
    from minisand.cluster.options import setting_key

    setting_key(key)
    value = _ctx().settings.get(key)
    if value is None:
        raise MinisandError(f"{key} is not set", hint=f"set it with `minisand config set {key} VALUE`",
                            code=ExitCode.BAD_INPUT)
    typer.echo(",".join(value) if isinstance(value, list) else value)


@app.command()
def unset(key: Annotated[str, typer.Argument(help="Setting name.")]) -> None:
    """Remove a default."""
    from minisand.cluster.options import setting_key

    setting_key(key)
    _ctx().settings.unset(key)


@app.command()
def view(output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text") -> None:
    """Show the defaults and, when the profile exists, its stored configuration (mirrors included)."""
    from minisand.cluster.options import SETTABLE
    from minisand.config.model import to_dict

    if output not in ("text", "json"):
        from minisand.errors import bad_input

        raise bad_input(f"--output {output!r} is not text or json", "use -o json")
    ctx = _ctx()
    settings = ctx.settings.load()
    profile = to_dict(ctx.store.load(ctx.profile)) if ctx.store.exists(ctx.profile) else None
    if output == "json":
        typer.echo(json.dumps({"defaults": settings, "profile": profile}, indent=2, sort_keys=True))
        return
    typer.echo("Defaults (`minisand config set`):")
    if not settings:
        typer.echo("  (none)")
    for k in sorted(settings):
        v = settings[k]
        typer.echo(f"  - {k}: {','.join(v) if isinstance(v, list) else v}")
    typer.echo(f"Settable keys: {', '.join(SETTABLE)}")
    if profile is None:
        typer.echo(f"Profile {ctx.profile!r}: not created yet")
        return
    typer.echo(f"Profile {ctx.profile!r}:")
    _print(profile, "  ")


def _print(data: dict[str, object], indent: str) -> None:
    for k in sorted(data):
        v = data[k]
        if isinstance(v, dict):
            typer.echo(f"{indent}{k}:")
            _print(v, indent + "  ")
        elif isinstance(v, list):
            typer.echo(f"{indent}{k}: {', '.join(map(str, v)) if v else '[]'}")
        else:
            typer.echo(f"{indent}{k}: {'' if v is None else v}")
