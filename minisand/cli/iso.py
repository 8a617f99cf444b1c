"""`minisand iso build`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="The guest ISO.", no_args_is_help=True)


@app.command()
def build(
    output: Annotated[Path | None, typer.Option("--output", help="Also copy the ISO, its .sha256 and "
                                                                 "manifest here.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when the recipe is cached.")] = False,
) -> None:
    """Build minisand's guest ISO from Debian packages (root; debootstrap + chroot). Cached by recipe hash."""
    from minisand.iso.build import build_iso

    result = build_iso(output, force=force)
    typer.echo(f"iso: {result.iso}\nsha256: {result.sha256}\nmanifest: {result.manifest}\n"
               f"cached: {str(result.cached).lower()}\nsize: {result.size}\nseconds: {result.seconds:.1f}")
