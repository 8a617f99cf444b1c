"""Facts about a node that decide how it is configured: its init system, cgroup layout, privileges, containerd
version, address and kernel, which of its services run, which of minisand's state files exist, and the resolver
configuration the kubelet would get. Read in one command per start (each command costs ~0.3-1 s under TCG)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from minisand.runner.base import CommandRunner

CAP_SYS_RESOURCE = 24
UNITS = ("containerd", "kubelet")  # their systemd state, in this order (none without systemctl)

# A constant script (no input is spliced into it; the paths to look for, then `--read` and the small files to
# read, are its positional parameters); each section is introduced by a marker line (a file's lines must not
# start with @). The containerd version comes from dpkg where the node runs Debian's containerd: under emulation
# `containerd --version` costs seconds (a large Go program's first start).
_FACTS = """
echo @init; cat /proc/1/comm
echo @cgroupfs; stat -f -c %T /sys/fs/cgroup
echo @status; grep ^CapEff: /proc/self/status
echo @containerd; c=$(command -v containerd)
if [ "$c" = /usr/bin/containerd ] && v=$(dpkg-query -W -f '${Version}' containerd 2>/dev/null); then
    echo "containerd dpkg $v"
else
    containerd --version 2>/dev/null
fi
echo @kernel; uname -r
echo @route; ip -4 -o route get 192.0.2.1 2>/dev/null
echo @addr; ip -4 -o addr show scope global
echo @active; [ -d /run/systemd/system ] && systemctl is-active containerd kubelet 2>/dev/null
echo @exists; for f in "$@"; do [ "$f" = --read ] && break; [ -e "$f" ] && echo "$f"; done
r=; for f in "$@"; do
    if [ "$f" = --read ]; then r=1; elif [ -n "$r" ] && [ -f "$f" ]; then echo "@file $f"; cat -- "$f"; echo; fi
done
echo @resolv; cat /run/systemd/resolve/resolv.conf 2>/dev/null || cat /etc/resolv.conf 2>/dev/null
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
    active: frozenset[str] | None = None  # systemd units that run (None: no systemd to ask)
    existing: frozenset[str] = field(default_factory=frozenset)  # which of the paths asked about exist
    resolv: str = ""  # the resolv.conf kubeadm would hand the kubelet
    files: dict[str, str] = field(default_factory=dict)  # the small files asked for that exist: path -> text

    def exists(self, path: PurePosixPath) -> bool:
        return str(path) in self.existing

    def file(self, path: PurePosixPath) -> str | None:
        return self.files.get(str(path))

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
    states = s.get("active", [])
    active = frozenset(u for u, st in zip(UNITS, states, strict=False) if st == "active") if states else None
    return NodeFacts(systemd=first("init") == "systemd", cgroup_v2=first("cgroupfs") == "cgroup2fs",
                     cap_sys_resource=bool(int(cap, 16) >> CAP_SYS_RESOURCE & 1),
                     containerd_version=first("containerd"), ip=_ip(s.get("route", []), s.get("addr", [])),
                     kernel=first("kernel"), active=active, existing=frozenset(x for x in s.get("exists", []) if x),
                     resolv="\n".join(s.get("resolv", [])),
                     files={k[5:]: "\n".join(v).strip() + "\n" for k, v in s.items() if k.startswith("file ")})


def gather(runner: CommandRunner, paths: Sequence[PurePosixPath] = (),
           read: Sequence[PurePosixPath] = ()) -> NodeFacts:
    """The facts, which of paths exist (minisand's state files: what an earlier start got done), and the
    content of the small files in read."""
    args = [*(str(p) for p in paths), *(["--read", *(str(p) for p in read)] if read else [])]
    return parse(runner.run(["sh", "-c", _FACTS, "minisand-facts", *args], sudo=True, timeout=60).out)


# What a minisand guest (the ISO) reports: systemd, cgroup v2, root with every capability. The node image is
# prepared for it before the machine exists; a node that turns out different is configured as it is.
ISO_GUEST = NodeFacts(systemd=True, cgroup_v2=True, cap_sys_resource=True, containerd_version="", ip="",
                      kernel="")
