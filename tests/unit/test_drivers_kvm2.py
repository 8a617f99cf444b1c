"""kvm2: golden domain/network XML, and the libvirt layer against libvirt's own test driver
(test:///<fixture>.xml gives fresh state per connection)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from minisand.drivers.kvm2 import xml
from minisand.drivers.kvm2.virt import Connection
from minisand.errors import ExitCode, MinisandError
from tests.unit.golden import assert_golden, fixture_path

FIXTURE = fixture_path("libvirt-node.xml")
URI = f"test://{FIXTURE}"


def _params(network: str | None, domain_type: str = "qemu", netdev: str = "") -> xml.DomainParams:
    root = Path("/var/minisand/machines/dev")
    return xml.DomainParams(
        name="minisand-dev", machine="dev", profile="dev", domain_type=domain_type, memory_mb=4096, cpus=2,
        iso=Path("/var/minisand/cache/iso/minisand-0.1.0.iso"), disk=root / "disk.qcow2",
        serial_log=root / "serial.log",
        fw_cfg=(("opt/minisand/authorized_keys", root / "fw_cfg/authorized_keys"),
                ("opt/minisand/hostname", root / "fw_cfg/hostname")),
        mac=xml.mac_for("dev"), uid=1000, gid=1000, network=network, user_netdev=netdev,
        uuid="3f0c1f2a-5b7e-4c1d-9a8e-2b6f4d0c9e11")


def test_domain_xml_private_network_golden() -> None:
    assert_golden("kvm2", "domain-network.xml", xml.domain_xml(_params("minisand-dev")))


def test_domain_xml_user_network_golden() -> None:
    netdev = "user,id=mnet0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22,hostfwd=tcp:127.0.0.1:40443-:8443"
    assert_golden("kvm2", "domain-user.xml", xml.domain_xml(_params(None, "kvm", netdev)))


def test_network_xml_golden() -> None:
    p = xml.NetworkParams("minisand-dev", xml.bridge_for("dev"), ipaddress.IPv4Network("192.168.39.0/24"))
    assert_golden("kvm2", "network.xml", xml.network_xml(p))


def test_unsafe_attribute_values_are_refused() -> None:
    p = _params("minisand-dev")
    bad = xml.DomainParams(**{**p.__dict__, "disk": Path("/tmp/it's.qcow2")})
    with pytest.raises(ValueError):
        xml.domain_xml(bad)


def test_names_macs_subnets() -> None:
    assert len(xml.bridge_for("a-very-long-profile-name")) <= 15
    assert xml.mac_for("dev") == xml.mac_for("dev") != xml.mac_for("dev-m02")
    assert xml.mac_for("dev").startswith("52:54:00:")
    used = xml.used_subnets(["<network><ip address='192.168.39.1' netmask='255.255.255.0'/></network>",
                             "<ip address=\"192.168.50.1\" netmask=\"255.255.255.0\">"])
    assert xml.free_subnet(used) == ipaddress.IPv4Network("192.168.61.0/24")


def _for_test_driver(domain: str) -> str:
    """libvirt's test hypervisor only knows domain type 'test' on i686; everything else in our XML it parses."""
    return domain.replace("type='qemu'", "type='test'", 1).replace("arch='x86_64' machine='q35'", "arch='i686'")


def test_lifecycle_against_libvirt_test_driver() -> None:
    net = xml.NetworkParams("minisand-dev", xml.bridge_for("dev"), xml.free_subnet(set()))
    with Connection(URI) as conn:
        conn.ensure_network("minisand-dev", xml.network_xml(net))
        conn.ensure_network("minisand-dev", xml.network_xml(net))  # idempotent
        assert conn.network_exists("minisand-dev")
        assert xml.used_subnets(conn.network_xmls()) >= {net.subnet}
        assert not conn.domain_info("minisand-dev").exists
        conn.define_domain(_for_test_driver(xml.domain_xml(_params("minisand-dev"))))
        assert conn.domain_info("minisand-dev").state == "shutoff"
        conn.start_domain("minisand-dev")
        conn.start_domain("minisand-dev")  # idempotent
        assert conn.domain_info("minisand-dev").state == "running"
        macs = [mac for mac, _ip in conn.domain_addresses("minisand-dev")]
        assert xml.mac_for("dev") in macs
        conn.shutdown_domain("minisand-dev")
        assert conn.domain_info("minisand-dev").state == "shutoff"
        conn.start_domain("minisand-dev")
        conn.destroy_domain("minisand-dev")
        assert conn.domain_info("minisand-dev").state == "shutoff"
        conn.undefine_domain("minisand-dev")
        conn.undefine_domain("minisand-dev")  # idempotent
        assert conn.domain_names() == [n for n in conn.domain_names() if n != "minisand-dev"]
        conn.remove_network("minisand-dev")
        assert not conn.network_exists("minisand-dev")


def test_start_of_undefined_domain_is_a_clear_error() -> None:
    with Connection(URI) as conn, pytest.raises(MinisandError) as exc:
        conn.start_domain("minisand-ghost")
    assert exc.value.code == ExitCode.DRIVER_ERROR


def test_unreachable_libvirt_is_driver_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MinisandError) as exc:
        Connection(f"qemu+unix:///system?socket={tmp_path}/absent.sock")
    assert exc.value.code == ExitCode.DRIVER_UNAVAILABLE
