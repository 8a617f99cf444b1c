"""A network namespace standing in for a host on its own network: a veth pair inside it, an address, a default
route to nowhere. The none driver's whole cluster lives there in tests and benchmarks."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.helpers.netns import NetNS, network_namespace

NODE_IP = "10.88.0.2"

# Where a none-driver cluster keeps state on the host.
HOST_DIRS = ("/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/var/lib/minisand", "/var/lib/containerd",
             "/run/containerd", "/etc/containerd", "/etc/cni/net.d", "/var/lib/cni")


def host_leftovers() -> list[str]:
    """The state directories that hold files (a clean host has none)."""
    return [d for d in HOST_DIRS if Path(d).exists() and any(f.is_file() for f in Path(d).rglob("*"))]


@contextmanager
def host_state_created_here() -> Iterator[None]:
    """The host state directories that did not exist before the block are unmounted and removed after it:
    `minisand delete` keeps containerd's own state (as minikube's none driver does), a test or benchmark
    leaves the host as it found it."""
    created = [d for d in HOST_DIRS if not Path(d).exists()]
    try:
        yield
    finally:
        for d in created:
            subprocess.run(["umount", "-R", d], capture_output=True, check=False, timeout=60)
            shutil.rmtree(d, ignore_errors=True)


@contextmanager
def node_namespace(prefix: str = "none") -> Iterator[NetNS]:
    with network_namespace(prefix) as ns:
        steps = (["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                 ["addr", "add", f"{NODE_IP}/24", "dev", "v0"],
                 ["link", "set", "v0", "up"], ["link", "set", "v1", "up"],
                 ["route", "add", "default", "via", "10.88.0.1", "dev", "v0"])
        for step in steps:
            subprocess.run(["ip", "-n", ns.name, *step], check=True, timeout=30)
        yield ns
