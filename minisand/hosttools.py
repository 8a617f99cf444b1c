"""The one registry of host requirements: every external program minisand or its tests run on this host (and the
few files they read), with the Debian package that provides it and who needs it.

- `scripts/setup` installs the apt packages from it (`python3 -m minisand.hosttools packages`) and checks
  afterwards that every program is on PATH (`python3 -m minisand.hosttools check`).
- Each driver's health check asks it what its role lacks (`missing(Role.NONE)`), so a missing tool is refused
  with the package to install before anything on the host changes.
- `tests/unit/test_hosttools.py` fails when the code runs a program that is not listed here.

Standard library only: scripts/setup runs it with the system python before the venv exists.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Role(StrEnum):
    NONE = "none"  # the none driver: what the node runs on this host (kubeadm's preflight included)
    SYSTEMD = "systemd"  # a node whose PID 1 is systemd (the guest ISO; hosts with systemd)
    QEMU = "qemu"  # the qemu driver
    KVM2 = "kvm2"  # the kvm2 driver (libvirt)
    HYPERKIT = "hyperkit"  # macOS only: never installed by scripts/setup
    ISO = "iso"  # `minisand iso build`
    NODE_IMAGE = "node-image"  # optional for the VM drivers: the node image built on the host (a faster start)
    DEV = "dev"  # the tests, the offline lab and the benchmarks
    HOST_IMAGES = "host-images"  # optional: where `image load NAME` finds NAME (never installed by scripts/setup)


class Source(StrEnum):
    APT = "apt"  # Debian 12's package of that name
    SETUP = "setup"  # scripts/setup installs it (containerd 2.x from Debian forky, crictl built from source)
    BASE = "base"  # on the machine image already (Go 1.26, python3)
    MACOS = "macos"  # not for Linux


@dataclass(frozen=True)
class Requirement:
    package: str
    roles: frozenset[Role]
    program: str = ""  # looked up on PATH (with /usr/sbin and /sbin added)
    path: str = ""  # a file that must exist instead of a program
    source: Source = Source.APT
    why: str = ""

    @property
    def name(self) -> str:
        return self.program or self.path

    def install_hint(self) -> str:
        if self.source == Source.APT:
            return f"apt-get install {self.package}"
        if self.source == Source.SETUP:
            return f"install {self.package} (scripts/setup does: `python -m e2e.hosttools install`)"
        if self.source == Source.BASE:
            return f"install {self.package}"
        return f"install {self.package} (macOS)"


def _r(package: str, *roles: Role, program: str = "", path: str = "", source: Source = Source.APT,
       why: str = "") -> Requirement:
    return Requirement(package, frozenset(roles), program or ("" if path else package), path, source, why)


N, S, Q, K, ISO, D = Role.NONE, Role.SYSTEMD, Role.QEMU, Role.KVM2, Role.ISO, Role.DEV
NI = Role.NODE_IMAGE

REQUIREMENTS: tuple[Requirement, ...] = (
    # -- what a node runs (on this host with the none driver; the guest ISO ships the same) ------------------
    _r("containerd (>= 1.7)", N, NI, D, program="containerd", source=Source.SETUP,
       why="the container runtime; the node image's store (2.x)"),
    _r("containerd (>= 1.7)", N, D, program="containerd-shim-runc-v2", source=Source.SETUP),
    _r("containerd (>= 1.7)", N, NI, D, program="ctr", source=Source.SETUP, why="preload import, images"),
    _r("cri-tools (crictl)", N, D, program="crictl", source=Source.SETUP, why="kubeadm's preflight, pod clean-up"),
    _r("runc", N, D),
    _r("containernetworking-plugins", N, D, path="/usr/lib/cni/bridge", why="the pod network (CNI bridge)"),
    _r("kmod", N, D, program="modprobe", why="overlay and br_netfilter"),
    _r("procps", N, D, program="sysctl", why="ip_forward and bridge netfilter"),
    _r("procps", N, D, program="pkill", why="stale kubeadm processes"),
    _r("procps", D, program="pgrep"),
    _r("iptables", N, D, why="kube-proxy and kubeadm's preflight"),
    _r("conntrack", N, D, why="kube-proxy and kubeadm's preflight"),
    _r("iproute2", N, D, program="ip", why="CNI bridge, routes, kubeadm's preflight"),
    _r("iproute2", N, D, program="tc", why="kubeadm's preflight"),
    _r("util-linux", N, D, program="nsenter", why="kubeadm's preflight, network namespaces"),
    _r("util-linux", NI, D, program="unshare", why="the node image's containerd in a mount namespace"),
    _r("mount", N, ISO, D, program="mount"),
    _r("mount", N, ISO, D, program="umount"),
    _r("ebtables", N, D, why="kubeadm's preflight"),
    _r("ethtool", N, D, why="kubeadm's preflight"),
    _r("socat", N, D, why="kubectl port-forward, kubeadm's preflight"),
    _r("dash", N, ISO, D, program="sh", why="the file-writing constant scripts"),
    _r("bash", D, why="the project's scripts (scripts/setup, scripts/test, scripts/demo) and their tests"),
    *(_r("coreutils", N, ISO, D, program=p) for p in (
        "cat", "rm", "mkdir", "rmdir", "mv", "chmod", "test", "true", "sha256sum", "sha512sum", "touch", "uname",
        "chroot", "du", "nice", "printf", "echo", "false", "env", "sync", "date")),
    _r("coreutils", Q, K, D, program="cp", why="the node image into a machine's folder across file systems"),
    _r("tar", ISO, D),
    _r("systemd", S, program="systemctl", why="service control where systemd is PID 1"),
    _r("systemd", S, program="journalctl", why="`minisand logs` on a systemd node"),
    # -- VM drivers ------------------------------------------------------------------------------------------
    _r("qemu-system-x86", Q, K, D, program="qemu-system-x86_64"),
    _r("qemu-utils", Q, K, D, program="qemu-img", why="the data disk"),
    _r("libvirt-daemon-system", K, D, program="libvirtd"),
    _r("libvirt-daemon-system", D, program="virtlogd"),
    _r("libvirt-clients", D, program="virsh"),
    _r("hyperkit", Role.HYPERKIT, source=Source.MACOS),
    # -- optional host engines `minisand image load NAME` exports from (ctr is listed above) --------------------
    _r("docker.io", Role.HOST_IMAGES, program="docker", why="`image load NAME`: docker save"),
    _r("podman", Role.HOST_IMAGES, why="`image load NAME`: podman save"),
    # -- the ISO build ---------------------------------------------------------------------------------------
    _r("debootstrap", ISO, D),
    _r("squashfs-tools", ISO, D, program="mksquashfs"),
    _r("xorriso", ISO, D),
    _r("busybox-static", ISO, D, program="busybox", why="the initramfs"),
    _r("zstd", ISO, D),
    _r("cpio", ISO, D),
    _r("e2fsprogs", ISO, NI, D, program="mke2fs", why="the initramfs; the node image's file system"),
    _r("dpkg", ISO, D, program="dpkg-deb"),
    _r("debian-archive-keyring", ISO, D, path="/usr/share/keyrings/debian-archive-keyring.gpg"),
    _r("golang (Go >= 1.26)", ISO, D, program="go", source=Source.BASE, why="crictl and the lab's builds"),
    # -- tests, the lab, benchmarks --------------------------------------------------------------------------
    _r("python3", D, source=Source.BASE),
    _r("docker-registry", D, why="the lab's registry (distribution v2)"),
    _r("umoci", D, why="OCI images from a folder"),
    _r("skopeo", D),
    _r("apt", D, program="apt-get"),
    _r("apt", D, program="apt-cache"),
    _r("libc-bin", D, program="ldd"),
    _r("dnsmasq-base", K, D, program="dnsmasq", why="DHCP on libvirt's NAT network"),
    _r("libvirt-dev", D, path="/usr/include/libvirt/libvirt.h", why="pip builds libvirt-python"),
    _r("pkg-config", D, why="pip builds libvirt-python"),
    _r("gcc", D, why="pip builds libvirt-python"),
    _r("ca-certificates", D, path="/etc/ssl/certs/ca-certificates.crt"),
    # the machine image's nodejs (NodeSource's package, which provides npm; Debian 12 splits it into `npm`, which
    # conflicts with it): the lab fetches node 22 and npm 11 for Headlamp's frontend with `npm pack`
    _r("nodejs", D, program="npm", source=Source.BASE, why="`npm pack` of node and npm for the lab's Headlamp build"),
    _r("chromium", D, why="the dashboard's tests open Headlamp in a real headless browser (DevTools protocol)"),
)

# what scripts/setup installs: not macOS's hyperkit, and not systemd (a node that has systemd as PID 1 has it)
SETUP_ROLES = (Role.NONE, Role.QEMU, Role.KVM2, Role.ISO, Role.NODE_IMAGE, Role.DEV)


def by_program() -> dict[str, Requirement]:
    return {r.program: r for r in REQUIREMENTS if r.program}


def is_registered(program: str) -> bool:
    return Path(program).name in by_program()


def locate(program: str) -> str | None:
    """The program's path on PATH: the same lookup the runners' subprocesses make."""
    if os.sep in program:
        return program if os.access(program, os.X_OK) else None
    return shutil.which(program)


def present(req: Requirement) -> bool:
    return locate(req.program) is not None if req.program else Path(req.path).exists()


def needed(*roles: Role) -> list[Requirement]:
    return [r for r in REQUIREMENTS if r.roles & set(roles)]


def missing(*roles: Role) -> list[Requirement]:
    return [r for r in needed(*roles) if not present(r)]


def describe_missing(reqs: list[Requirement]) -> tuple[str, str]:
    """(what is missing, the hint that installs it)."""
    names = ", ".join(r.name for r in reqs)
    apt = sorted({r.package for r in reqs if r.source == Source.APT})
    other = sorted({r.install_hint() for r in reqs if r.source != Source.APT})
    hints = ([f"apt-get install {' '.join(apt)}"] if apt else []) + other
    return names, "; ".join(hints)


def gap(*roles: Role) -> tuple[str, str] | None:
    """None when every requirement of roles is present, else (reason, hint) for a driver's health check."""
    gone = missing(*roles)
    if not gone:
        return None
    what, hint = describe_missing(gone)
    return f"missing on this host: {what}", hint


def apt_packages(*roles: Role) -> list[str]:
    return sorted({r.package for r in needed(*roles) if r.source == Source.APT})


def main(argv: list[str]) -> int:
    """`packages [ROLE ...]`: the apt packages to install; `check [ROLE ...]`: exit 1 naming what is missing."""
    cmd, names = (argv[0], argv[1:]) if argv else ("check", [])
    try:
        roles = [Role(n) for n in names] or list(SETUP_ROLES)
    except ValueError:
        print(f"unknown role in {names}; roles: {', '.join(Role)}", file=sys.stderr)
        return 2
    if cmd == "packages":
        print("\n".join(apt_packages(*roles)))
        return 0
    if cmd == "check":
        gone = missing(*roles)
        if gone:
            what, hint = describe_missing(gone)
            print(f"missing on this host: {what} (hint: {hint})", file=sys.stderr)
            return 1
        print(f"all {len(needed(*roles))} host requirements present")
        return 0
    print("usage: python3 -m minisand.hosttools packages|check [ROLE ...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
