"""One lock per cache destination (`<dest>.lock`), with a timeout.

The lock is an flock on the lock file, so a process that dies releases it; the holder writes its pid into the
file so that a waiter can name it. The holder removes the file while it still holds the lock; a waiter that then
gets the lock on the removed file notices (the path no longer names the file it locked) and tries again."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from minisand.errors import ExitCode, MinisandError

POLL = 0.1


def lock_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".lock")


@contextlib.contextmanager
def dest_lock(dest: Path, timeout: float, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Holds `<dest>.lock` exclusively. Waits at most `timeout` seconds for another process (or thread), then
    raises DOWNLOAD_ERROR naming the lock file and its holder. `on_wait(holder)` is called once when waiting
    starts."""
    path = lock_path(dest)
    fd = _acquire(path, dest, time.monotonic() + timeout, timeout, on_wait)
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


def _acquire(path: Path, dest: Path, deadline: float, timeout: float,
             on_wait: Callable[[str], None] | None) -> int:
    waiting = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise MinisandError(f"cannot create the download lock {path}: {e.strerror or e}",
                                hint=f"check that {path.parent} is writable", code=ExitCode.DOWNLOAD_ERROR) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
        else:
            if _names_same_file(fd, path):
                return fd
            os.close(fd)  # the holder removed it just before we locked it: lock the new one
            continue
        if time.monotonic() >= deadline:
            holder = describe_holder(path)
            raise MinisandError(f"timed out after {timeout:g}s waiting for another download of {dest.name}",
                                hint=f"{holder} holds {path}; let it finish or stop it, then retry",
                                code=ExitCode.DOWNLOAD_ERROR)
        if not waiting and on_wait is not None:
            on_wait(describe_holder(path))
        waiting = True
        time.sleep(POLL)


def _names_same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def describe_holder(path: Path) -> str:
    """`pid 123 (minisand start ...)`, or `another process` when the lock file names none."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return "another process"
    if pid == os.getpid():
        return f"pid {pid} (this minisand)"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    words = [a.decode(errors="replace") for a in argv if a]
    if words:
        words[0] = Path(words[0]).name
    if words and words[0].startswith("python") and len(words) > 1:
        words = [Path(words[1]).name, *words[2:]]
    command = " ".join(words)[:60]
    return f"pid {pid} ({command})" if command else f"pid {pid}"
