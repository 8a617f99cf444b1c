"""Pod networking across nodes with the default bridge CNI: each node's bridge serves the pod CIDR the
controller-manager gave that node, and every node routes the other nodes' pod CIDRs to their node IPs (the
"host-gw" scheme: no overlay, the nodes share one L2 network). Routes are runtime state, so every start sets them
again."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from minisand.bootstrap import cni
from minisand.errors import ExitCode, MinisandError

if TYPE_CHECKING:
    from minisand.node import Node

log = logging.getLogger(__name__)


def pod_cidrs(client: Any, names: list[str], timeout: float = 300.0) -> dict[str, str]:
    from kubernetes import client as k

    deadline = time.monotonic() + timeout
    while True:
        items: list[Any] = k.CoreV1Api(client).list_node().items
        cidrs = {n.metadata.name: n.spec.pod_cidr for n in items if n.spec and n.spec.pod_cidr}
        if all(name in cidrs for name in names):
            return cidrs
        if time.monotonic() > deadline:
            missing = [n for n in names if n not in cidrs]
            raise MinisandError(f"nodes without a pod CIDR after {timeout:.0f}s: {', '.join(missing)}",
                                hint="`minisand logs` shows the controller-manager's state",
                                code=ExitCode.KUBERNETES_ERROR)
        time.sleep(2)


def configure(nodes: list[Node], client: Any) -> None:
    if len(nodes) < 2:
        return
    cidrs = pod_cidrs(client, [n.machine for n in nodes])
    for node in nodes:
        text = cni.render_bridge(cidrs[node.machine]).encode()
        current = node.runner.run(["cat", str(cni.CONFLIST)], sudo=True, check=False, timeout=30).stdout
        if current != text:
            log.info("%s: bridge CNI now serves %s", node.machine, cidrs[node.machine])
            node.runner.write_file(cni.CONFLIST, text)
        for other in nodes:
            if other is node:
                continue
            node.runner.run(["ip", "route", "replace", cidrs[other.machine], "via", other.facts.ip], sudo=True,
                            timeout=30)
