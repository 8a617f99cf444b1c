"""Host processes minisand owns (qemu, hyperkit, the none driver's containerd and kubelet): started detached from
the caller, pidfiles, liveness, bounded kills."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path, PurePath


def spawn_daemon(argv: Sequence[str], logfile: Path) -> subprocess.Popen[bytes]:
    """Starts a long-lived process in its own session, with stdin from /dev/null and stdout and stderr appended to
    logfile: it never holds the caller's terminal or pipes (a script running `minisand start | tee` gets EOF
    when minisand exits), and the caller's Ctrl-C does not reach it."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("ab") as log:
        log.write(f"--- {time.strftime('%F %T')} starting: {shlex.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)


def log_tail(logfile: Path, lines: int = 3) -> str:
    try:
        text = logfile.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(ln for ln in text.strip().splitlines()[-lines:] if not ln.startswith("--- "))


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def mentions(argv: Sequence[str], marker: str) -> bool:
    """marker is one of argv's words: a whole argument, a program's file name (/usr/bin/kubelet), or one item of
    a comma/equals list (qemu's `-name minisand-dev,process=minisand-dev`). `minisand-dev` is not a word of
    `minisand-dev-m02`, nor `kubelet` of `/var/lib/kubelet/config.yaml`."""
    for a in argv:
        if a == marker or PurePath(a).name == marker:
            return True
        if marker in re.split(r"[,=]", a):
            return True
    return False


def alive(pid: int, must_contain: str | None = None) -> bool:
    """True when pid runs and (if given) must_contain is one of its command line's words (see mentions): the
    guard against a reused PID."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    if must_contain is None:
        return True
    return mentions(cmdline(pid), must_contain)


def wait_gone(pid: int, timeout: float, must_contain: str | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, must_contain):
            return True
        time.sleep(0.1)
    return not alive(pid, must_contain)


def kill(pid: int, must_contain: str | None = None, grace: float = 5.0) -> None:
    if not alive(pid, must_contain):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, grace, must_contain):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid, 5.0, must_contain)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True
