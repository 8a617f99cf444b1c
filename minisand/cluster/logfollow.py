"""`minisand logs -f`: follow minisand's log of the profile and, while the node runs, its containerd and kubelet
journal (or, for the none driver without systemd, the daemons' log files) until Ctrl-C.

Each source's lines are printed as they arrive under a `==> source <==` header whenever the source changes (as
`tail -f` does with several files). Local files are polled twice a second; the journal is one `journalctl -f`
over the node's SSH connection, which ends when minisand closes that connection (journalctl exits when its
output goes away). Memory stays bounded: lines are passed on, never collected."""

from __future__ import annotations

import contextlib
import io
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO, cast

from minisand.cluster.context import Context
from minisand.cluster.nodes import driver_for
from minisand.drivers.base import MachineState
from minisand.errors import MinisandError
from minisand.runner.base import CommandRunner

POLL = 0.5
JOURNAL_UNITS = ("containerd", "kubelet")


class Printer:
    """Writes whole lines from several sources to one stream, with a header when the source changes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._last: str | None = None
        self._lock = threading.Lock()

    def emit(self, source: str, line: str) -> None:
        with self._lock:
            if source != self._last:
                self.out.write(f"{'' if self._last is None else chr(10)}==> {source} <==\n")
                self._last = source
            self.out.write(line if line.endswith("\n") else line + "\n")
            self.out.flush()


class LineSink(io.RawIOBase):
    """A binary stream (a runner's stdout) cut into lines for a Printer; a partial last line waits for the rest."""

    def __init__(self, printer: Printer, source: str) -> None:
        self._printer = printer
        self._source = source
        self._buf = b""

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self._buf += bytes(b)
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            self._printer.emit(self._source, line.decode(errors="replace"))
        if len(self._buf) > 65536:  # a line without end: pass it on rather than grow
            self._printer.emit(self._source, self._buf.decode(errors="replace"))
            self._buf = b""
        return len(b)


class FileFollower:
    """The new lines of one file since the last poll (reopened when it is truncated or replaced)."""

    def __init__(self, path: Path, source: str, backlog: int) -> None:
        self.path = path
        self.source = source
        self.backlog = backlog
        self._pos: int | None = None
        self._ino: int | None = None
        self._partial = ""

    def poll(self) -> list[str]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        first = self._pos is None
        if first or st.st_ino != self._ino or st.st_size < (self._pos or 0):
            self._ino, self._pos, self._partial = st.st_ino, 0, ""
        with self.path.open("r", errors="replace") as f:
            f.seek(self._pos or 0)
            text = self._partial + f.read(1 << 20)
            self._pos = f.tell()
        lines = text.split("\n")
        self._partial = lines.pop()
        if first:
            lines = list(deque(lines, maxlen=self.backlog))
        return lines


def _journal(runner: CommandRunner, printer: Printer, source: str, length: int,
             failed: Callable[[str], None]) -> None:
    argv = ["journalctl", "--follow", "--no-pager", "-o", "short-iso", "-n", str(length)]
    for unit in JOURNAL_UNITS:
        argv += ["-u", unit]
    try:
        runner.stream(argv, sudo=True, stdout=cast(BinaryIO, LineSink(printer, source)),
                      stderr=cast(BinaryIO, LineSink(printer, source)))
    except (MinisandError, OSError, EOFError) as exc:
        failed(str(exc))


def follow(ctx: Context, out: TextIO, *, length: int = 10, node: str | None = None, console: bool = False,
           stop: threading.Event | None = None) -> None:
    """Follows until stop is set or Ctrl-C; returns normally either way, with the journal's connection closed."""
    cfg = ctx.store.load(ctx.profile)
    machine = node or cfg.machine_names()[0]
    drv = driver_for(ctx, cfg, machine)
    printer = Printer(out)
    stop = stop or threading.Event()
    files = [FileFollower(ctx.home.profile_log(ctx.profile), "minisand log", length)]
    services = drv.spec.machine_dir / "services"
    if services.is_dir():
        files += [FileFollower(p, f"{machine} {p.stem}", length) for p in sorted(services.glob("*.log"))]
    cons = drv.console_log()
    if console and cons is not None:
        files.append(FileFollower(cons, f"{machine} console", length))
    runner: CommandRunner | None = None
    thread: threading.Thread | None = None
    if not services.is_dir() and drv.state() == MachineState.RUNNING:
        runner = drv.runner()
        thread = threading.Thread(target=_journal, daemon=True, name="logs-journal",
                                  args=(runner, printer, f"{machine} journal", length,
                                        lambda why: printer.emit(f"{machine} journal", f"(journal ended: {why})")))
    try:
        for f in files:  # the backlog of each file first, then the journal's
            for line in f.poll():
                printer.emit(f.source, line)
        if thread is not None:
            thread.start()
        while not stop.is_set():
            for f in files:
                for line in f.poll():
                    printer.emit(f.source, line)
            stop.wait(POLL)
    except KeyboardInterrupt:
        pass
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.close()
        if thread is not None and thread.is_alive():
            thread.join(5)
