"""What the user sees: steps, warnings and progress on stderr; results on stdout. Logging of everything
(including each remote command) goes to the profile's log file (minisand/logsetup.py).

Three ways to show it:
- text on a terminal: steps as lines, downloads and long waits as live progress bars (rich, imported only when a
  bar is actually shown, so `minisand --help` stays fast);
- text in a pipe: the same lines, and progress as a few plain lines (start, every quarter, end);
- `-o json` (json_events): every step, info, warning, progress and the final error as JSON lines on stdout
  (minisand/events.py; the format is in the README)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from minisand import events

log = logging.getLogger("minisand.ui")

_quiet = False
_events: events.Stream | None = None


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def json_mode() -> bool:
    return _events is not None


def _err(text: str) -> None:
    if not _quiet:
        _board_print(text)


def step(text: str, name: str | None = None) -> None:
    """A step of the command; name places it in the command's flow (events.START_FLOW etc.) for -o json."""
    log.info("step: %s", text)
    if _events is not None:
        _events.step(text, name)
    else:
        _err(f"* {text}")


def info(text: str) -> None:
    log.info("%s", text)
    if _events is not None:
        _events.info(text)
    else:
        _err(f"  {text}")


def warn(text: str) -> None:
    log.warning("%s", text)
    if _events is not None:
        _events.warning(text)
    else:
        _err(f"! {text}")


def done(text: str) -> None:
    log.info("done: %s", text)
    if _events is not None:
        _events.done(text)
    else:
        _err(f"* {text}")


@contextmanager
def timed(text: str) -> Iterator[None]:
    step(text)
    start = time.monotonic()
    yield
    log.info("timing: %s took %.2fs", text, time.monotonic() - start)


@contextmanager
def json_events(flow: str) -> Iterator[None]:
    """Within: ui output is the JSON-lines event stream of `flow` on stdout; an error ends it with an error event
    (and still reaches the CLI, which prints its one line on stderr and exits with its code)."""
    global _events
    from minisand.errors import ExitCode, MinisandError

    _events = events.Stream(sys.stdout, events.Flow(events.FLOWS[flow]))
    stream = _events
    try:
        yield
    except MinisandError as exc:
        stream.error(exc.message, int(exc.code), exc.reason, exc.hint)
        raise
    except KeyboardInterrupt:
        stream.error("interrupted", int(ExitCode.INTERRUPTED), "INTERRUPTED")
        raise
    except Exception as exc:
        stream.error(f"internal error: {type(exc).__name__}: {exc}", int(ExitCode.FAILURE), "FAILURE")
        raise
    finally:
        _events = None


# -- progress -----------------------------------------------------------------------------------------------------
def _tty() -> bool:
    return sys.stderr.isatty() and not _quiet


class Progress:
    """Progress of one transfer of `total` bytes (None: unknown). A live bar on a terminal, a few plain lines in a
    pipe, download.progress events with -o json. Safe to use from several threads at once."""

    PLAIN_STEPS = 4  # a pipe gets a line at each quarter
    EVENT_INTERVAL = 0.5  # seconds between download.progress events

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._start = time.monotonic()
        self._last = 0.0
        self._quarter = 0
        self._task: int | None = None
        self._closed = False
        if _events is not None:
            _events.progress(label, 0, total)
        elif _tty():
            self._task = _board().add(label, total)
        elif not _quiet:
            size = f" ({total / 1e6:.1f} MB)" if total else ""
            _err(f"    > {label}{size} ...")

    def update(self, n: int) -> None:
        self.done += n
        if _events is not None:
            now = time.monotonic()
            if now - self._last >= self.EVENT_INTERVAL:
                self._last = now
                _events.progress(self.label, self.done, self.total)
        elif self._task is not None:
            _board().advance(self._task, n)
        elif self.total and not _quiet:
            quarter = min(self.PLAIN_STEPS, self.done * self.PLAIN_STEPS // self.total)
            if 0 < quarter < self.PLAIN_STEPS and quarter > self._quarter:
                self._quarter = quarter
                _err(f"    > {self.label}: {100 * quarter // self.PLAIN_STEPS}% of {self.total / 1e6:.1f} MB")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        seconds = time.monotonic() - self._start
        if _events is not None:
            _events.progress(self.label, self.done, self.total or self.done)
        elif self._task is not None:
            _board().remove(self._task)
        elif not _quiet:
            _err(f"    > {self.label}: {self.done / 1e6:.1f} MB in {seconds:.1f}s")


class Waiting:
    """A long wait: a live spinner with the elapsed time and the latest status on a terminal; in a pipe a line
    every `every` seconds; with -o json an info event as often."""

    def __init__(self, text: str, every: float = 30.0) -> None:
        self.text = text
        self.every = every
        self._start = time.monotonic()
        self._last_line = self._start
        self._task: int | None = _board().add_spinner(text) if (_events is None and _tty()) else None

    def update(self, status: str) -> None:
        now = time.monotonic()
        if self._task is not None:
            _board().describe(self._task, f"{self.text} {status}")
            return
        if now - self._last_line < self.every:
            return
        self._last_line = now
        line = f"still waiting ({now - self._start:.0f}s): {status}"
        if _events is not None:
            _events.info(line)
        elif not _quiet:
            _err(f"    > {line}")

    def close(self) -> None:
        if self._task is not None:
            _board().remove(self._task)
            self._task = None


@contextmanager
def waiting(text: str, every: float = 30.0) -> Iterator[Waiting]:
    w = Waiting(text, every)
    try:
        yield w
    finally:
        w.close()


# -- the live display (rich, lazily) ------------------------------------------------------------------------------
class _Board:
    """One rich live display on stderr shared by every bar and spinner shown at once; it starts with the first and
    stops (leaving nothing on screen) with the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: Any = None
        self._tasks = 0

    def _ensure(self) -> Any:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                ProgressColumn,
                SpinnerColumn,
                Task,
                TextColumn,
                TimeElapsedColumn,
                TransferSpeedColumn,
            )
            from rich.text import Text

            class Transfer(ProgressColumn):
                """Bytes and speed for a transfer; nothing for a wait (a task without a total)."""

                def __init__(self) -> None:
                    super().__init__()
                    self._size, self._speed = DownloadColumn(), TransferSpeedColumn()

                def render(self, task: Task) -> Text:
                    if task.total is None:
                        return Text("")
                    return Text.assemble(self._size.render(task), " ", self._speed.render(task))

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), Transfer(),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._progress.start()
        return self._progress

    def add(self, label: str, total: int | None) -> int:
        with self._lock:
            self._tasks += 1
            task: int = self._ensure().add_task(label, total=total)
            return task

    def add_spinner(self, text: str) -> int:
        with self._lock:
            self._tasks += 1
            task: int = self._ensure().add_task(text, total=None, start=True)
            return task

    def advance(self, task: int, n: int) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.advance(task, n)

    def describe(self, task: int, text: str) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.update(task, description=text[:200])

    def remove(self, task: int) -> None:
        with self._lock:
            if self._progress is None:
                return
            self._progress.remove_task(task)
            self._tasks -= 1
            if self._tasks <= 0:
                self._progress.stop()
                self._progress = None
                self._tasks = 0

    def print(self, text: str) -> bool:
        """Prints above a running display; False when none runs."""
        with self._lock:
            if self._progress is None:
                return False
            self._progress.console.print(text, markup=False, highlight=False)
            return True


_BOARD: _Board | None = None


def _board() -> _Board:
    global _BOARD
    if _BOARD is None:
        _BOARD = _Board()
    return _BOARD


def _board_print(text: str) -> None:
    if _BOARD is not None and _BOARD.print(text):
        return
    print(text, file=sys.stderr, flush=True)
