"""Logging: everything to the profile's log file (MINISAND_HOME/logs/<profile>.log), warnings (or all with -v)
to stderr through ui."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_FMT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_file_handler: logging.Handler | None = None


def configure(verbose: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    if verbose:
        h = logging.StreamHandler(sys.stderr)
        h.setLevel(logging.DEBUG)
        h.setFormatter(logging.Formatter("  [%(name)s] %(message)s"))
        h.addFilter(lambda r: not r.name.startswith("minisand.ui"))
        root.addHandler(h)
    for noisy in ("paramiko", "urllib3", "libvirt", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def attach_profile_log(path: Path) -> None:
    global _file_handler
    root = logging.getLogger()
    if _file_handler is not None:
        root.removeHandler(_file_handler)
        _file_handler.close()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    h = logging.FileHandler(path, encoding="utf-8")
    h.setLevel(logging.DEBUG)
    h.setFormatter(logging.Formatter(_FMT))
    root.addHandler(h)
    _file_handler = h
