"""A guest kernel that panics while booting is recognised on its console at once, and `bring_up` restarts the
machine (a bounded number of times) instead of waiting out the boot timeout. The console excerpt is a real one,
from a TCG boot of the minisand ISO on this kind of host."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from minisand.cluster import machine
from minisand.drivers.base import Driver, MachineRecord, MachineState
from minisand.errors import ExitCode
from minisand.guest import HOST_KEYS_END, GuestPanicked, check_panic, panic_detail
from tests.unit.fakes import FakeRunner

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMyIuNaRP0y0VhCYZeIbQ0xS0SxJk7aXD3G5tD0x6mP1"

PANIC = """\
[    1.264939] Oops: int3: 0000 [#1] SMP NOPTI
[    1.268286] CPU: 0 UID: 0 PID: 1 Comm: swapper/0 Tainted: G      D             7.2.12+deb14-amd64 #1
[    1.268349] RIP: 0010:sched_clock_cpu+0x9/0x230
[    1.268171] Oops: int3: 0000 [#2] SMP NOPTI
[    1.268424] Kernel panic - not syncing: Fatal exception in interrupt
[    2.824420] ---[ end Kernel panic - not syncing: Fatal exception in interrupt ]---
"""

BOOTED = f"""\
minisand-init: formatting nothing
-----BEGIN MINISAND HOST KEYS-----
{ED}
{HOST_KEYS_END}
MINISAND-SSH-READY
"""


def test_panic_detail_names_the_first_oops() -> None:
    assert panic_detail(PANIC) == "Oops: int3: 0000 [#1] SMP NOPTI"
    assert panic_detail(BOOTED) is None
    assert panic_detail("[ 3.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n") == (
        "Kernel panic - not syncing: VFS: Unable to mount root fs")


def test_check_panic(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    check_panic(log)  # no log yet: nothing to say
    log.write_text(BOOTED)
    check_panic(log)
    log.write_text(PANIC)
    with pytest.raises(GuestPanicked) as exc:
        check_panic(log)
    assert exc.value.code == ExitCode.DRIVER_ERROR
    assert "panicked while booting (Oops: int3" in exc.value.one_line()
    assert str(log) in exc.value.hint


def test_wait_console_stops_at_a_panic_instead_of_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_text(PANIC)
    t0 = time.monotonic()
    with pytest.raises(GuestPanicked):
        machine.wait_console(log, HOST_KEYS_END, timeout=60)
    assert time.monotonic() - t0 < 5


class PanickyDriver:
    """A driver whose first `panics` boots die in the kernel; the console log is what the guest printed."""

    def __init__(self, tmp: Path, panics: int) -> None:
        self.spec = SimpleNamespace(machine="m01", machine_dir=tmp)
        self.log = tmp / "serial.log"
        self.panics_left = panics
        self.calls: list[str] = []
        self.running = False
        self.fake_runner = FakeRunner().on("true")
        MachineRecord(machine="m01", driver="fake").save(tmp)

    def state(self) -> MachineState:
        return MachineState.RUNNING if self.running else MachineState.STOPPED

    def create(self) -> None:
        self.calls.append("create")

    def start(self) -> None:
        self.calls.append("start")
        self.running = True
        if self.panics_left:
            self.panics_left -= 1
            self.log.write_text(PANIC)
        else:
            self.log.write_text(BOOTED)

    def kill(self) -> None:
        self.calls.append("kill")
        self.running = False

    def stop(self, timeout: float = 90.0) -> None:
        self.calls.append("stop")
        self.running = False

    def console_log(self) -> Path:
        return self.log

    def record(self) -> MachineRecord | None:
        return MachineRecord.load(self.spec.machine_dir)

    def runner(self) -> FakeRunner:
        return self.fake_runner


def test_bring_up_restarts_a_machine_whose_kernel_panicked(tmp_path: Path) -> None:
    drv = PanickyDriver(tmp_path, panics=2)
    runner = machine.bring_up(cast(Driver, drv), boot_timeout=30)
    assert drv.calls == ["create", "start", "kill", "start", "kill", "start"]
    assert runner is cast(object, drv.fake_runner)
    assert drv.fake_runner.commands == [["true"]]
    rec = MachineRecord.load(tmp_path)
    assert rec is not None and rec.host_key == ED  # pinned from the boot that finished


def test_bring_up_gives_up_after_three_panicked_boots(tmp_path: Path) -> None:
    drv = PanickyDriver(tmp_path, panics=machine.BOOT_ATTEMPTS)
    with pytest.raises(GuestPanicked) as exc:
        machine.bring_up(cast(Driver, drv), boot_timeout=30)
    assert exc.value.code == ExitCode.DRIVER_ERROR
    assert drv.calls.count("start") == machine.BOOT_ATTEMPTS
    assert drv.fake_runner.commands == []
    rec = MachineRecord.load(tmp_path)
    assert rec is not None and rec.host_key == ""  # nothing pinned from a boot that never finished


def test_an_image_that_accepts_root_gets_minisands_commands_as_root(tmp_path: Path) -> None:
    from minisand.config.model import DriverOptions
    from minisand.drivers import vmcommon
    from minisand.drivers.base import MachineSpec
    from minisand.runner.logged import LoggedRunner
    from minisand.runner.ssh import SSHRunner

    drv = PanickyDriver(tmp_path, panics=0)
    drv.start()
    drv.log.write_text(BOOTED.replace("MINISAND-SSH-READY", "MINISAND-ROOT-LOGIN\nMINISAND-SSH-READY"))
    machine.pin_host_key(cast(Driver, drv), timeout=10)
    rec = MachineRecord.load(tmp_path)
    assert rec is not None and rec.extra == {vmcommon.ROOT_LOGIN_KEY: "yes"}
    spec = MachineSpec(machine="m01", profile="p", machine_dir=tmp_path, cache_dir=tmp_path, cpus=2, memory_mb=2048,
                       disk_mb=20480, hostname="m01", ssh_pubkey="", ssh_key_path=tmp_path / "k",
                       options=DriverOptions())
    runner = vmcommon.ssh_runner(spec, dataclasses.replace(rec, ssh_port=22))
    assert isinstance(runner, LoggedRunner) and isinstance(runner.inner, SSHRunner)
    assert runner.inner.target.user == "root"
    assert vmcommon.ssh_target(spec, rec).user == "minisand"  # `minisand ssh` still logs in as the user
    drv.log.write_text(BOOTED)  # an older image: back to the user and sudo
    machine.pin_host_key(cast(Driver, drv), timeout=10)
    rec = MachineRecord.load(tmp_path)
    assert rec is not None and rec.extra == {}
