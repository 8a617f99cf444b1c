"""Small filesystem helpers: atomic writes (tmp + fsync + rename), private folders."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def make_dirs(path: Path, mode: int = 0o700) -> None:
    """mkdir -p where every folder created (not only the last, as Path.mkdir does) gets mode."""
    missing = []
    p = path
    while not os.path.lexists(p) and p.parent != p:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=mode, exist_ok=True)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Writes a new file beside path and renames it over path: a symlink at path is replaced, not followed
    (callers that must keep a link resolve it first). Missing folders are created 0700."""
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write (a full disk) names no file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write(path, text.encode(), mode)
