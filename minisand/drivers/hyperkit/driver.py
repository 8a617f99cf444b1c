"""The hyperkit driver (macOS): hyperkit run directly with vmnet networking; the IP comes from bootpd's
leases. On any other OS its health check says it is unavailable and why."""

from __future__ import annotations

import dataclasses
import platform
import shutil
import time
import uuid as uuidlib
from pathlib import Path
from typing import ClassVar

from minisand import procs
from minisand.drivers.base import (
    GUEST_APISERVER_PORT,
    GUEST_SSH_PORT,
    Health,
    MachineRecord,
    MachineSpec,
    MachineState,
)
from minisand.drivers.hyperkit import leases
from minisand.drivers.hyperkit.cmdline import HyperkitSettings, build_argv
from minisand.drivers.qemu.driver import kernel_cmdline
from minisand.drivers.seed import write_seed_iso
from minisand.drivers.vmcommon import ssh_runner, ssh_target
from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandRunner
from minisand.runner.ssh import SSHTarget


def health() -> Health:
    if platform.system() != "Darwin":
        return Health(False, f"hyperkit runs only on macOS (this is {platform.system()})",
                      "use the kvm2 or qemu driver on Linux")
    if not shutil.which("hyperkit"):
        return Health(False, "hyperkit is not installed", "brew install hyperkit")
    return Health(True)


def create_driver(spec: MachineSpec) -> HyperkitDriver:
    return HyperkitDriver(spec)


class HyperkitDriver:
    name: ClassVar[str] = "hyperkit"

    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.dir = spec.machine_dir
        self.disk = self.dir / "disk.rawdisk"
        self.seed = self.dir / "cidata.iso"

    def preflight(self) -> None:
        h = health()
        if not h.ok:
            raise MinisandError(f"the hyperkit driver is not usable: {h.reason}", hint=h.fix,
                                code=ExitCode.DRIVER_UNAVAILABLE)

    def record(self) -> MachineRecord | None:
        return MachineRecord.load(self.dir)

    def settings(self, rec: MachineRecord) -> HyperkitSettings:
        if not (self.spec.iso and self.spec.kernel and self.spec.initrd):
            raise MinisandError("the hyperkit driver needs the guest ISO and its kernel", code=ExitCode.ISO_ERROR,
                                hint="pass --iso-url or run `minisand iso build` on Linux")
        return HyperkitSettings(
            hyperkit=shutil.which("hyperkit") or "hyperkit", uuid=rec.extra["uuid"], cpus=self.spec.cpus,
            memory_mb=self.spec.memory_mb, disk=self.disk, iso=self.spec.iso, seed=self.seed,
            kernel=self.spec.kernel, initrd=self.spec.initrd, cmdline=kernel_cmdline(), state_dir=self.dir)

    def _pid(self) -> int | None:
        pid = procs.read_pid(self.dir / "hyperkit.pid")
        return pid if pid is not None and procs.alive(pid, "hyperkit") else None

    def state(self) -> MachineState:
        if self.record() is None:
            return MachineState.NONEXISTENT
        return MachineState.RUNNING if self._pid() else MachineState.STOPPED

    def create(self) -> None:
        self.preflight()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.disk.exists():
            with self.disk.open("wb") as f:
                f.truncate(self.spec.disk_mb * 1024 * 1024)
        write_seed_iso(self.seed, self.spec.hostname, self.spec.ssh_pubkey)
        rec = self.record() or MachineRecord(machine=self.spec.machine, driver=self.name, profile=self.spec.profile,
                                             extra={"uuid": str(uuidlib.uuid4())})
        rec.save(self.dir)

    def start(self) -> None:
        if self._pid():
            return
        self.create()
        rec = self.record()
        assert rec is not None
        procs.spawn_daemon(build_argv(self.settings(rec)), self.dir / "hyperkit.log")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            lease = leases.find(leases.parse(leases.LEASES.read_text()) if leases.LEASES.exists() else [],
                                name=self.spec.hostname)
            if lease:
                rec = dataclasses.replace(rec, ssh_host=lease.ip, ssh_port=GUEST_SSH_PORT, node_ip=lease.ip,
                                          apiserver_host=lease.ip, apiserver_port=GUEST_APISERVER_PORT)
                rec.save(self.dir)
                return
            time.sleep(1)
        raise MinisandError(f"machine {self.spec.machine} got no DHCP lease within 180s", code=ExitCode.DRIVER_ERROR,
                            hint=f"see {leases.LEASES}")

    def stop(self, timeout: float = 90.0) -> None:
        pid = self._pid()
        if pid is not None:
            procs.kill(pid, "hyperkit", grace=timeout)

    def kill(self) -> None:
        pid = self._pid()
        if pid is not None:
            procs.kill(pid, "hyperkit", grace=1)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def ssh_target(self) -> SSHTarget | None:
        rec = self.record()
        return ssh_target(self.spec, rec) if rec else None

    def runner(self) -> CommandRunner:
        return ssh_runner(self.spec, self.record())

    def console_log(self) -> Path | None:
        return self.dir / "console-ring"
