"""`kubectl port-forward` as a child of minisand: started on a free loopback port, its output drained (and logged),
restarted when it dies (a replaced pod ends it), stopped by its PID. It runs in its own session, so the terminal's
Ctrl-C reaches minisand, which stops it; on Linux it also gets SIGTERM should minisand itself be killed."""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from minisand.errors import ExitCode, MinisandError

log = logging.getLogger(__name__)

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0
MAX_RESTARTS = 5


def forwarded_port(line: str) -> int | None:
    """The local port of kubectl's `Forwarding from 127.0.0.1:PORT -> 4466` line."""
    m = _FORWARDING.search(line)
    return int(m.group(1)) if m else None


def _die_with_parent() -> Callable[[], None] | None:
    """For the child before exec (Linux): SIGTERM when the thread that started it exits (PR_SET_PDEATHSIG).
    prctl is looked up here, in the parent, so the child only makes the call."""
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def child() -> None:
        prctl(1, int(signal.SIGTERM))

    return child


class PortForward:
    """One `kubectl port-forward ... :REMOTE` process at a time; port is its local port."""

    def __init__(self, argv: Sequence[str], start_timeout: float = START_TIMEOUT) -> None:
        self.argv = list(argv)
        self.start_timeout = start_timeout
        self.port = 0
        self.restarts = 0
        self.proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._tail: deque[str] = deque(maxlen=5)

    def start(self) -> int:
        self._ready.clear()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True, preexec_fn=_die_with_parent())
        threading.Thread(target=self._drain, args=(self.proc,), name="port-forward-output", daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise MinisandError(f"kubectl port-forward did not start: {' | '.join(self._tail) or 'no output'}",
                                    hint="`minisand kubectl -- -n headlamp get pods` shows Headlamp's pod",
                                    code=ExitCode.KUBERNETES_ERROR, reason="PORT_FORWARD_FAILED")
        log.info("kubectl port-forward (pid %d) listens on 127.0.0.1:%d", self.proc.pid, self.port)
        return self.port

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            port = forwarded_port(line)
            if port and proc is self.proc:
                self.port = port
                self._ready.set()
            elif not line.startswith("Handling connection for"):
                self._tail.append(line)
                log.info("kubectl port-forward: %s", line)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart(self) -> int:
        """After the process died: start it again (at most MAX_RESTARTS times in all)."""
        if self.restarts >= MAX_RESTARTS:
            raise MinisandError(f"kubectl port-forward stopped {self.restarts + 1} times, last: "
                                f"{' | '.join(self._tail) or 'no output'}", code=ExitCode.KUBERNETES_ERROR,
                                hint="`minisand kubectl -- -n headlamp get pods`; run `minisand dashboard` again",
                                reason="PORT_FORWARD_FAILED")
        self.restarts += 1
        log.info("kubectl port-forward exited (%s); restarting it", self.proc.returncode if self.proc else None)
        time.sleep(min(2.0 * self.restarts, 10.0))
        return self.start()

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT)
        log.info("kubectl port-forward (pid %d) stopped", proc.pid)
