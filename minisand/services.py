"""Starting and stopping the node's services (containerd, kubelet): systemd where it is PID 1 (the guest ISO, most
hosts), or a small supervisor of background processes for hosts without systemd (the none driver here)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from minisand import procs
from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandRunner


class Services(Protocol):
    def start(self, name: str) -> None: ...

    def stop(self, name: str) -> None: ...

    def restart(self, name: str) -> None: ...

    def is_active(self, name: str) -> bool: ...

    def enable(self, name: str) -> None: ...

    def daemon_reload(self) -> None: ...


class SystemdServices:
    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def start(self, name: str) -> None:
        self.runner.run(["systemctl", "start", name], sudo=True, timeout=180)

    def stop(self, name: str) -> None:
        self.runner.run(["systemctl", "stop", name], sudo=True, timeout=180, check=False)

    def restart(self, name: str) -> None:
        self.runner.run(["systemctl", "restart", name], sudo=True, timeout=180)

    def is_active(self, name: str) -> bool:
        return self.runner.run(["systemctl", "is-active", "--quiet", name], sudo=True, check=False,
                               timeout=30).ok

    def enable(self, name: str) -> None:
        self.runner.run(["systemctl", "enable", name], sudo=True, timeout=60)

    def daemon_reload(self) -> None:
        self.runner.run(["systemctl", "daemon-reload"], sudo=True, timeout=60)


@dataclass(frozen=True)
class ProcessDef:
    argv: Callable[[], Sequence[str]]  # computed at start (e.g. kubelet flags kubeadm wrote)
    ready: Callable[[], bool] | None = None


class ProcessServices:
    """Background processes with pidfiles and log files, started with an optional prefix (nsenter into a
    network namespace). Used by the none driver on hosts whose PID 1 is not systemd."""

    def __init__(self, state_dir: Path, prefix: Sequence[str], defs: dict[str, ProcessDef]) -> None:
        self.state_dir = state_dir
        self.prefix = list(prefix)
        self.defs = defs

    def _pidfile(self, name: str) -> Path:
        return self.state_dir / f"{name}.pid"

    def _pid(self, name: str) -> int | None:
        pid = procs.read_pid(self._pidfile(name))
        return pid if pid is not None and procs.alive(pid, name) else None

    def start(self, name: str) -> None:
        if self._pid(name) is not None:
            return
        d = self.defs.get(name)
        if d is None:
            raise MinisandError(f"no definition for service {name}", code=ExitCode.GUEST_ERROR)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        proc = procs.spawn_daemon([*self.prefix, *d.argv()], self.state_dir / f"{name}.log")
        self._pidfile(name).write_text(f"{proc.pid}\n")
        if d.ready is not None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise MinisandError(f"{name} exited with code {proc.returncode} right after start",
                                        hint=f"see {self.state_dir / (name + '.log')}", code=ExitCode.RUNTIME_ERROR)
                if d.ready():
                    return
                time.sleep(0.1)
            raise MinisandError(f"{name} did not become ready within 60s",
                                hint=f"see {self.state_dir / (name + '.log')}", code=ExitCode.RUNTIME_ERROR)

    def stop(self, name: str) -> None:
        pid = self._pid(name)
        if pid is not None:
            procs.kill(pid, name, grace=20)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        self._pidfile(name).unlink(missing_ok=True)

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def is_active(self, name: str) -> bool:
        return self._pid(name) is not None

    def enable(self, name: str) -> None:
        return None

    def daemon_reload(self) -> None:
        return None


def systemd_is_init() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False
