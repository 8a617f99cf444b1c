"""Saving a qemu machine's state to a file and loading it back with qemu's migration over QMP.

qemu 7.2 (Debian 12) has no `file:` migration URI, and `exec:` URIs run a shell; so minisand opens the state file
itself and hands qemu the open descriptor over the QMP socket (`getfd`, SCM_RIGHTS), then migrates to or from
`fd:NAME`. No path or shell string reaches qemu.

Saving stops the vCPUs first (`stop`): the state is one consistent snapshot, written in a single pass (with the
bandwidth limit lifted, qemu's default 32 MiB/s would make a 1 GiB state take half a minute). Loading leaves the
machine paused (it was saved paused); the caller checks the file's digest, then `cont`s it."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from minisand.drivers.qemu.qmp import QMP, QMPError

SAVE_FD = "minisand-save"
LOAD_FD = "minisand-load"
UNLIMITED = 1 << 40  # bytes/s: "as fast as the file takes it"


class MigrationError(Exception):
    pass


def save(qmp_socket: Path, dest: Path, timeout: float) -> dict[str, Any]:
    """Writes the machine's state to dest (created 0600). The machine is left stopped (`postmigrate`); on failure
    it is resumed. Returns qemu's final query-migrate answer."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with QMP(qmp_socket, timeout=30) as q:
            q.execute("stop")
            try:
                q.execute("migrate-set-parameters", **{"max-bandwidth": UNLIMITED})
                q.send_fd(SAVE_FD, fd)
                q.execute("migrate", uri=f"fd:{SAVE_FD}")
                return wait(q, timeout)
            except (MigrationError, QMPError):
                with contextlib.suppress(QMPError):
                    q.execute("cont")
                raise
    finally:
        os.close(fd)


def load(qmp_socket: Path, src: Path, timeout: float) -> dict[str, Any]:
    """Feeds src to a qemu started with `-incoming defer`; returns once the state is loaded (machine paused)."""
    fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with QMP(qmp_socket, timeout=30) as q:
            q.send_fd(LOAD_FD, fd)
            q.execute("migrate-incoming", uri=f"fd:{LOAD_FD}")
            return wait(q, timeout)
    finally:
        os.close(fd)


def wait(q: QMP, timeout: float) -> dict[str, Any]:
    """Polls query-migrate (bounded) until the migration completed; raises MigrationError if it failed, was
    cancelled, or ran out of time (then it is cancelled)."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        info: dict[str, Any] = q.execute("query-migrate") or {}
        status = str(info.get("status", ""))
        if status == "completed":
            return info
        if status in ("failed", "cancelled"):
            raise MigrationError(str(info.get("error-desc", f"migration {status}")))
        if time.monotonic() > deadline:
            with contextlib.suppress(QMPError):
                q.execute("migrate_cancel")
            raise MigrationError(f"migration did not complete within {timeout:.0f}s (status {status or 'none'})")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def run_state(q: QMP) -> str:
    status: dict[str, Any] = q.execute("query-status") or {}
    return str(status.get("status", ""))


def cont(qmp_socket: Path, timeout: float = 30.0) -> None:
    """Starts the vCPUs of a loaded machine and waits (bounded) until qemu says it runs."""
    with QMP(qmp_socket, timeout=30) as q:
        q.execute("cont")
        deadline = time.monotonic() + timeout
        while (state := run_state(q)) != "running":
            if time.monotonic() > deadline:
                raise MigrationError(f"the machine did not run within {timeout:.0f}s (status {state})")
            time.sleep(0.05)
