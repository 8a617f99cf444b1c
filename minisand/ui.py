"""What the user sees: steps, warnings and progress on stderr; results on stdout. Logging of everything
(including each remote command) goes to the profile's log file (minisand/logsetup.py)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("minisand.ui")

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def _err(text: str) -> None:
    if not _quiet:
        print(text, file=sys.stderr, flush=True)


def step(text: str) -> None:
    log.info("step: %s", text)
    _err(f"* {text}")


def info(text: str) -> None:
    log.info("%s", text)
    _err(f"  {text}")


def warn(text: str) -> None:
    log.warning("%s", text)
    _err(f"! {text}")


def done(text: str) -> None:
    log.info("done: %s", text)
    _err(f"* {text}")


@contextmanager
def timed(text: str) -> Iterator[None]:
    step(text)
    start = time.monotonic()
    yield
    log.info("timing: %s took %.2fs", text, time.monotonic() - start)


class Progress:
    """A single-line byte progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._tty = sys.stderr.isatty() and not _quiet
        self._last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self._tty and now - self._last > 0.1:
            self._last = now
            if self.total:
                pct = 100 * self.done / self.total
                bar = "#" * int(pct / 4)
                sys.stderr.write(f"\r    > {self.label}: [{bar:<25}] {pct:5.1f}% of {self.total / 1e6:.1f} MB")
            else:
                sys.stderr.write(f"\r    > {self.label}: {self.done / 1e6:.1f} MB")
            sys.stderr.flush()

    def close(self) -> None:
        if self._tty:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()
