"""containerd on the host inside a test's network namespace, in its own root/state dirs under a short temporary
directory (unix socket paths are limited to 108 bytes), configured by minisand's own ContainerdSettings and
ContainerdPlan, and driven through a LocalRunner whose commands enter the namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from minisand.cruntime.apply import Tools, wait_ready
from minisand.cruntime.config import ContainerdSettings, runc_handler
from minisand.cruntime.plan import ContainerdPlan
from minisand.cruntime.pull import Crictl
from minisand.runner.base import CommandRunner
from minisand.runner.local import LocalRunner
from tests.integration.helpers.daemons import Daemon
from tests.integration.helpers.netns import NetNS


def short_workdir(prefix: str = "msd-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def unmount_under(path: Path) -> None:
    """Lazily unmounts anything a crashed containerd left mounted under path (deepest first)."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(path) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, timeout=30)


@dataclass
class ContainerdHost:
    netns: NetNS
    workdir: Path
    bin_dir: Path  # holds containerd, ctr and containerd-shim-runc-v2
    runc: Path
    crictl_bin: Path
    daemon: Daemon | None = None
    starts: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def config_file(self) -> PurePosixPath:
        return PurePosixPath(self.workdir / "config.toml")

    @property
    def socket(self) -> str:
        return str(self.workdir / "s" / "containerd.sock")

    @property
    def tools(self) -> Tools:
        return Tools(containerd=str(self.bin_dir / "containerd"), ctr=str(self.bin_dir / "ctr"))

    @property
    def crictl(self) -> Crictl:
        return Crictl(binary=str(self.crictl_bin), endpoint=self.socket)

    @property
    def runner(self) -> LocalRunner:
        return LocalRunner(prefix=self.netns.argv())

    def settings(self, **overrides: object) -> ContainerdSettings:
        """A host without systemd: cgroupfs, restrict_oom_score_adj, private runc root and binary."""
        base = ContainerdSettings(
            sandbox_image="registry.k8s.io/pause:3.10.2", cgroup_driver="cgroupfs",
            handlers=(runc_handler("cgroupfs", root=str(self.workdir / "runc"), binary_name=str(self.runc)),),
            root_dir=str(self.workdir / "root"), state_dir=str(self.workdir / "s"), grpc_address=self.socket,
            config_path=str(self.workdir / "certs.d"), restrict_oom_score_adj=True)
        return replace(base, **overrides)  # type: ignore[arg-type]

    def start(self) -> None:
        env = {**os.environ, "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}", **self.extra_env}
        self.starts += 1
        self.daemon = Daemon(self.netns.argv(str(self.bin_dir / "containerd"), "--config", str(self.config_file)),
                             self.workdir / f"containerd-{self.starts}.log", env=env)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()

    def restart(self, runner: CommandRunner) -> None:
        """The Restarter for apply(): this host has no systemd, so stop by PID and start again."""
        self.stop()
        self.start()

    def install(self, plan: ContainerdPlan) -> None:
        """First boot: the plan's files as the image would ship them, then containerd."""
        for path, text in plan.files().items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        self.start()
        wait_ready(self.runner, self.socket, self.tools, timeout=20)

    def cleanup(self) -> None:
        self.stop()
        unmount_under(self.workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)
