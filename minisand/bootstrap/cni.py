"""The default CNI: a bridge with host-local IPAM over the node's pod CIDR, plus portmap."""

from __future__ import annotations

import ipaddress

from minisand.guest import CNI_CONF_DIR
from minisand.templating import render

CONFLIST = CNI_CONF_DIR / "1-minisand-bridge.conflist"


def node_pod_cidr(pod_subnet: str, index: int) -> str:
    """Node i of a cluster gets the i-th /24 of the pod subnet (what the controller-manager allocates in order)."""
    net = ipaddress.IPv4Network(pod_subnet)
    return str(list(net.subnets(new_prefix=24))[index])


def render_bridge(pod_cidr: str) -> str:
    ipaddress.IPv4Network(pod_cidr)
    return render("cni/bridge.conflist.j2", pod_cidr=pod_cidr)
