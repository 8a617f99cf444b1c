"""`minisand start`. Its flags are built from the option table (minisand/cluster/options.py); --dry-run and
-o are this command's own."""

from __future__ import annotations

import inspect
from typing import Annotated, Any, cast

import typer

from minisand.cluster.options import OPTIONS, Option


def register(app: typer.Typer) -> None:
    app.command(name="start")(start)


def _parameter(opt: Option) -> inspect.Parameter:
    names = (f"{opt.flag}/{opt.off}" if opt.off else opt.flag, *opt.aliases)
    annotation: Any
    if opt.kind == "switch":
        annotation = Annotated[bool | None, typer.Option(*names, help=opt.help)]
    elif opt.kind == "list":
        annotation = Annotated[list[str] | None, typer.Option(*names, help=opt.help, metavar=opt.metavar)]
    else:
        annotation = Annotated[str | None, typer.Option(*names, help=opt.help, metavar=opt.metavar)]
    return inspect.Parameter(opt.attr, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def _signature() -> inspect.Signature:
    own = [
        inspect.Parameter("dry_run", inspect.Parameter.KEYWORD_ONLY, default=False,
                          annotation=Annotated[bool, typer.Option("--dry-run", help="Print the plan; create "
                                                                                    "nothing.")]),
        inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, default="text",
                          annotation=Annotated[str, typer.Option("--output", "-o", metavar="FORMAT",
                                                                 help="text, or json: with --dry-run the plan as JSON, "
                                                                      "else a JSON-lines event stream.")]),
    ]
    return inspect.Signature([*(_parameter(o) for o in OPTIONS), *own])


def start(*, dry_run: bool = False, output: str = "text", **flags: Any) -> None:
    """Start a local Kubernetes cluster (create or fix its machines, then reconcile everything)."""
    from minisand.cli.common import context
    from minisand.cluster import start as start_ops
    from minisand.cluster.context import Context
    from minisand.cluster.startconfig import StartRequest

    if output not in ("text", "json"):
        from minisand.errors import bad_input

        raise bad_input(f"--output {output!r} is not text or json", "use -o json")
    from contextlib import nullcontext

    from minisand import ui

    with ui.json_events("start") if output == "json" and not dry_run else nullcontext():
        req = StartRequest(**flags)
        ctx = cast(Context, context())
        if dry_run:
            from minisand.cluster import dryrun

            typer.echo(dryrun.render(dryrun.build(ctx, req), output))
            return
        start_ops.run(ctx, req)


start.__signature__ = _signature()  # type: ignore[attr-defined]  # typer reads the flags from here
