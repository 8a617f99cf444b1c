"""Pieces shared by the VM drivers: machine files, first-boot data, port allocation, console readback."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

from minisand import procs
from minisand.drivers.base import MachineRecord, MachineSpec
from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text
from minisand.guest import GUEST_USER
from minisand.runner.base import CommandRunner
from minisand.runner.logged import LoggedRunner
from minisand.runner.ssh import SSHRunner, SSHTarget

ROOT_LOGIN_KEY = "root_login"  # MachineRecord.extra: "yes" when the image accepts the machine's key for root


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


BASE_IMAGE = "data-base.img"  # the node image, linked into the machine's folder (the disk's backing file)


def create_disk(path: Path, size_mb: int, base: Path | None = None) -> None:
    """A new qcow2 data disk: blank (the guest formats it), or a copy-on-write layer over base (a node image of
    exactly size_mb), which is hard-linked into the machine's folder first (copied, sparse, across file systems)
    so that the machine keeps working whatever happens to the cache."""
    if path.exists():
        return
    qemu_img = shutil.which("qemu-img")
    if not qemu_img:
        raise MinisandError("qemu-img is not installed", hint="apt install qemu-utils",
                            code=ExitCode.DRIVER_UNAVAILABLE)
    tmp = path.with_name(path.name + ".tmp")
    argv = [qemu_img, "create", "-q", "-f", "qcow2", str(tmp), f"{size_mb}M"]
    if base is not None:
        _link_base(base, path.with_name(BASE_IMAGE))
        argv = [qemu_img, "create", "-q", "-f", "qcow2", "-b", BASE_IMAGE, "-F", "raw", str(tmp), f"{size_mb}M"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MinisandError(f"qemu-img could not create {path}: {proc.stderr.strip()}",
                            hint="check free disk space under MINISAND_HOME", code=ExitCode.DRIVER_ERROR)
    tmp.replace(path)


def _link_base(base: Path, link: Path) -> None:
    link.unlink(missing_ok=True)
    try:
        os.link(base, link)
        return
    except OSError:
        pass
    proc = subprocess.run(["cp", "--sparse=always", "--reflink=auto", "--", str(base), str(link)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        link.unlink(missing_ok=True)
        raise MinisandError(f"could not copy the node image {base}: {proc.stderr.strip()}",
                            hint="check free disk space under MINISAND_HOME", code=ExitCode.DRIVER_ERROR)


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
    target = ssh_target(spec, rec)
    if rec.extra.get(ROOT_LOGIN_KEY) == "yes":  # minisand's own commands: as root, without sudo's cost
        target = dataclasses.replace(target, user="root")
    return LoggedRunner(SSHRunner(target, connect_timeout=connect_timeout), spec.machine)


def note_boot(rec: MachineRecord, spec: MachineSpec) -> MachineRecord:
    """Remembers the CPUs and memory the machine was booted (or resumed) with: a profile changed since then
    applies at its next cold boot."""
    return dataclasses.replace(rec, extra={**rec.extra, "boot_cpus": str(spec.cpus),
                                           "boot_memory_mb": str(spec.memory_mb)})


def booted_with(rec: MachineRecord | None) -> tuple[int, int] | None:
    """(cpus, memory_mb) the running machine got at its boot, if recorded."""
    if rec is None:
        return None
    try:
        return int(rec.extra["boot_cpus"]), int(rec.extra["boot_memory_mb"])
    except (KeyError, ValueError):
        return None
