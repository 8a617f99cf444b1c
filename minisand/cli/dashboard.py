"""`minisand dashboard [--url] [--port N]`."""

from __future__ import annotations

import signal
from typing import Annotated, cast

import typer

from minisand.cluster.context import Context


def register(app: typer.Typer) -> None:
    app.command()(dashboard)


def _stop_on_sigterm() -> None:
    """SIGTERM ends the dashboard like Ctrl-C: the forwarder is stopped, Headlamp left running."""
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def dashboard(
    url: Annotated[bool, typer.Option("--url", help="Print the URL instead of opening a browser.")] = False,
    port: Annotated[int | None, typer.Option("--port", help="Serve on 127.0.0.1:PORT (default: a free port).")]
    = None,
) -> None:
    """Open the cluster's dashboard (Headlamp), signed in read-only: enables the headlamp addon when it is off,
    forwards it to 127.0.0.1 and opens a browser (or prints the URL). Ctrl-C stops forwarding; Headlamp keeps
    running."""
    from minisand.cli.common import context
    from minisand.cluster import dashboard as db

    db.check_port(port)
    _stop_on_sigterm()
    db.serve(cast(Context, context()), url_only=url, port=port, echo=lambda text: typer.echo(text))
