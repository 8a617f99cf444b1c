"""`minisand image load|ls|rm|pull` (minikube's `image` family)."""

from __future__ import annotations

import re
from contextlib import nullcontext
from typing import Annotated, cast

import typer

from minisand.cluster.context import Context
from minisand.errors import bad_input

app = typer.Typer(help="Load, list, remove and pull images in the cluster's container runtime.",
                  no_args_is_help=True)

FORMATS = ("short", "table", "json")
NAMESPACE = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")  # containerd's identifier rule (at most 76 chars)


def _ctx() -> Context:
    from minisand.cli.common import context

    return cast(Context, context())


@app.command()
def load(
    source: Annotated[str, typer.Argument(help="An archive file (docker-archive or OCI tar, optionally gzipped), "
                                               "`-` for stdin, or an image name on the host's docker, podman or "
                                               "containerd.", metavar="FILE|-|NAME")],
    daemon: Annotated[str | None, typer.Option("--daemon", help="Take NAME only from this host engine: docker, "
                                                                "podman or containerd.")] = None,
    namespace: Annotated[str, typer.Option("--containerd-namespace", help="The host containerd's namespace to "
                                                                          "export NAME from.")] = "default",
    output: Annotated[str, typer.Option("--output", "-o", help="text, or json: a JSON-lines event stream")] = "text",
) -> None:
    """Load an image into containerd (namespace k8s.io) on every node, streamed: pods can use it with
    imagePullPolicy: Never (or IfNotPresent)."""
    from minisand import ui
    from minisand.cluster import images, imagesource

    if output not in ("text", "json"):
        raise bad_input(f"--output {output!r} is not text or json", "use -o json")
    if len(namespace) > 76 or not NAMESPACE.fullmatch(namespace):
        raise bad_input(f"--containerd-namespace {namespace[:80]!r} is not a containerd namespace",
                        "letters and digits, joined by single '.', '_' or '-', e.g. default or k8s.io")
    ctx = _ctx()
    with ui.json_events("image load") if output == "json" else nullcontext():
        ctx.store.load(ctx.profile)  # an unknown profile is refused before stdin is read

        def opener() -> imagesource.Archive:
            return imagesource.open_source(source, engine=daemon, namespace=namespace)

        names = images.load(ctx, opener)
    if output == "text":
        typer.echo("\n".join(names))


@app.command("ls")
def ls(
    fmt: Annotated[str, typer.Option("--format", help="short (one name a line), table or json")] = "short",
) -> None:
    """List the images the CRI sees on the cluster's nodes."""
    import json

    from minisand.cluster import images

    if fmt not in FORMATS:
        raise bad_input(f"--format {fmt!r} is not one of {', '.join(FORMATS)}", "e.g. --format table")
    rows = images.list_images(_ctx())
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif fmt == "table":
        typer.echo(images.table(rows))
    else:
        typer.echo("\n".join(images.short_rows(rows)))


@app.command("rm")
def rm(
    image: Annotated[list[str], typer.Argument(help="Image names or ids.")],
) -> None:
    """Remove images from every node (crictl rmi)."""
    from minisand.cluster import images

    images.remove(_ctx(), image)


@app.command()
def pull(
    image: Annotated[list[str], typer.Argument(help="Image names.")],
) -> None:
    """Pull images on every node through its CRI (so containerd's mirrors apply)."""
    from minisand.cluster import images

    images.pull(_ctx(), image)
