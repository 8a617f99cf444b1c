"""A network namespace standing in for a host on its own network: a veth pair inside it, an address, a default
route to nowhere. The none driver's whole cluster lives there in tests and benchmarks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.integration.helpers.netns import NetNS, network_namespace

NODE_IP = "10.88.0.2"


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
