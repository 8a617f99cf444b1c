"""The kubelet's resolv.conf: qemu's resolver only for a VM guest that has no non-loopback nameserver."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest

from minisand.cluster.kubernetes import KUBELET_RESOLV, _kubelet_resolv
from minisand.runner.base import RunResult


class _Runner:
    def __init__(self, resolv: str) -> None:
        self.resolv = resolv
        self.written: dict[str, bytes] = {}

    def run(self, argv: list[str], **_kw: Any) -> RunResult:
        return RunResult(tuple(argv), 0, self.resolv.encode(), b"", 0.0)

    def write_file(self, dest: PurePosixPath, data: bytes, **_kw: Any) -> None:
        self.written[str(dest)] = data


class _Driver:
    def __init__(self, name: str) -> None:
        self.name = name


class _Node:
    def __init__(self, driver: str, resolv: str) -> None:
        self.driver = _Driver(driver)
        self.runner = _Runner(resolv)


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
        assert got == (("resolvConf", str(KUBELET_RESOLV)),)
        assert node.runner.written == {str(KUBELET_RESOLV): b"nameserver 10.0.2.3\n"}
    else:
        assert got == () and node.runner.written == {}
