"""`minisand cp SRC [NODE:]DST`."""

from __future__ import annotations

from typing import Annotated, cast

import typer

from minisand.cluster.context import Context


def register(app: typer.Typer) -> None:
    app.command()(cp)


def cp(
    source: Annotated[str, typer.Argument(help="A host file, or NODE:/path on a node.", metavar="SRC")],
    dest: Annotated[str, typer.Argument(help="NODE:/path or /path on the first node when SRC is on the host; a "
                                             "host path when SRC is on a node.", metavar="[NODE:]DST")],
) -> None:
    """Copy a file between this host and a node (either way), or between two nodes; streamed."""
    from minisand.cli.common import context
    from minisand.cluster import cp as copy

    copy.copy(cast(Context, context()), source, dest)
