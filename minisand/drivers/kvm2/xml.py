"""Rendering of the kvm2 driver's libvirt XML (pure; golden-tested)."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from minisand.templating import render


@dataclass(frozen=True)
class DomainParams:
    name: str
    machine: str
    profile: str
    domain_type: str  # kvm | qemu
    memory_mb: int
    cpus: int
    iso: Path
    disk: Path
    serial_log: Path
    fw_cfg: tuple[tuple[str, Path], ...]
    mac: str
    uid: int
    gid: int
    network: str | None  # libvirt network name; None for user-mode networking
    user_netdev: str = ""
    uuid: str = "00000000-0000-4000-8000-000000000000"


# The root-complex slot of the user-mode NIC (added on the qemu command line, outside libvirt's address
# allocation, which fills pcie-root-ports from slot 1 upwards).
USER_NIC_SLOT = "0x10"


def _attr(value: object) -> str:
    """A value safe inside a single-quoted XML attribute (template uses '...')."""
    text = str(value)
    if "'" in text or "<" in text or "&" in text:
        raise ValueError(f"unsafe character in XML attribute value: {text!r}")
    return text


def domain_xml(p: DomainParams) -> str:
    return render(
        "kvm2/domain.xml.j2", domain_name=_attr(p.name), machine=_attr(p.machine), profile=_attr(p.profile),
        domain_type=p.domain_type, memory_mb=p.memory_mb, cpus=p.cpus, iso=_attr(p.iso), disk=_attr(p.disk),
        serial_log=_attr(p.serial_log), fw_cfg=[{"name": _attr(n), "file": _attr(f)} for n, f in p.fw_cfg],
        mac=_attr(p.mac), uid=p.uid, gid=p.gid, user_net=p.network is None, network=_attr(p.network or ""),
        user_netdev=_attr(p.user_netdev), user_nic_slot=USER_NIC_SLOT, uuid=_attr(p.uuid))


@dataclass(frozen=True)
class NetworkParams:
    name: str
    bridge: str
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)


def network_xml(p: NetworkParams) -> str:
    base = p.subnet.network_address
    return render("kvm2/network.xml.j2", network_name=_attr(p.name), bridge=_attr(p.bridge), gateway=p.gateway,
                  dhcp_start=str(base + 2), dhcp_end=str(base + 254))


def mac_for(machine: str) -> str:
    """A stable locally administered MAC per machine (QEMU's 52:54:00 prefix)."""
    h = hashlib.sha256(machine.encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in h[:3])


def bridge_for(profile: str) -> str:
    return "virbr-ms" + hashlib.sha256(profile.encode()).hexdigest()[:6]  # <= 15 chars


_SUBNET_RE = re.compile(r"<ip address=['\"]([0-9.]+)['\"] netmask=['\"]([0-9.]+)['\"]")


def used_subnets(network_xmls: list[str]) -> set[ipaddress.IPv4Network]:
    out = set()
    for xml in network_xmls:
        for addr, mask in _SUBNET_RE.findall(xml):
            out.add(ipaddress.IPv4Network(f"{addr}/{mask}", strict=False))
    return out


def free_subnet(used: set[ipaddress.IPv4Network], start: int = 39, step: int = 11) -> ipaddress.IPv4Network:
    """minikube walks 192.168.39.0/24, .50, .61, ... for its private networks; so do we."""
    third = start
    while third < 255:
        candidate = ipaddress.IPv4Network(f"192.168.{third}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
        third += step
    raise ValueError("no free 192.168.x.0/24 subnet for a libvirt network")
