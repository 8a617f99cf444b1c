from __future__ import annotations

from minisand.cluster.nodefacts import parse

GUEST = """@init
systemd
@cgroupfs
cgroup2fs
@status
CapEff:\t000001ffffffffff
@containerd
containerd github.com/containerd/containerd/v2 2.1.9+unknown
@kernel
7.2.12+deb14-amd64
@route
@addr
2: enp0s2    inet 10.0.2.15/24 brd 10.0.2.255 scope global enp0s2\\       valid_lft forever preferred_lft forever
"""

HOST = """@init
process_api
@cgroupfs
tmpfs
@status
CapEff:\t000001fffeffffff
@containerd
@kernel
6.18.44
@route
192.0.2.1 via 10.200.0.1 dev veth0 src 10.200.0.2 uid 0 \\    cache
@addr
"""


def test_guest_facts() -> None:
    f = parse(GUEST)
    assert f.systemd and f.cgroup_v2 and f.cap_sys_resource
    assert f.cgroup_driver == "systemd"
    assert f.ip == "10.0.2.15" and f.kernel == "7.2.12+deb14-amd64"
    assert "2.1.9" in f.containerd_version


def test_host_without_systemd_and_cap_sys_resource() -> None:
    f = parse(HOST)
    assert not f.systemd and not f.cgroup_v2 and not f.cap_sys_resource
    assert f.cgroup_driver == "cgroupfs"
    assert f.ip == "10.200.0.2"
    assert f.containerd_version == ""
