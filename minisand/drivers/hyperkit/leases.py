"""Parsing of macOS bootpd's /var/db/dhcpd_leases (the file hyperkit's vmnet guests get their IPs from)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LEASES = Path("/var/db/dhcpd_leases")


@dataclass(frozen=True)
class Lease:
    name: str
    ip: str
    hw_address: str  # normalised "aa:bb:cc:dd:ee:ff"
    lease: int


def normalise_mac(mac: str) -> str:
    """bootpd drops leading zeros ("1,a:b:c:d:e:f"); expand to two hex digits per octet."""
    mac = mac.split(",", 1)[1] if "," in mac else mac
    return ":".join(f"{int(part, 16):02x}" for part in mac.split(":"))


def parse(text: str) -> list[Lease]:
    leases: list[Lease] = []
    block: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line == "{":
            block = {}
        elif line == "}":
            if block is not None and "ip_address" in block:
                try:
                    mac = normalise_mac(block.get("hw_address", ""))
                except ValueError:
                    mac = ""
                try:
                    stamp = int(block.get("lease", "0"), 16)
                except ValueError:
                    stamp = 0
                leases.append(Lease(block.get("name", ""), block["ip_address"], mac, stamp))
            block = None
        elif block is not None and "=" in line:
            key, value = line.split("=", 1)
            block[key.strip()] = value.strip()
    return leases


def find(leases: list[Lease], *, mac: str | None = None, name: str | None = None) -> Lease | None:
    """The newest lease for mac (preferred) or for the DHCP client name."""
    matches = [ls for ls in leases if (mac and ls.hw_address == normalise_mac(mac)) or (name and ls.name == name)]
    return max(matches, key=lambda ls: ls.lease) if matches else None
