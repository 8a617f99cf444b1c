"""`minisand cp SRC [NODE:]DST`: one file between the host and a node (either way) or between two nodes, streamed
through the node's runner (argv lists; the node side writes through a temporary file and a rename).

As with minikube: `NODE:/path` names a file on a node; a destination without `NODE:` is on the first node when the
source is on the host, and on the host when the source is on a node."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from minisand import ui
from minisand.cluster.context import Context
from minisand.errors import ExitCode, MinisandError, bad_input
from minisand.runner.base import CommandRunner, write_file_argv

TIMEOUT = 3600.0


@dataclass(frozen=True)
class Location:
    node: str | None  # None: this host
    path: str

    def __str__(self) -> str:
        return f"{self.node}:{self.path}" if self.node else self.path


def parse_location(text: str, nodes: list[str]) -> Location:
    head, sep, rest = text.partition(":")
    if sep and head in nodes:
        return Location(head, rest)
    return Location(None, text)


def plan(source: str, dest: str, nodes: list[str]) -> tuple[Location, Location]:
    """(from, to), checked (pure). Raises BAD_INPUT for a copy within the host or a relative node path."""
    src, dst = parse_location(source, nodes), parse_location(dest, nodes)
    if src.node is None and dst.node is None:
        dst = Location(nodes[0], dst.path)
    for loc in (src, dst):
        if loc.node is not None and not loc.path.startswith("/"):
            raise bad_input(f"{loc} is not an absolute path on node {loc.node}",
                            f"e.g. {loc.node}:/home/minisand/{Path(loc.path).name or 'file'}")
        if not loc.path:
            raise bad_input("an empty path", "give SRC and DST, e.g. `minisand cp ./a.txt /tmp/a.txt`")
    if src.node is None and not Path(src.path).expanduser().is_file():
        what = "a directory" if Path(src.path).expanduser().is_dir() else "not a file"
        raise bad_input(f"{src.path} is {what} on this host",
                        "cp copies one file; for a file on a node write NODE:/path (`minisand profile list` "
                        f"shows nodes: {', '.join(nodes)})")
    return src, dst


class Counting(io.RawIOBase):
    """Counts the bytes read through it into a progress bar."""

    def __init__(self, src: BinaryIO, bar: ui.Progress) -> None:
        self._src = src
        self._bar = bar

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        data = self._src.read(len(b))
        b[: len(data)] = data
        self._bar.update(len(data))
        return len(data)


def _failed(what: str, node: str, err: bytes, code: int) -> MinisandError:
    text = err.decode(errors="replace").strip()
    last = text.splitlines()[-1] if text else f"exit code {code}"
    if "No such file" in text or "Is a directory" in text or "Not a directory" in text:
        return bad_input(f"{what} on node {node}: {last}", "check the path (`minisand ssh -- ls -l DIR`)")
    return MinisandError(f"{what} on node {node} failed: {last}", hint="`minisand logs` shows the command log",
                         code=ExitCode.GUEST_ERROR)


def _remote_dest(runner: CommandRunner, path: str, name: str) -> PurePosixPath:
    dest = PurePosixPath(path)
    if path.endswith("/") or runner.run(["test", "-d", path], check=False, timeout=60).ok:
        dest = dest / name
    return dest


def _to_node(runner: CommandRunner, node: str, src: BinaryIO, dest: PurePosixPath, mode: int) -> None:
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    err = io.BytesIO()
    code = runner.stream(write_file_argv(dest, tmp, mode), sudo=True, stdin=src, stdout=io.BytesIO(), stderr=err,
                         timeout=TIMEOUT)
    if code != 0:
        raise _failed(f"writing {dest}", node, err.getvalue(), code)


def _from_node(runner: CommandRunner, node: str, path: str, out: BinaryIO) -> None:
    err = io.BytesIO()
    code = runner.stream(["cat", "--", path], sudo=True, stdout=out, stderr=err, timeout=TIMEOUT)
    if code != 0:
        raise _failed(f"reading {path}", node, err.getvalue(), code)


def host_to_node(runner: CommandRunner, src: Location, dst: Location) -> PurePosixPath:
    assert dst.node is not None
    path = Path(src.path).expanduser()
    dest = _remote_dest(runner, dst.path, path.name)
    bar = ui.Progress(path.name, path.stat().st_size)
    try:
        with path.open("rb") as f:
            _to_node(runner, dst.node, io.BufferedReader(Counting(f, bar)), dest, path.stat().st_mode & 0o777)
    finally:
        bar.close()
    return dest


def node_to_host(runner: CommandRunner, src: Location, dst: Location) -> Path:
    assert src.node is not None
    dest = Path(dst.path).expanduser()
    if dst.path.endswith("/") or dest.is_dir():
        dest = dest / PurePosixPath(src.path).name
    if not dest.parent.is_dir():
        raise bad_input(f"{dest.parent} is not a directory on this host", "create it first")
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("wb") as out:
            _from_node(runner, src.node, src.path, out)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def node_to_node(src_runner: CommandRunner, dst_runner: CommandRunner, src: Location, dst: Location) -> PurePosixPath:
    assert src.node is not None and dst.node is not None
    probe = src_runner.run(["test", "-f", src.path], sudo=True, check=False, timeout=60)
    if not probe.ok:  # checked first: a failed read must not leave an empty file at the destination
        raise bad_input(f"{src} is not a file on node {src.node}", "check the path (`minisand ssh -- ls -l DIR`)")
    dest = _remote_dest(dst_runner, dst.path, PurePosixPath(src.path).name)
    r_fd, w_fd = os.pipe()
    failure: list[BaseException] = []

    def read() -> None:
        with os.fdopen(w_fd, "wb") as w:
            try:
                assert src.node is not None
                _from_node(src_runner, src.node, src.path, w)
            except BaseException as exc:
                failure.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    with os.fdopen(r_fd, "rb") as r:
        try:
            _to_node(dst_runner, dst.node, r, dest, 0o644)
        finally:
            t.join(TIMEOUT)
    if failure:
        raise failure[0]
    return dest


def copy(ctx: Context, source: str, dest: str) -> None:
    from minisand.cluster import ops

    cfg = ctx.store.load(ctx.profile)
    src, dst = plan(source, dest, cfg.machine_names())
    if dst.node is None:
        ctx.home.refuse_output_inside(Path(dst.path), "the destination")
    runners: dict[str, CommandRunner] = {}
    try:
        for node in {n for n in (src.node, dst.node) if n is not None}:
            runners[node] = ops.runner_for(ctx, node)
        ctx.attach_log()
        if src.node is None:
            assert dst.node is not None
            where: object = host_to_node(runners[dst.node], src, dst)
        elif dst.node is None:
            where = node_to_host(runners[src.node], src, dst)
        else:
            where = node_to_node(runners[src.node], runners[dst.node], src, dst)
    finally:
        for r in runners.values():
            with contextlib.suppress(Exception):
                r.close()
    ui.info(f"copied {src} to {dst.node + ':' if dst.node else ''}{where}")
