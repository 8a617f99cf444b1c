"""Saved machine state: the metadata and every reason a saved state is refused (each one a cold boot), the
qemu command line a state depends on, and the QMP exchange that passes the state file's descriptor to qemu
(against a fake qemu monitor: the platform boundary)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from minisand.drivers import savedstate, vmcommon
from minisand.drivers.base import MachineRecord, MachineSpec
from minisand.drivers.qemu import migrate
from minisand.drivers.qemu.cmdline import QemuSettings, build_argv, device_argv
from minisand.drivers.savedstate import Current, FileId, SavedMeta, digest_mismatch, unusable_reason
from tests.unit.fakes import qemu_settings

# -- metadata and usability --------------------------------------------------------------------------------

NOW = Current(emulator="/usr/bin/qemu-system-x86_64", emulator_sha256="a" * 64, cpus=2, memory_mb=2048,
              device_argv=("qemu-system-x86_64", "-m", "2048"), boot_id="boot-1",
              media={"ISO": FileId("/c/m.iso", 100, 1), "data disk": FileId("/m/disk.qcow2", 200, 2)})


def _meta(**kw: Any) -> SavedMeta:
    base: dict[str, Any] = dict(driver="qemu", state_file="vmstate", size=1000, sha256="b" * 64, current=NOW,
                                saved_at=1.0, save_seconds=2.0)
    base.update(kw)
    return SavedMeta(**base)


def test_a_state_saved_in_this_world_is_usable() -> None:
    assert unusable_reason(_meta(), NOW, 1000) is None


@pytest.mark.parametrize(("now", "size", "needle"), [
    (dataclasses.replace(NOW, boot_id="boot-2"), 1000, "host rebooted"),
    (dataclasses.replace(NOW, emulator_sha256="c" * 64), 1000, "qemu binary changed"),
    (dataclasses.replace(NOW, emulator="/opt/qemu/bin/qemu-system-x86_64"), 1000, "qemu binary changed"),
    (dataclasses.replace(NOW, cpus=4), 1000, "CPUs changed from 2 to 4"),
    (dataclasses.replace(NOW, memory_mb=4096), 1000, "memory changed from 2048 MB to 4096 MB"),
    (dataclasses.replace(NOW, device_argv=("qemu-system-x86_64", "-m", "2048", "-device", "x")), 1000,
     "devices changed"),
    (dataclasses.replace(NOW, media={**NOW.media, "ISO": FileId("/c/other.iso", 100, 1)}), 1000, "ISO changed"),
    (dataclasses.replace(NOW, media={**NOW.media, "data disk": FileId("/m/disk.qcow2", 200, 3)}), 1000,
     "data disk changed"),
    (NOW, None, "state file is missing"),
    (NOW, 999, "truncated (999 of 1000 bytes)"),
    (NOW, 1001, "longer than saved"),
])
def test_each_reason_to_boot_cold(now: Current, size: int | None, needle: str) -> None:
    reason = unusable_reason(_meta(), now, size)
    assert reason is not None and needle in reason, reason


def test_missing_metadata_and_another_format_are_refused() -> None:
    assert "metadata" in (unusable_reason(None, NOW, 1000) or "")
    assert "format" in (unusable_reason(_meta(format=0), NOW, 1000) or "")


def test_a_remote_libvirt_skips_what_it_cannot_see() -> None:
    """kvm2 on a remote libvirt: no boot id, no emulator digest, no readable file (-1): those checks pass."""
    remote = dataclasses.replace(NOW, boot_id="", emulator_sha256="")
    assert unusable_reason(_meta(size=-1, sha256="", current=remote), dataclasses.replace(remote), -1) is None
    assert "CPUs" in (unusable_reason(_meta(size=-1, current=remote), dataclasses.replace(remote, cpus=1), -1) or "")


def test_digest() -> None:
    assert digest_mismatch(_meta(), "b" * 64) is None
    assert "corrupt" in (digest_mismatch(_meta(), "0" * 64) or "")
    assert digest_mismatch(_meta(sha256=""), "0" * 64) is None  # not recorded: not checked


def test_metadata_round_trip_and_garbage(tmp_path: Path) -> None:
    meta = _meta()
    meta.save(tmp_path / "vmstate.json")
    assert stat.S_IMODE((tmp_path / "vmstate.json").stat().st_mode) == 0o600
    assert SavedMeta.load(tmp_path / "vmstate.json") == meta
    (tmp_path / "bad.json").write_text('{"driver": "qemu"}')
    assert SavedMeta.load(tmp_path / "bad.json") is None
    assert SavedMeta.load(tmp_path / "absent.json") is None
    savedstate.save_current(tmp_path / "launch.json", NOW)
    assert savedstate.load_current(tmp_path / "launch.json") == NOW


def test_file_identity_and_digest_in_background(tmp_path: Path) -> None:
    f = tmp_path / "vmstate"
    f.write_bytes(b"x" * 5_000_000)
    fid = FileId.of(f)
    assert fid is not None and fid.size == 5_000_000
    assert FileId.of(tmp_path / "absent") is None
    assert savedstate.BackgroundDigest(f).result() == savedstate.file_sha256(f)
    assert savedstate.BackgroundDigest(tmp_path / "absent").result() == ""


def test_report_sizes(tmp_path: Path) -> None:
    f = tmp_path / "sparse"
    with f.open("wb") as out:
        out.truncate(10 << 20)
        out.write(b"data")
    r = savedstate.report_for("m", f, 1.5)
    assert r.size == 10 << 20 and 0 <= r.allocated < r.size


def test_boot_resources_are_recorded(tmp_path: Path) -> None:
    spec = MachineSpec(machine="m", profile="m", machine_dir=tmp_path, cache_dir=tmp_path, cpus=3, memory_mb=3072,
                       disk_mb=1, hostname="m", ssh_pubkey="", ssh_key_path=tmp_path / "k",
                       options=_options())
    rec = vmcommon.note_boot(MachineRecord(machine="m", driver="qemu"), spec)
    assert vmcommon.booted_with(rec) == (3, 3072)
    assert vmcommon.booted_with(MachineRecord(machine="m", driver="qemu")) is None


def _options() -> Any:
    from minisand.config.model import DriverOptions

    return DriverOptions()


# -- the qemu command line a state depends on ---------------------------------------------------------------

def _settings(tmp_path: Path, **kw: object) -> QemuSettings:
    return qemu_settings(tmp_path, **kw)


def test_resume_argv_waits_for_the_state_and_appends_to_the_console(tmp_path: Path) -> None:
    cold = build_argv(_settings(tmp_path))
    warm = build_argv(_settings(tmp_path, incoming=True, serial_append=True))
    assert "-incoming" not in cold
    assert warm[-2:] == ["-incoming", "defer"]
    assert f"file,id=serial0,path={tmp_path / 'serial.log'},append=on" in warm


def test_device_argv_ignores_host_side_details_only(tmp_path: Path) -> None:
    base = device_argv(_settings(tmp_path))
    same = device_argv(_settings(tmp_path, ssh_port=1, apiserver_port=2, incoming=True, serial_append=True,
                                 qmp_socket=tmp_path / "other.sock", pidfile=tmp_path / "other.pid"))
    assert same == base
    assert not {"-pidfile", "-qmp", "-incoming", "-daemonize"} & set(base)
    assert any("guestfwd=tcp:10.0.2.100:5000" in a for a in base)  # the guest sees its forwards
    for changed in (dict(memory_mb=4096), dict(cpus=1), dict(accel="kvm"), dict(guest_forwards=()),
                    dict(kernel=tmp_path / "other-vmlinuz"), dict(restrict=False)):
        assert device_argv(_settings(tmp_path, **changed)) != base, changed


# -- QMP: the state file's descriptor travels over the monitor socket ---------------------------------------

class FakeMigratingQemu:
    """A qemu monitor that takes descriptors (getfd, SCM_RIGHTS) and migrates to or from them: on `migrate` it
    writes `payload` into the descriptor, on `migrate-incoming` it reads it to the end."""

    def __init__(self, path: Path, payload: bytes = b"QEVM" + b"\0" * 1000, outcome: str = "completed") -> None:
        self.payload, self.outcome = payload, outcome
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.fds: dict[str, int] = {}
        self.loaded = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        buf, fds = b"", []
        while True:
            data, got, _flags, _addr = socket.recv_fds(conn, 65536, 4)
            if not data:
                break
            buf += data
            fds += got
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                cmd, args = msg["execute"], msg.get("arguments", {})
                self.seen.append((cmd, args))
                conn.sendall(json.dumps(self._answer(cmd, args, fds)).encode() + b"\n")
        conn.close()

    def _answer(self, cmd: str, args: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        if cmd == "getfd":
            if not fds:
                return {"error": {"class": "GenericError", "desc": "No file descriptor supplied via SCM_RIGHTS"}}
            self.fds[args["fdname"]] = fds.pop(0)
        elif cmd == "migrate":
            fd = self.fds.pop(args["uri"].removeprefix("fd:"))
            os.write(fd, self.payload)
            os.close(fd)
        elif cmd == "migrate-incoming":
            fd = self.fds.pop(args["uri"].removeprefix("fd:"))
            while chunk := os.read(fd, 65536):
                self.loaded += chunk
            os.close(fd)
        elif cmd == "query-migrate":
            polls = sum(1 for c, _ in self.seen if c == "query-migrate")
            if self.outcome == "stuck" or polls < 2:
                return {"return": {"status": "active"}}
            if self.outcome == "failed":
                return {"return": {"status": "failed", "error-desc": "Unable to write to file"}}
            return {"return": {"status": "completed", "total-time": 5}}
        return {"return": {}}

    def commands(self) -> list[str]:
        return [c for c, _ in self.seen]


def test_save_hands_qemu_the_open_file_and_lifts_the_bandwidth_limit(tmp_path: Path) -> None:
    qemu = FakeMigratingQemu(tmp_path / "qmp.sock")
    dest = tmp_path / "vmstate"
    info = migrate.save(tmp_path / "qmp.sock", dest, timeout=10)
    assert info["status"] == "completed"
    assert dest.read_bytes() == qemu.payload
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    cmds = qemu.commands()
    assert cmds[:5] == ["qmp_capabilities", "stop", "migrate-set-parameters", "getfd", "migrate"]
    assert dict(qemu.seen)["migrate-set-parameters"]["max-bandwidth"] >= 1 << 40
    assert dict(qemu.seen)["migrate"] == {"uri": f"fd:{migrate.SAVE_FD}"}
    assert "cont" not in cmds  # the machine stays stopped: the caller quits it


def test_a_failed_save_resumes_the_machine(tmp_path: Path) -> None:
    qemu = FakeMigratingQemu(tmp_path / "qmp.sock", outcome="failed")
    with pytest.raises(migrate.MigrationError, match="Unable to write"):
        migrate.save(tmp_path / "qmp.sock", tmp_path / "vmstate", timeout=10)
    assert qemu.commands()[-1] == "cont"


def test_a_stuck_migration_is_cancelled_within_its_bound(tmp_path: Path) -> None:
    qemu = FakeMigratingQemu(tmp_path / "qmp.sock", outcome="stuck")
    with pytest.raises(migrate.MigrationError, match="did not complete within"):
        migrate.save(tmp_path / "qmp.sock", tmp_path / "vmstate", timeout=0.3)
    assert "migrate_cancel" in qemu.commands() and qemu.commands()[-1] == "cont"


def test_load_feeds_the_state_file_through_a_descriptor(tmp_path: Path) -> None:
    qemu = FakeMigratingQemu(tmp_path / "qmp.sock")
    src = tmp_path / "vmstate"
    src.write_bytes(b"QEVM-saved-state" * 1000)
    migrate.load(tmp_path / "qmp.sock", src, timeout=10)
    assert qemu.loaded == src.read_bytes()
    assert dict(qemu.seen)["migrate-incoming"] == {"uri": f"fd:{migrate.LOAD_FD}"}
