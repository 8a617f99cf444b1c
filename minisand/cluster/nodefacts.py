"""Facts about a node that decide how it is configured: its init system, cgroup layout, privileges, containerd
version and address. Read once per start through the node's runner."""

from __future__ import annotations

from dataclasses import dataclass

from minisand.runner.base import CommandRunner

CAP_SYS_RESOURCE = 24


@dataclass(frozen=True)
class NodeFacts:
    systemd: bool
    cgroup_v2: bool
    cap_sys_resource: bool
    containerd_version: str
    ip: str
    kernel: str

    @property
    def cgroup_driver(self) -> str:
        return "systemd" if self.systemd and self.cgroup_v2 else "cgroupfs"


def _ip(runner: CommandRunner) -> str:
    res = runner.run(["ip", "-4", "-o", "route", "get", "192.0.2.1"], check=False, timeout=30)
    words = res.out.split()
    if "src" in words:
        return words[words.index("src") + 1]
    res = runner.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], check=False, timeout=30)
    for line in res.out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return "127.0.0.1"


def gather(runner: CommandRunner) -> NodeFacts:
    init = runner.run(["cat", "/proc/1/comm"], check=False, timeout=30).out.strip()
    fstype = runner.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"], check=False, timeout=30).out.strip()
    status = runner.run(["cat", "/proc/self/status"], sudo=True, check=False, timeout=30).out
    cap_eff = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("CapEff:")), "0")
    version = runner.run(["containerd", "--version"], check=False, timeout=30).out.strip()
    kernel = runner.run(["uname", "-r"], check=False, timeout=30).out.strip()
    return NodeFacts(systemd=init == "systemd", cgroup_v2=fstype == "cgroup2fs",
                     cap_sys_resource=bool(int(cap_eff, 16) >> CAP_SYS_RESOURCE & 1), containerd_version=version,
                     ip=_ip(runner), kernel=kernel)
