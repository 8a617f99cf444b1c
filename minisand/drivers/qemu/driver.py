"""The qemu driver: qemu-system run directly, user-mode networking with 127.0.0.1 host forwards, QMP for
state and graceful stop, serial console to a file, fw_cfg for first-boot data, direct kernel boot."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

from minisand.drivers import accel, procs, vmcommon
from minisand.drivers.base import Health, MachineRecord, MachineSpec, MachineState
from minisand.drivers.qemu.cmdline import GuestForward, QemuSettings, build_argv
from minisand.drivers.qemu.qmp import QMP, QMPError
from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandRunner
from minisand.runner.ssh import SSHTarget

log = logging.getLogger(__name__)


def kernel_cmdline() -> str:
    from minisand.iso.layout import kernel_cmdline as iso_cmdline

    return iso_cmdline()


def health() -> Health:
    qemu = accel.qemu_binary()
    if not shutil.which(qemu):
        return Health(False, f"{qemu} is not installed", "apt install qemu-system-x86 qemu-utils")
    if not shutil.which("qemu-img"):
        return Health(False, "qemu-img is not installed", "apt install qemu-utils")
    return Health(True)


def create_driver(spec: MachineSpec) -> QemuDriver:
    return QemuDriver(spec)


class QemuDriver:
    name: ClassVar[str] = "qemu"

    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.dir = vmcommon.check_path(spec.machine_dir)
        self.disk = self.dir / "disk.qcow2"
        self.pidfile = self.dir / "qemu.pid"
        self.qmp_socket = self.dir / "qmp.sock"
        self.serial_log = self.dir / "serial.log"
        self.marker = f"minisand-{spec.machine}"

    # -- state -------------------------------------------------------------------------------------------
    def preflight(self) -> None:
        h = health()
        if not h.ok:
            raise MinisandError(f"the qemu driver is not usable: {h.reason}", hint=h.fix,
                                code=ExitCode.DRIVER_UNAVAILABLE)

    def record(self) -> MachineRecord | None:
        return MachineRecord.load(self.dir)

    def _pid(self) -> int | None:
        pid = procs.read_pid(self.pidfile)
        if pid is not None and procs.alive(pid, self.marker):
            return pid
        return None

    def state(self) -> MachineState:
        if self.record() is None:
            return MachineState.NONEXISTENT
        pid = self._pid()
        if pid is None:
            return MachineState.STOPPED
        try:
            with QMP(self.qmp_socket, timeout=3) as q:
                status = q.execute("query-status").get("status", "")
        except QMPError:
            return MachineState.RUNNING  # the process runs; QMP may be busy
        return {"running": MachineState.RUNNING, "paused": MachineState.PAUSED,
                "shutdown": MachineState.STOPPING, "inmigrate": MachineState.STARTING,
                "prelaunch": MachineState.STARTING}.get(status, MachineState.ERROR)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def create(self) -> None:
        self.preflight()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        vmcommon.write_first_boot(self.spec)
        vmcommon.create_disk(self.disk, self.spec.disk_mb)
        rec = self.record() or MachineRecord(machine=self.spec.machine, driver=self.name)
        rec = vmcommon.ensure_ports(rec, self.dir)
        rec.save(self.dir)

    def _settings(self, rec: MachineRecord, accel_name: str) -> QemuSettings:
        if self.spec.iso is None:
            raise MinisandError("the qemu driver needs the guest ISO", hint="pass --iso-url or run "
                                "`minisand iso build`", code=ExitCode.ISO_ERROR)
        fw = self.dir / "fw_cfg"
        opts = self.spec.options
        return QemuSettings(
            qemu=accel.qemu_binary(), name=self.spec.machine, accel=accel_name, cpus=self.spec.cpus,
            memory_mb=self.spec.memory_mb, disk=self.disk, iso=vmcommon.check_path(self.spec.iso),
            kernel=self.spec.kernel, initrd=self.spec.initrd, append=kernel_cmdline(),
            ssh_port=rec.ssh_port, apiserver_port=rec.apiserver_port, restrict=not opts.guest_egress,
            guest_forwards=tuple(GuestForward.parse(f) for f in opts.guest_forwards),
            fw_cfg_files=((vmcommon.FW_CFG_KEYS, fw / "authorized_keys"),
                          (vmcommon.FW_CFG_HOSTNAME, fw / "hostname")),
            fw_cfg_strings=(), serial_log=self.serial_log, qmp_socket=self.qmp_socket, pidfile=self.pidfile)

    def start(self) -> None:
        if self._pid() is not None:
            return
        rec = self.record()
        if rec is None:
            self.create()
            rec = self.record()
            assert rec is not None
        verdict = accel.resolve(self.spec.options.qemu_accel, self.spec.cache_dir, self.spec.kernel,
                                self.spec.initrd)
        if verdict.accel == "tcg" and self.spec.options.qemu_accel == "auto" and verdict.probed:
            log.warning("KVM is not usable here (%s); using TCG, which is much slower", verdict.reason)
        last_error = ""
        for attempt in range(3):
            rec = vmcommon.ensure_ports(rec, self.dir, reallocate=attempt > 0)
            if self.serial_log.exists():
                self.serial_log.replace(self.dir / "serial.log.prev")
            self.qmp_socket.unlink(missing_ok=True)
            self.pidfile.unlink(missing_ok=True)
            argv = build_argv(self._settings(rec, verdict.accel))
            log.debug("qemu argv: %s", argv)
            proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
            if proc.returncode == 0 and self._pid() is not None:
                rec = dataclasses.replace(rec, accel=verdict.accel)
                rec.save(self.dir)
                return
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            last_error = lines[-1] if lines else f"exit code {proc.returncode}"
            if "host forwarding" not in last_error and "Address already in use" not in last_error:
                break
        raise MinisandError(f"qemu failed to start machine {self.spec.machine}: {last_error}",
                            hint="`minisand logs` has details; `minisand delete` removes a broken machine",
                            code=ExitCode.DRIVER_ERROR)

    def stop(self, timeout: float = 90.0) -> None:
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(QMPError), QMP(self.qmp_socket, timeout=5) as q:
            q.execute("system_powerdown")
        if procs.wait_gone(pid, timeout, self.marker):
            self._cleanup_runtime_files()
            return
        log.warning("machine %s did not power off within %.0fs; killing it", self.spec.machine, timeout)
        self.kill()

    def kill(self) -> None:
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(QMPError), QMP(self.qmp_socket, timeout=2) as q:
            q.execute("quit")
        if not procs.wait_gone(pid, 5, self.marker):
            procs.kill(pid, self.marker)
        self._cleanup_runtime_files()

    def _cleanup_runtime_files(self) -> None:
        self.qmp_socket.unlink(missing_ok=True)
        self.pidfile.unlink(missing_ok=True)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.dir.exists():
            raise MinisandError(f"could not remove {self.dir}", hint="remove it by hand",
                                code=ExitCode.DRIVER_ERROR)

    # -- access ------------------------------------------------------------------------------------------
    def ssh_target(self) -> SSHTarget | None:
        rec = self.record()
        return vmcommon.ssh_target(self.spec, rec) if rec else None

    def runner(self) -> CommandRunner:
        return vmcommon.ssh_runner(self.spec, self.record())

    def console_log(self) -> Path | None:
        return self.serial_log
