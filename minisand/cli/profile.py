"""`minisand profile list`."""

from __future__ import annotations

import json
from typing import Annotated, cast

import typer

from minisand.cluster.context import Context

app = typer.Typer(help="Profiles (one cluster each).", no_args_is_help=True)


@app.command("list")
def list_(output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text") -> None:
    """List profiles with their driver, runtime, Kubernetes version, nodes and state."""
    from minisand.cli.common import check_output, context
    from minisand.cluster import ops

    check_output(output)
    rows = ops.profile_rows(cast(Context, context()))
    if output == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("No profiles. Create one with `minisand start`.")
        return
    cols = ("name", "driver", "runtime", "kubernetes", "nodes", "status", "active")
    table = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) + 2 for i, c in enumerate(cols)]
    typer.echo("".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for t in table:
        typer.echo("".join(x.ljust(w) for x, w in zip(t, widths, strict=True)).rstrip())
