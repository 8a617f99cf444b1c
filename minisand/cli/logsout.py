"""Where `minisand logs` writes (stdout or --file) and whether it follows (-f)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TextIO

from minisand.cluster.context import Context
from minisand.errors import bad_input


def _open(ctx: Context, file: str | None) -> TextIO:
    if file is None:
        return sys.stdout
    path = Path(file).expanduser()
    ctx.home.refuse_output_inside(path, "--file")
    if path.is_dir():
        raise bad_input(f"--file {file} is a directory", "name a file, e.g. --file ./minisand-logs.txt")
    if not path.parent.is_dir():
        raise bad_input(f"--file {file}: {path.parent} is not a directory", "create it first")
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        raise bad_input(f"--file {file}: {exc.strerror}", "choose a writable path") from None


def write_logs(ctx: Context, file: str | None, *, follow: bool, length: int, node: str | None, console: bool,
               commands_only: bool) -> None:
    if follow and commands_only:
        raise bad_input("--follow shows every line of the sources it follows", "drop --commands, or --follow")
    ctx.store.load(ctx.profile)  # an unknown profile is refused before --file is created
    out = _open(ctx, file)
    try:
        if follow:
            from minisand.cluster.logfollow import follow as run_follow

            run_follow(ctx, out, length=length, node=node, console=console)
        else:
            from minisand.cluster import logs as lg

            out.write(lg.collect(ctx, length=length, node=node, console=console, commands_only=commands_only) + "\n")
    finally:
        if out is not sys.stdout:
            with contextlib.suppress(OSError):
                out.close()
