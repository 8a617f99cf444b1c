"""The kubelet's resolv.conf: qemu's resolver only for a VM guest that has no non-loopback nameserver (the
node's resolver configuration comes with its facts, read in the one facts command)."""

from __future__ import annotations

import pytest

from minisand.cluster.kubernetes import KUBELET_RESOLV, _kubelet_resolv, _resolv_setting
from minisand.nodefacts import NodeFacts


class _Driver:
    def __init__(self, name: str) -> None:
        self.name = name


class _Node:
    def __init__(self, driver: str, resolv: str) -> None:
        self.driver = _Driver(driver)
        self.facts = NodeFacts(systemd=True, cgroup_v2=True, cap_sys_resource=True, containerd_version="",
                               ip="10.0.2.15", kernel="7", resolv=resolv)


@pytest.mark.parametrize(("driver", "resolv", "expected"), [
    ("qemu", "", True),  # restrict=on user networking: no DNS from DHCP
    ("qemu", "nameserver 127.0.0.53\noptions edns0\n", True),  # only the local stub
    ("kvm2", "nameserver 192.168.39.1\n", False),  # libvirt's dnsmasq
    ("qemu", "nameserver 127.0.0.53\nnameserver 10.0.2.3\n", False),
    ("none", "", False),  # the user's own host keeps its resolver configuration
    ("ssh", "nameserver 127.0.0.53\n", False),
])
def test_kubelet_resolv(driver: str, resolv: str, expected: bool) -> None:
    node = _Node(driver, resolv)
    got = _kubelet_resolv(node)  # type: ignore[arg-type]
    if expected:
        assert got == ((str(KUBELET_RESOLV), "nameserver 10.0.2.3\n"), (("resolvConf", str(KUBELET_RESOLV)),))
        assert _resolv_setting(node) == (("resolvConf", str(KUBELET_RESOLV)),)  # type: ignore[arg-type]
    else:
        assert got is None and _resolv_setting(node) == ()  # type: ignore[arg-type]
