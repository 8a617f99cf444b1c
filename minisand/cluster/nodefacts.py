"""Facts about a node that decide how it is configured: its init system, cgroup layout, privileges, containerd
version, address and kernel. Read in one command per start (each command costs ~0.3-1 s under TCG)."""

from __future__ import annotations

from dataclasses import dataclass

from minisand.runner.base import CommandRunner

CAP_SYS_RESOURCE = 24

# A constant script (no input is spliced into it); each section is introduced by a marker line.
_FACTS = """
echo @init; cat /proc/1/comm
echo @cgroupfs; stat -f -c %T /sys/fs/cgroup
echo @status; grep ^CapEff: /proc/self/status
echo @containerd; containerd --version 2>/dev/null
echo @kernel; uname -r
echo @route; ip -4 -o route get 192.0.2.1 2>/dev/null
echo @addr; ip -4 -o addr show scope global
true
"""


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


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@"):
            current = line[1:].strip()
            out[current] = []
        elif current:
            out[current].append(line.strip())
    return out


def _ip(route: list[str], addrs: list[str]) -> str:
    words = " ".join(route).split()
    if "src" in words:
        return words[words.index("src") + 1]
    for line in addrs:
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return "127.0.0.1"


def parse(text: str) -> NodeFacts:
    s = _sections(text)

    def first(key: str) -> str:
        return (s.get(key) or [""])[0]

    cap = first("status").split()[1] if len(first("status").split()) > 1 else "0"
    return NodeFacts(systemd=first("init") == "systemd", cgroup_v2=first("cgroupfs") == "cgroup2fs",
                     cap_sys_resource=bool(int(cap, 16) >> CAP_SYS_RESOURCE & 1),
                     containerd_version=first("containerd"), ip=_ip(s.get("route", []), s.get("addr", [])),
                     kernel=first("kernel"))


def gather(runner: CommandRunner) -> NodeFacts:
    return parse(runner.run(["sh", "-c", _FACTS], sudo=True, timeout=60).out)
