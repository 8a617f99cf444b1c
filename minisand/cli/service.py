"""`minisand service NAME [-n NS] [--url] [--https]`."""

from __future__ import annotations

import os
from typing import Annotated, cast

import typer

from minisand.cluster.context import Context


def register(app: typer.Typer) -> None:
    app.command()(service)


def service(
    name: Annotated[str, typer.Argument(help="The Service's name.")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="The Service's namespace.")] = "default",
    url: Annotated[bool, typer.Option("--url", help="Print the URLs only; open no browser.")] = False,
    https: Annotated[bool, typer.Option("--https", help="https:// URLs instead of http://.")] = False,
) -> None:
    """Make a NodePort Service reachable from this host and print (or open) its URL, one per port."""
    from minisand import ui
    from minisand.cli.common import context
    from minisand.cluster import service as svc

    found = svc.endpoints(cast(Context, context()), name, namespace, https)
    for ep in found:
        typer.echo(ep.url)
    if url:
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        import webbrowser

        first = next((e for e in found if e.scheme.startswith("http")), None)
        if first is not None:
            ui.step(f"Opening service {namespace}/{name} in the default browser ...")
            webbrowser.open(first.url)
