from __future__ import annotations

import io
import platform
from pathlib import Path

import pytest

from minisand.drivers.hyperkit import leases
from minisand.drivers.hyperkit.cmdline import HyperkitSettings, build_argv
from minisand.drivers.hyperkit.driver import health
from minisand.drivers.registry import choose
from minisand.drivers.seed import write_seed_iso
from minisand.errors import ExitCode, MinisandError

LEASES = """{
\tname=minisand
\tip_address=192.168.64.3
\thw_address=1,a2:b3:c:d:e:f
\tidentifier=1,a2:b3:c:d:e:f
\tlease=0x5d9ae5cf
}
{
\tname=minisand
\tip_address=192.168.64.7
\thw_address=1,a2:b3:c:d:e:10
\tidentifier=1,a2:b3:c:d:e:10
\tlease=0x5d9ae6cf
}
{
\tname=other
\tip_address=192.168.64.9
\thw_address=1,1:2:3:4:5:6
\tlease=0x1
}
"""


def test_leases_parse_and_normalise() -> None:
    parsed = leases.parse(LEASES)
    assert [ls.ip for ls in parsed] == ["192.168.64.3", "192.168.64.7", "192.168.64.9"]
    assert parsed[0].hw_address == "a2:b3:0c:0d:0e:0f"
    assert leases.find(parsed, mac="a2:b3:0c:0d:0e:0f").ip == "192.168.64.3"  # type: ignore[union-attr]
    assert leases.find(parsed, name="minisand").ip == "192.168.64.7"  # type: ignore[union-attr]  # newest
    assert leases.find(parsed, name="absent") is None
    assert leases.parse("garbage\n{\nname=x\n}\n") == []


def test_command_line(tmp_path: Path) -> None:
    s = HyperkitSettings(hyperkit="/usr/local/bin/hyperkit", uuid="c0ffee00-0000-4000-8000-000000000001", cpus=2,
                         memory_mb=4096, disk=tmp_path / "disk.rawdisk", iso=tmp_path / "m.iso",
                         seed=tmp_path / "cidata.iso", kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd",
                         cmdline="console=ttyS0 quiet", state_dir=tmp_path)
    argv = build_argv(s)
    assert argv[0] == "/usr/local/bin/hyperkit"
    assert argv[argv.index("-F") + 1] == str(tmp_path / "hyperkit.pid")
    assert argv[argv.index("-m") + 1] == "4096M" and argv[argv.index("-c") + 1] == "2"
    assert argv[argv.index("-U") + 1] == s.uuid
    slots = [argv[i + 1] for i, a in enumerate(argv) if a == "-s"]
    assert f"2:0,virtio-blk,{tmp_path / 'disk.rawdisk'}" in slots
    assert f"4,ahci-cd,{tmp_path / 'cidata.iso'}" in slots
    assert argv[-1] == f"kexec,{tmp_path / 'vmlinuz'},{tmp_path / 'initrd'},console=ttyS0 quiet"


@pytest.mark.parametrize(("system", "installed", "reason", "fix"), [
    ("Linux", True, "hyperkit runs only on macOS (this is Linux)", "use the kvm2 or qemu driver on Linux"),
    ("Darwin", False, "hyperkit is not installed", "brew install hyperkit"),
    ("Darwin", True, "", ""),
])
def test_health(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, system: str, installed: bool, reason: str,
                fix: str) -> None:
    """The OS and PATH are the host's (the platform boundary): each answer is checked on any OS."""
    monkeypatch.setattr(platform, "system", lambda: system)
    if installed:
        (tmp_path / "hyperkit").write_text("#!/bin/sh\n")
        (tmp_path / "hyperkit").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    h = health()
    assert (h.ok, h.reason, h.fix) == (not reason, reason, fix)


def test_choosing_hyperkit_off_macos_is_driver_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    with pytest.raises(MinisandError) as exc:
        choose("hyperkit")
    assert exc.value.code == ExitCode.DRIVER_UNAVAILABLE
    assert "only on macOS" in exc.value.message and exc.value.hint == "use the kvm2 or qemu driver on Linux"


def test_cidata_seed_iso(tmp_path: Path) -> None:
    import pycdlib

    dest = tmp_path / "cidata.iso"
    write_seed_iso(dest, "dev", "ssh-ed25519 AAAAkey minisand@dev")
    iso = pycdlib.PyCdlib()
    iso.open(str(dest))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path="/user-data")
        assert "ssh-ed25519 AAAAkey minisand@dev" in out.getvalue().decode()
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path="/meta-data")
        assert "local-hostname: dev" in out.getvalue().decode()
    finally:
        iso.close()
