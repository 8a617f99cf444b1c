"""`minisand dashboard --url` run in the background the way a user's script would: read the URL line it prints,
use it, stop it by its PID (SIGTERM: like Ctrl-C, it stops its forwarder and leaves Headlamp running)."""

from __future__ import annotations

import contextlib
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import requests


class DashboardProcess:
    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path, timeout: float = 1800.0) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log = log
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.seconds = 0.0  # from start to the URL line
        self.returncode: int | None = None

    def __enter__(self) -> DashboardProcess:
        t0 = time.monotonic()
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                         env=self.env, text=True)
        try:
            self.url = self._first_line()
        except BaseException:
            self.stop()
            raise
        self.seconds = round(time.monotonic() - t0, 1)
        return self

    def _first_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                if sel.select(timeout=1.0):
                    line = self.proc.stdout.readline()
                    if line.startswith("http://"):
                        return line.strip()
                    if not line:
                        break
                elif self.proc.poll() is not None:
                    break
        finally:
            sel.close()
        raise AssertionError(f"`minisand dashboard --url` printed no URL (exit {self.proc.poll()}): "
                             f"{self.log.read_text()[-3000:]}")

    def fetch(self, path: str = "") -> requests.Response:
        with requests.Session() as http:
            http.trust_env = False
            return http.get(self.url + path, timeout=30)

    def stop(self) -> int | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self.returncode = proc.returncode if proc else None
            return self.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.returncode = proc.wait(30)
        with contextlib.suppress(OSError):
            if proc.stdout is not None:
                proc.stdout.close()
        return self.returncode

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def port_forward_pids(kubeconfig: Path) -> list[int]:
    """kubectl port-forward processes using this kubeconfig (the dashboard's forwarder)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"port-forward" in argv and str(kubeconfig).encode() in argv:
            out.append(int(d.name))
    return out
