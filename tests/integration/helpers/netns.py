"""Network namespaces created by a test (the network rule: traffic stays on loopback or inside namespaces the
test made). Commands enter one with `nsenter --net=/run/netns/NAME` (not `ip netns exec`, which remounts /sys
and hides the cgroup mounts containerd needs). The namespace is deleted when the context ends."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class NetNS:
    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def argv(self, *cmd: str) -> list[str]:
        return ["nsenter", f"--net={self.path}", "--", *cmd]

    def run(self, *cmd: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*cmd), capture_output=True, text=True, timeout=timeout, check=check)

    def add_address(self, cidr: str) -> None:
        """An extra address on the namespace's loopback (no dummy module needed): a non-loopback-looking
        registry host that only exists inside this namespace."""
        subprocess.run(["ip", "-n", self.name, "addr", "add", cidr, "dev", "lo"], check=True, timeout=30)

    def port_open(self, host: str, port: int) -> bool:
        probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()"
        return self.run(sys.executable, "-c", probe, host, str(port), check=False, timeout=30).returncode == 0

    def wait_port(self, host: str, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.port_open(host, port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} in netns {self.name} after {timeout:.0f}s")
            time.sleep(0.2)


@contextmanager
def network_namespace(prefix: str = "msd") -> Iterator[NetNS]:
    ns = NetNS(f"{prefix}-{secrets.token_hex(4)}")
    subprocess.run(["ip", "netns", "add", ns.name], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", ns.name, "link", "set", "lo", "up"], check=True, timeout=30)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "delete", ns.name], check=False, timeout=30)
