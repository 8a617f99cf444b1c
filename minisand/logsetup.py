"""Logging: everything to the profile's log file (MINISAND_HOME/logs/<profile>.log), warnings (or all with -v)
to stderr through ui.

The root logger always has a handler (a NullHandler at least): without one, Python's last-resort handler
prints every warning a second time and an error's traceback on stderr. A log file that cannot be written
(disk full) is reported once, in one line, and then left alone."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

_FMT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_file_handler: logging.Handler | None = None
_stderr_handler: logging.Handler | None = None
_null_handler = logging.NullHandler()


class _ProfileLogHandler(logging.FileHandler):
    """A FileHandler that says once, in one line, that it could not write (instead of a traceback per record)."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        self.failed = True
        exc = sys.exc_info()[1]
        print(f"! cannot write the log {self.baseFilename} ({exc}): nothing more is written to it",
              file=sys.stderr, flush=True)


def install() -> None:
    """Idempotent: the root logger gets its NullHandler, so nothing falls through to the last-resort handler."""
    root = logging.getLogger()
    if _null_handler not in root.handlers:
        root.addHandler(_null_handler)
    logging.raiseExceptions = False


def configure(verbose: bool) -> None:
    global _stderr_handler
    install()
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    if _stderr_handler is not None:
        root.removeHandler(_stderr_handler)
        _stderr_handler = None
    if verbose:
        h = logging.StreamHandler(sys.stderr)
        h.setLevel(logging.DEBUG)
        h.setFormatter(logging.Formatter("  [%(name)s] %(message)s"))
        h.addFilter(lambda r: not r.name.startswith("minisand.ui"))
        root.addHandler(h)
        _stderr_handler = h
    for noisy in ("paramiko", "urllib3", "libvirt", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def attach_profile_log(path: Path) -> None:
    """Opens path (its folder must exist: paths.Home.ensure creates it 0700) as the log of this command."""
    global _file_handler
    detach_profile_log()
    h = _ProfileLogHandler(path, encoding="utf-8")
    h.setLevel(logging.DEBUG)
    h.setFormatter(logging.Formatter(_FMT))
    logging.getLogger().addHandler(h)
    _file_handler = h


def detach_profile_log() -> None:
    global _file_handler
    if _file_handler is not None:
        logging.getLogger().removeHandler(_file_handler)
        with contextlib.suppress(OSError):
            _file_handler.close()
        _file_handler = None


def profile_log_attached() -> bool:
    return _file_handler is not None and not getattr(_file_handler, "failed", False)
