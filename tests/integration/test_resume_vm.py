"""Stop saves the machine, start resumes it: the qemu driver (qemu's migration to a file) and the kvm2 driver
(libvirt's managed save, with a libvirtd the test starts in its own network namespace), real guests under TCG.

A marker in the guest's /dev/shm (tmpfs) survives a resume and not a boot; the guest's boot id says the same. A
truncated state file makes the next start boot cold with a notice, the data disk kept. pause/unpause freeze and
thaw the guest in place."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from minisand.iso.build import BuildResult, build_iso
from tests.integration.helpers.cli import CLI, qemu_pids
from tests.integration.helpers.libvirtd import Libvirtd, libvirt_objects

pytestmark = [pytest.mark.root, pytest.mark.vm, pytest.mark.slow]

SHM_MARKER = "/dev/shm/minisand-resume-marker"
DISK_MARKER = "/var/lib/minisand/resume-marker"


@pytest.fixture(scope="module")
def iso() -> BuildResult:
    return build_iso(None)


def _start_args(iso: BuildResult, driver: str, *extra: str) -> list[str]:
    return ["start", f"--driver={driver}", "--no-kubernetes", f"--iso-url=file://{iso.iso}",
            f"--iso-checksum=sha256:{iso.sha256}", "--memory=2g", "--cpus=2", "--no-guest-egress", *extra]


def _machine_dir(cli: CLI) -> Path:
    return cli.home / "machines" / cli.profile


def _state_file(cli: CLI) -> Path:
    meta = json.loads((_machine_dir(cli) / "vmstate.json").read_text())
    path = Path(meta["state_file"])
    return path if path.is_absolute() else _machine_dir(cli) / path


def _guest(cli: CLI, *argv: str) -> str:
    return cli.ok("ssh", "--", *argv).strip()


def _boot_id(cli: CLI) -> str:
    return _guest(cli, "cat", "/proc/sys/kernel/random/boot_id")


def _clock_within(cli: CLI, tolerance: float, label: str) -> float:
    """The guest's clock read between two host readings: it must lie in [before - tol, after + tol]."""
    before = time.time()
    guest = float(_guest(cli, "date", "+%s.%N"))
    after = time.time()
    assert before - tolerance <= guest <= after + tolerance, (
        f"{label}: guest clock {guest:.3f} outside host [{before:.3f}, {after:.3f}] +- {tolerance}s")
    cli.timings[f"{label}: guest clock minus host midpoint (s)"] = round(guest - (before + after) / 2, 3)
    cli.timings[f"{label}: measurement window (s)"] = round(after - before, 3)
    return guest


def _logged_clock(cli: CLI, label: str) -> None:
    """What minisand measured when it set the clock: the offset it found, the residual, the round trip."""
    import re

    log = (cli.home / "logs" / f"{cli.profile}.log").read_text()
    found = re.findall(r"guest clock of \S+: was ([-+\d.]+)s off; set; right after ([-+\d.]+)s "
                       r"\(reading round trips ([\d.]+)s", log)
    assert found, "minisand logged no clock correction"
    before, after, rtt = (float(x) for x in found[-1])
    cli.timings.update({f"{label}: offset found (s)": before, f"{label}: residual logged (s)": after,
                        f"{label}: clock command round trip (s)": rtt})


def _sizes(cli: CLI, label: str) -> None:
    st = _state_file(cli).stat()
    cli.timings[f"{label}: state file bytes"] = st.st_size
    cli.timings[f"{label}: state file bytes on disk"] = st.st_blocks * 512


def _save_and_resume(cli: CLI, iso: BuildResult, driver: str, *extra: str) -> None:
    cli.ok(*_start_args(iso, driver, *extra), label="start (create)")
    cli.ok("ssh", "--", "sh", "-c", f"echo resumed > {SHM_MARKER}")
    cli.ok("ssh", "--", "sudo", "sh", "-c", f"echo kept > {DISK_MARKER}")
    boot = _boot_id(cli)
    pinned = json.loads((_machine_dir(cli) / "machine.json").read_text())["host_key"]

    stopped = cli.run("stop", label="stop (save)")
    assert stopped.returncode == 0 and "saved" in stopped.stderr, stopped.stderr
    status = cli.run("status")
    assert status.returncode & 1 and "host: Saved" in status.stdout, status.stdout
    assert {r["name"]: r["status"] for r in json.loads(cli.ok("profile", "list", "-o", "json"))}[cli.profile] \
        == "Saved"
    assert _state_file(cli).exists()
    _sizes(cli, "no-kubernetes")
    again = cli.run("stop")
    assert again.returncode == 0 and "already stopped" in again.stderr  # a saved machine: nothing to do
    refused = cli.run("ssh", "--", "true")
    assert refused.returncode == 30 and "Saved" in refused.stderr

    started = cli.run(*_start_args(iso, driver, *extra), label="start (resume)")
    assert started.returncode == 0, started.stderr
    assert "cannot be used" not in started.stderr
    _clock_within(cli, 2.0, "after resume")
    _logged_clock(cli, "after resume")
    assert _guest(cli, "cat", SHM_MARKER) == "resumed"  # tmpfs content: the memory came back, nothing booted
    assert _boot_id(cli) == boot
    assert json.loads((_machine_dir(cli) / "machine.json").read_text())["host_key"] == pinned
    assert not (_machine_dir(cli) / "vmstate.json").exists()  # a resumed state is never loaded twice
    assert json.loads(cli.run("status", "-o", "json").stdout)["Host"] == "Running"


def _pause_unpause(cli: CLI) -> None:
    cli.ok("pause", label="pause")
    status = cli.run("status")
    assert status.returncode == 2 and "host: Paused" in status.stdout, (status.returncode, status.stdout)
    time.sleep(5)  # the guest's clock stands still meanwhile; unpause sets it
    cli.ok("unpause", label="unpause")
    assert _guest(cli, "cat", SHM_MARKER) == "resumed"
    _clock_within(cli, 2.0, "after unpause")
    _logged_clock(cli, "after unpause")
    assert cli.run("status").returncode == 0


def _truncated_state_boots_cold(cli: CLI, iso: BuildResult, driver: str, *extra: str) -> None:
    boot = _boot_id(cli)
    cli.ok("stop", label="stop (save, again)")
    state = _state_file(cli)
    with state.open("r+b") as f:
        f.truncate(state.stat().st_size // 2)
    started = cli.run(*_start_args(iso, driver, *extra), label="start (truncated state: cold boot)")
    assert started.returncode == 0, started.stderr
    notice = [ln for ln in started.stderr.splitlines() if "cannot be used" in ln]
    assert len(notice) == 1 and "truncated" in notice[0] and "data disk is kept" in notice[0], started.stderr
    assert _boot_id(cli) != boot
    assert cli.run("ssh", "--", "test", "-e", SHM_MARKER).returncode == 1  # memory gone: it booted
    assert _guest(cli, "cat", DISK_MARKER) == "kept"  # the data disk kept everything written before the stop


def _corrupt_state_is_refused(cli: CLI, iso: BuildResult, driver: str, *extra: str) -> None:
    """Same size, one byte changed in the middle: only the digest can tell; qemu has loaded it by then."""
    cli.ok("ssh", "--", "sh", "-c", f"echo resumed > {SHM_MARKER}")
    cli.ok("stop")
    state = _state_file(cli)
    with state.open("r+b") as f:
        f.seek(state.stat().st_size // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))
    started = cli.run(*_start_args(iso, driver, *extra), label="start (corrupt state: cold boot)")
    assert started.returncode == 0, started.stderr
    assert "corrupt" in started.stderr and "cannot be used" in started.stderr, started.stderr
    assert cli.run("ssh", "--", "test", "-e", SHM_MARKER).returncode == 1
    assert _guest(cli, "cat", DISK_MARKER) == "kept"


def _delete_removes_the_saved_state(cli: CLI) -> Path:
    cli.ok("stop")
    state = _state_file(cli)
    assert state.exists()
    cli.ok("delete")
    assert not state.exists() and not _machine_dir(cli).exists()
    return state


def _record(cli: CLI, name: str, tmp_path: Path) -> None:
    out = Path(os.environ.get("MINISAND_BENCH_OUT", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(cli.timings, indent=2))


def test_qemu_stop_saves_start_resumes(iso: BuildResult, tmp_path: Path) -> None:
    cli = CLI(tmp_path / "home", "qemu-resume")
    try:
        _save_and_resume(cli, iso, "qemu")
        _pause_unpause(cli)
        _truncated_state_boots_cold(cli, iso, "qemu")
        _corrupt_state_is_refused(cli, iso, "qemu")
        _delete_removes_the_saved_state(cli)
        assert qemu_pids(f"minisand-{cli.profile}") == []
        _record(cli, "qemu-resume", tmp_path)
    finally:
        cli.run("delete")
        for pid in qemu_pids(f"minisand-{cli.profile}"):
            os.kill(pid, signal.SIGKILL)


def test_kvm2_managed_save_resumes(iso: BuildResult, tmp_path: Path, libvirtd: Libvirtd) -> None:
    cli = CLI(tmp_path / "home", "kvm-resume", prefix=libvirtd.ns.argv())
    try:
        _save_and_resume(cli, iso, "kvm2")
        _pause_unpause(cli)
        _truncated_state_boots_cold(cli, iso, "kvm2")
        state = _delete_removes_the_saved_state(cli)
        assert state.parent == Path("/var/lib/libvirt/qemu/save")
        doms, _ = libvirt_objects()
        assert f"minisand-{cli.profile}" not in doms
        assert qemu_pids(f"minisand-{cli.profile}") == []
        _record(cli, "kvm2-resume", tmp_path)
    finally:
        cli.run("delete")
