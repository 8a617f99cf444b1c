"""Pieces shared by the VM drivers: machine files, first-boot data, port allocation, console readback."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

from minisand.drivers import procs
from minisand.drivers.base import MachineRecord, MachineSpec
from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text
from minisand.guestpaths import GUEST_USER
from minisand.runner.base import CommandRunner
from minisand.runner.logged import LoggedRunner
from minisand.runner.ssh import SSHRunner, SSHTarget

FW_CFG_KEYS = "opt/minisand/authorized_keys"
FW_CFG_HOSTNAME = "opt/minisand/hostname"


def check_path(path: Path) -> Path:
    if "," in str(path):
        raise MinisandError(f"path {path} contains a comma, which qemu's option syntax cannot take",
                            hint="set MINISAND_HOME to a path without commas", code=ExitCode.BAD_INPUT)
    return path


def write_first_boot(spec: MachineSpec) -> Path:
    """fw_cfg payload files in machine_dir/fw_cfg/ (the guest's first-boot unit reads them)."""
    d = spec.machine_dir / "fw_cfg"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_text(d / "authorized_keys", spec.ssh_pubkey.strip() + "\n", mode=0o644)
    atomic_write_text(d / "hostname", spec.hostname + "\n", mode=0o644)
    return d


def create_disk(path: Path, size_mb: int) -> None:
    if path.exists():
        return
    qemu_img = shutil.which("qemu-img")
    if not qemu_img:
        raise MinisandError("qemu-img is not installed", hint="apt install qemu-utils",
                            code=ExitCode.DRIVER_UNAVAILABLE)
    tmp = path.with_name(path.name + ".tmp")
    proc = subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(tmp), f"{size_mb}M"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MinisandError(f"qemu-img could not create {path}: {proc.stderr.strip()}",
                            hint="check free disk space under MINISAND_HOME", code=ExitCode.DRIVER_ERROR)
    tmp.replace(path)


def ensure_ports(rec: MachineRecord, machine_dir: Path, *, reallocate: bool = False) -> MachineRecord:
    """Host ports for SSH and the API server on 127.0.0.1: kept across starts while they are free."""
    ssh, api = rec.ssh_port, rec.apiserver_port
    if reallocate or not ssh or not procs.port_free(ssh):
        ssh = procs.free_port()
    if reallocate or not api or not procs.port_free(api) or api == ssh:
        api = procs.free_port()
        while api == ssh:
            api = procs.free_port()
    if (ssh, api) != (rec.ssh_port, rec.apiserver_port):
        rec = dataclasses.replace(rec, ssh_port=ssh, apiserver_port=api)
        rec.save(machine_dir)
    return rec


def ssh_target(spec: MachineSpec, rec: MachineRecord) -> SSHTarget:
    return SSHTarget(host=rec.ssh_host, port=rec.ssh_port, user=rec.ssh_user or GUEST_USER,
                     key_path=spec.ssh_key_path, host_key=rec.host_key or None)


def ssh_runner(spec: MachineSpec, rec: MachineRecord | None, connect_timeout: float = 180.0) -> CommandRunner:
    if rec is None or not rec.ssh_port:
        raise MinisandError(f"machine {spec.machine} has no SSH endpoint yet", hint="run `minisand start`",
                            code=ExitCode.MACHINE_NOT_RUNNING)
    if not rec.host_key:
        raise MinisandError(f"machine {spec.machine} has no pinned host key",
                            hint="run `minisand start` (it pins the key at boot)", code=ExitCode.SSH_ERROR)
    return LoggedRunner(SSHRunner(ssh_target(spec, rec), connect_timeout=connect_timeout), spec.machine)
