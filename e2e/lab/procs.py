"""Child processes of the lab: started with their output in a log file, found and stopped by PID only."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import time
from pathlib import Path

from e2e.lab.errors import LabError
from minisand import procs

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the process that started the lab dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn(argv: list[str], logfile: Path, *, env: dict[str, str] | None = None, detach: bool = False,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start argv in its own session, stdout+stderr appended to logfile.

    detach=False (the Python API) ties the child's life to this process as well (PR_SET_PDEATHSIG), so a
    crashed test run cannot leave it behind; detach=True (`python -m e2e.lab up`) leaves it running until `down`.
    """
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=cwd, start_new_session=True,
                                preexec_fn=None if detach else _die_with_parent)
    return proc


def wait_listening(port: int, pid: int, logfile: Path, what: str, timeout: float = 20.0) -> None:
    """Bounded wait until 127.0.0.1:port accepts connections; fail early if pid exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            tail = logfile.read_text(errors="replace").splitlines()[-10:] if logfile.exists() else []
            raise LabError(f"{what} exited during start-up:\n" + "\n".join(tail), f"see {logfile}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise LabError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s", f"see {logfile}")


def wait_for_line(logfile: Path, text: str, pid: int, what: str, timeout: float = 20.0) -> None:
    """Bounded wait until logfile contains text (a child announcing it is ready); fail early if pid exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = logfile.read_text(errors="replace") if logfile.exists() else ""
        if text in content:
            return
        if not procs.alive(pid):
            raise LabError(f"{what} exited during start-up:\n" + "\n".join(content.splitlines()[-10:]),
                           f"see {logfile}")
        time.sleep(0.1)
    raise LabError(f"{what} did not become ready within {timeout:.0f}s", f"see {logfile}")


def stop(pid: int, marker: str, grace: float = 5.0, child: subprocess.Popen[bytes] | None = None) -> bool:
    """SIGTERM (then SIGKILL) pid if it still runs the command naming marker; reap it when it is our child.
    True when it is gone."""
    procs.kill(pid, must_contain=marker, grace=grace)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=grace)
    return not procs.alive(pid, must_contain=marker)


def alive(pid: int, marker: str) -> bool:
    return procs.alive(pid, must_contain=marker)


def free_port() -> int:
    return procs.free_port("127.0.0.1")
