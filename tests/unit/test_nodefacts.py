from __future__ import annotations

from pathlib import PurePosixPath

from minisand.nodefacts import parse

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


def test_services_state_files_and_resolver_come_with_the_facts() -> None:
    f = parse(GUEST + "@active\nactive\ninactive\n@exists\n/var/lib/minisand/kubeadm-init.done\n\n"
                      "@resolv\nnameserver 127.0.0.53\noptions edns0 trust-ad\n")
    assert f.active == frozenset({"containerd"})
    assert f.exists(PurePosixPath("/var/lib/minisand/kubeadm-init.done"))
    assert not f.exists(PurePosixPath("/etc/kubernetes/admin.conf"))
    assert f.resolv.splitlines() == ["nameserver 127.0.0.53", "options edns0 trust-ad"]
    host = parse(HOST + "@active\n@exists\n@resolv\n")
    assert host.active is None  # no systemd to ask: the caller asks its own service manager


def test_small_files_read_with_the_facts() -> None:
    f = parse(GUEST + "@exists\n@file /var/lib/minisand/node-image.json\n{\n  \"refs\": []\n}\n\n"
                      "@file /var/lib/minisand/bin/v1.36.4/SHA256SUMS\n" + "a" * 64 + "  kubelet\n\n@resolv\n")
    assert f.file(PurePosixPath("/var/lib/minisand/node-image.json")) == '{\n"refs": []\n}\n'
    assert f.file(PurePosixPath("/var/lib/minisand/bin/v1.36.4/SHA256SUMS")) == "a" * 64 + "  kubelet\n"
    assert f.file(PurePosixPath("/etc/hosts")) is None


def test_containerd_version_from_dpkg() -> None:
    from minisand.bootstrap.nodeimage import containerd_version
    from minisand.cruntime.plan import config_version_for

    f = parse(GUEST.replace("containerd github.com/containerd/containerd/v2 2.1.9+unknown",
                            "containerd dpkg 2.1.9~ds1-1"))
    assert config_version_for(f.containerd_version) == 3 and containerd_version(f.containerd_version) == "2.1.9"
