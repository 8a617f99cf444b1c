"""The qemu driver: qemu-system run directly, user-mode networking with 127.0.0.1 host forwards, QMP for
state and graceful stop, serial console to a file, fw_cfg for first-boot data, direct kernel boot; `save` and
`resume` through qemu's migration to and from a state file in the machine folder (see migrate.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import ClassVar

from minisand import guest, hosttools, procs
from minisand.drivers import accel, savedstate, vmcommon
from minisand.drivers.base import Health, MachineRecord, MachineSpec, MachineState, ResumeFailed
from minisand.drivers.qemu import hostfwd, migrate
from minisand.drivers.qemu.cmdline import GuestForward, QemuSettings, build_argv, device_argv
from minisand.drivers.qemu.qmp import QMP, QMPError
from minisand.drivers.savedstate import SavedMeta, SaveReport
from minisand.errors import ExitCode, MinisandError
from minisand.hosttools import Role
from minisand.runner.base import CommandRunner
from minisand.runner.ssh import SSHTarget

log = logging.getLogger(__name__)

NETDEV = "net0"  # the user-mode netdev's id (cmdline.build_argv): where hostfwd_add adds forwards


def kernel_cmdline() -> str:
    return guest.kernel_cmdline()


def health() -> Health:
    qemu = accel.qemu_binary()
    if not hosttools.locate(qemu):
        return Health(False, f"{qemu} is not installed", "apt-get install qemu-system-x86 qemu-utils")
    missing = hosttools.gap(Role.QEMU)
    return Health(False, *missing) if missing else Health(True)


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
        self.state_file = self.dir / "vmstate"
        self.state_meta = self.dir / "vmstate.json"
        self.launch_file = self.dir / "launch.json"  # what the running qemu was started with
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
            return MachineState.SAVED if self.has_saved_state() else MachineState.STOPPED
        try:
            with QMP(self.qmp_socket, timeout=3) as q:
                status = migrate.run_state(q)
        except QMPError:
            return MachineState.RUNNING  # the process runs; QMP may be busy
        return {"running": MachineState.RUNNING, "paused": MachineState.PAUSED,
                "shutdown": MachineState.STOPPING, "inmigrate": MachineState.STARTING,
                "prelaunch": MachineState.STARTING, "finish-migrate": MachineState.STOPPING,
                "postmigrate": MachineState.STOPPING}.get(status, MachineState.ERROR)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def create(self) -> None:
        self.preflight()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        vmcommon.write_first_boot(self.spec)
        vmcommon.create_disk(self.disk, self.spec.disk_mb, self.spec.data_image)
        rec = self.record() or MachineRecord(machine=self.spec.machine, driver=self.name, profile=self.spec.profile)
        if self._pid() is None:  # a running machine keeps the ports its qemu listens on (they are not free)
            rec = vmcommon.ensure_ports(rec, self.dir)
        rec.save(self.dir)

    def _settings(self, rec: MachineRecord, accel_name: str, resume: bool = False) -> QemuSettings:
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
            fw_cfg_files=((guest.FW_CFG_KEYS, fw / "authorized_keys"),
                          (guest.FW_CFG_HOSTNAME, fw / "hostname")),
            fw_cfg_strings=(), serial_log=self.serial_log, qmp_socket=self.qmp_socket, pidfile=self.pidfile,
            incoming=resume, serial_append=resume)

    def _accel(self) -> str:
        verdict = accel.resolve(self.spec.options.qemu_accel, self.spec.cache_dir, self.spec.kernel,
                                self.spec.initrd)
        if verdict.accel == "tcg" and self.spec.options.qemu_accel == "auto" and verdict.probed:
            log.warning("KVM is not usable here (%s); using TCG, which is much slower", verdict.reason)
        return verdict.accel

    def _ensure_record(self) -> MachineRecord:
        rec = self.record()
        if rec is None:
            self.create()
            rec = self.record()
            assert rec is not None
        return rec

    def start(self) -> None:
        """A cold boot from the data disk (a saved state is dropped: the disk moves on without it)."""
        if self._pid() is not None:
            return
        if self.has_saved_state():
            log.warning("machine %s boots cold: its saved state is discarded", self.spec.machine)
            self.discard_saved_state()
        self._launch(self._ensure_record(), self._accel(), resume=False)

    def _launch(self, rec: MachineRecord, accel_name: str, resume: bool) -> None:
        last_error = ""
        hostfwd.forget(self.dir)  # forwards added to an earlier process (a crash, a save) went with it
        for attempt in range(3):
            rec = vmcommon.ensure_ports(rec, self.dir, reallocate=attempt > 0)
            if self.serial_log.exists() and not resume:
                self.serial_log.replace(self.dir / "serial.log.prev")
            self.qmp_socket.unlink(missing_ok=True)
            self.pidfile.unlink(missing_ok=True)
            argv = build_argv(self._settings(rec, accel_name, resume))
            log.debug("qemu argv: %s", argv)
            qemu_log = self.dir / "qemu.log"
            qemu_log.unlink(missing_ok=True)
            # -daemonize: this process exits once the machine runs; the daemon never holds minisand's stdio
            proc = procs.spawn_daemon(argv, qemu_log)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if code == 0 and self._pid() is not None:
                rec = vmcommon.note_boot(dataclasses.replace(rec, accel=accel_name), self.spec)
                rec.save(self.dir)
                savedstate.save_current(self.launch_file, self._current(self._settings(rec, accel_name)))
                return
            last_error = procs.log_tail(qemu_log, 1) or f"exit code {code}"
            if "host forwarding" not in last_error and "Address already in use" not in last_error:
                break
        raise MinisandError(f"qemu failed to start machine {self.spec.machine}: {last_error}",
                            hint="`minisand logs` has details; `minisand delete` removes a broken machine",
                            code=ExitCode.DRIVER_ERROR)

    def stop(self, timeout: float = 90.0) -> None:
        pid = self._pid()
        if pid is None:
            return
        hostfwd.release_all(self.dir, self.hmp, NETDEV)
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
        hostfwd.forget(self.dir)
        self.qmp_socket.unlink(missing_ok=True)
        self.pidfile.unlink(missing_ok=True)

    # -- saved state -------------------------------------------------------------------------------------
    def has_saved_state(self) -> bool:
        return self.state_meta.exists() or self.state_file.exists()

    def _current(self, settings: QemuSettings) -> savedstate.Current:
        """What the machine runs with (written at launch, read by save) or would run with (resume)."""
        emulator = shutil.which(settings.qemu) or settings.qemu
        return savedstate.Current(
            emulator=emulator, emulator_sha256=savedstate.emulator_sha256(emulator), cpus=settings.cpus,
            memory_mb=settings.memory_mb, device_argv=device_argv(settings), boot_id=savedstate.boot_id(),
            media={"ISO": savedstate.FileId.of(settings.iso or ""), "data disk": savedstate.FileId.of(self.disk)})

    def save(self, timeout: float) -> SaveReport:
        pid, rec = self._pid(), self.record()
        if pid is None or rec is None:
            raise MinisandError(f"machine {self.spec.machine} is not running", hint="nothing to save",
                                code=ExitCode.MACHINE_NOT_RUNNING)
        launched = savedstate.launched_with(self.launch_file, self.spec.machine)
        t0 = time.monotonic()
        self.discard_saved_state()
        part = self.dir / "vmstate.part"
        try:
            info = migrate.save(self.qmp_socket, part, timeout)
        except (migrate.MigrationError, QMPError) as exc:
            part.unlink(missing_ok=True)
            raise MinisandError(f"saving machine {self.spec.machine} failed: {exc}", code=ExitCode.DRIVER_ERROR,
                                hint="`minisand stop --cold` powers it off instead") from None
        log.info("migration of %s: %s", self.spec.machine, info)
        self.kill()  # quit: the state is complete and qemu has flushed the disk
        # not fsynced: a host crash changes the boot id, and a state from another boot is never resumed
        part.replace(self.state_file)
        current = dataclasses.replace(launched, boot_id=savedstate.boot_id(),
                                      media={**launched.media, "data disk": savedstate.FileId.of(self.disk)})
        meta = SavedMeta(driver=self.name, state_file=self.state_file.name, size=self.state_file.stat().st_size,
                         sha256=savedstate.file_sha256(self.state_file), current=current,
                         saved_at=savedstate.now(), save_seconds=round(time.monotonic() - t0, 3))
        meta.save(self.state_meta)
        return savedstate.report_for(self.spec.machine, self.state_file, time.monotonic() - t0)

    def saved_state_problem(self) -> str | None:
        rec = self.record()
        if rec is None:
            return "the machine has no record"
        meta = SavedMeta.load(self.state_meta)
        size = self.state_file.stat().st_size if self.state_file.exists() else None
        return savedstate.unusable_reason(meta, self._current(self._settings(rec, self._accel())), size)

    def resume(self, timeout: float) -> None:
        meta, rec = SavedMeta.load(self.state_meta), self._ensure_record()
        if meta is None or self._pid() is not None:
            raise ResumeFailed("no saved state" if meta is None else "the machine is already running")
        digest = savedstate.BackgroundDigest(self.state_file)
        try:
            self._launch(rec, self._accel(), resume=True)
            migrate.load(self.qmp_socket, self.state_file, timeout)
        except (MinisandError, migrate.MigrationError, QMPError) as exc:
            tail = procs.log_tail(self.dir / "qemu.log", 1)
            self.kill()
            raise ResumeFailed(f"qemu could not load it ({tail or exc})") from None
        bad = savedstate.digest_mismatch(meta, digest.result())
        if bad:
            self.kill()
            raise ResumeFailed(bad)
        self.discard_saved_state()  # from here on the disk moves on: this state must never be loaded again
        try:
            migrate.cont(self.qmp_socket)
        except (migrate.MigrationError, QMPError) as exc:
            self.kill()
            raise ResumeFailed(f"the loaded machine did not run ({exc})") from None

    def discard_saved_state(self) -> None:
        self.state_meta.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
        (self.dir / "vmstate.part").unlink(missing_ok=True)  # a save that never finished

    def pause(self) -> None:
        self._qmp_run_control("stop")

    def unpause(self) -> None:
        self._qmp_run_control("cont")

    def _qmp_run_control(self, command: str) -> None:
        if self._pid() is None:
            raise MinisandError(f"machine {self.spec.machine} is not running", hint="start it with `minisand start`",
                                code=ExitCode.MACHINE_NOT_RUNNING)
        try:
            with QMP(self.qmp_socket, timeout=10) as q:
                q.execute(command)
        except QMPError as exc:
            raise MinisandError(f"qemu refused {command} for machine {self.spec.machine}: {exc}",
                                hint="`minisand logs` has details", code=ExitCode.DRIVER_ERROR) from None

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.dir.exists():
            raise MinisandError(f"could not remove {self.dir}", hint="remove it by hand",
                                code=ExitCode.DRIVER_ERROR)

    # -- access ------------------------------------------------------------------------------------------
    def hmp(self, command: str) -> str:
        """One human-monitor command (e.g. `info usernet`, `hostfwd_add ...`) over QMP; raises QMPError."""
        with QMP(self.qmp_socket, timeout=10) as q:
            return str(q.execute("human-monitor-command", **{"command-line": command}))

    def ssh_target(self) -> SSHTarget | None:
        rec = self.record()
        return vmcommon.ssh_target(self.spec, rec) if rec else None

    def runner(self) -> CommandRunner:
        return vmcommon.ssh_runner(self.spec, self.record())

    def console_log(self) -> Path | None:
        return self.serial_log
