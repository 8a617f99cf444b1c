"""Boots a minisand ISO under plain qemu to check it (the ISO's own smoke test, used by its integration tests
and bench/iso_boot.py): direct kernel boot or isolinux, user-mode networking restricted to a 127.0.0.1 SSH
forward, fw_cfg identity, a data disk, virtio-rng and the serial console in a file. The qemu process is
owned by the QemuVM object and killed by PID in kill()."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from minisand.errors import ExitCode, MinisandError
from minisand.guest import (
    FW_CFG_HOSTNAME,
    FW_CFG_KEYS,
    HOST_KEYS_END,
    SSH_READY,
    GuestPanicked,
    kernel_cmdline,
    panic_detail,
)
from minisand.keys import host_keys_from_console, preferred_host_key

if TYPE_CHECKING:
    import paramiko


READY_MARKER = SSH_READY
PANIC_RESTARTS = 2  # an early kernel panic under multi-threaded TCG restarts the VM (minisand.guest)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class VMOptions:
    iso: Path
    workdir: Path  # serial log, fw_cfg files, pidfile
    disk: Path | None = None  # the data disk (qcow2)
    boot_files: tuple[Path, Path] | None = None  # (kernel, initrd): direct kernel boot; None: isolinux
    authorized_key: str | None = None  # delivered through fw_cfg
    hostname: str = "minisand-smoke"
    extra_drives: tuple[str, ...] = ()  # more -drive specs (a cidata seed)
    memory_mb: int = 2048
    cpus: int = 2
    accel: str = "tcg,thread=multi"
    append: str = ""  # added to the kernel command line (direct boot only)
    extra_args: tuple[str, ...] = field(default_factory=tuple)


class QemuVM:
    def __init__(self, opts: VMOptions) -> None:
        self.opts = opts
        self.ssh_port = free_port()
        self.serial_log = opts.workdir / "serial.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.panics: list[str] = []  # the kernel panics that restarted this VM (their first Oops line)

    def argv(self) -> list[str]:
        o = self.opts
        argv = ["qemu-system-x86_64", "-name", "minisand-smoke", "-machine", "pc", "-accel", o.accel,
                "-smp", str(o.cpus), "-m", str(o.memory_mb), "-nodefaults", "-display", "none",
                "-serial", f"file:{self.serial_log}", "-monitor", "none",
                "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
                "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci",
                "-drive", f"file={o.iso},media=cdrom,if=ide,index=0,readonly=on"]
        if o.disk is not None:
            argv += ["-drive", f"file={o.disk},if=virtio,format=qcow2"]
        for spec in o.extra_drives:
            argv += ["-drive", spec]
        if o.authorized_key is not None:
            keys = o.workdir / "fw_cfg_authorized_keys"
            keys.write_text(o.authorized_key.strip() + "\n")
            host = o.workdir / "fw_cfg_hostname"
            host.write_text(o.hostname + "\n")
            argv += ["-fw_cfg", f"name={FW_CFG_KEYS},file={keys}",
                     "-fw_cfg", f"name={FW_CFG_HOSTNAME},file={host}"]
        if o.boot_files is not None:
            kernel, initrd = o.boot_files
            argv += ["-kernel", str(kernel), "-initrd", str(initrd),
                     "-append", f"{kernel_cmdline()} {o.append}".strip()]
        else:
            argv += ["-boot", "d"]
        return [*argv, *o.extra_args]

    def start(self) -> None:
        self.opts.workdir.mkdir(parents=True, exist_ok=True)
        self.serial_log.write_bytes(b"")
        argv = self.argv()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=(self.opts.workdir / "qemu.stderr").open("wb"))
        (self.opts.workdir / "qemu.pid").write_text(f"{self.proc.pid}\n")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def console(self) -> str:
        return self.serial_log.read_bytes().decode(errors="replace") if self.serial_log.exists() else ""

    def wait_console(self, marker: str, timeout: float, *, after: int = 0) -> float:
        """Seconds since qemu started when marker appeared on the serial console (after offset `after`). A
        kernel panic kills and restarts the VM (up to PANIC_RESTARTS times; self.panics records them), and the
        times then count from the restart."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.console()
            if marker in text[after:]:
                return self.elapsed()
            detail = panic_detail(text)
            if detail is not None:
                if len(self.panics) >= PANIC_RESTARTS:
                    raise GuestPanicked(detail, self.serial_log)
                self.panics.append(detail)
                (self.opts.workdir / f"serial.panic{len(self.panics)}.log").write_text(text)
                self.kill()
                self.start()
                after = 0
                continue
            self._check_alive()
            time.sleep(0.05)
        raise MinisandError(f"{marker!r} did not appear on the serial console within {timeout:.0f}s",
                            hint=f"see {self.serial_log}", code=ExitCode.WAIT_TIMEOUT)

    def host_key(self, timeout: float, *, ready: bool = True) -> str:
        """The pinned host key from the guest's block on the serial console; ready=True waits for
        MINISAND-SSH-READY (network up, sshd listening) too."""
        self.wait_console(HOST_KEYS_END, timeout)
        if ready:
            self.wait_console(READY_MARKER, timeout)
        key = preferred_host_key(host_keys_from_console(self.console()))
        if key is None:
            raise MinisandError("no host key in the serial console's block", hint=f"see {self.serial_log}",
                                code=ExitCode.SSH_ERROR)
        return key

    def ssh(self, key_path: Path, host_key: str, timeout: float, user: str = "minisand") -> paramiko.SSHClient:
        """An SSH client that accepts only host_key; retried until timeout. Call it after host_key() saw
        MINISAND-SSH-READY: the first sshd-session takes seconds to answer under emulation, so one patient
        connection beats many short probes (each of which costs the guest a process)."""
        import logging

        import paramiko

        logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)  # banner errors while sshd starts

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            client = paramiko.SSHClient()
            ktype, kb64 = host_key.split()[:2]
            client.get_host_keys().add(f"[127.0.0.1]:{self.ssh_port}", ktype,
                                       paramiko.PKey.from_type_string(ktype, _b64(kb64)))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect("127.0.0.1", port=self.ssh_port, username=user, key_filename=str(key_path),
                               timeout=10, banner_timeout=30, auth_timeout=30, allow_agent=False,
                               look_for_keys=False)
                return client
            except (OSError, paramiko.SSHException) as e:
                client.close()
                if isinstance(e, paramiko.BadHostKeyException):
                    raise
                last = e
                time.sleep(0.2)
        raise MinisandError(f"SSH to the guest did not answer within {timeout:.0f}s ({last})",
                            hint=f"see {self.serial_log}", code=ExitCode.SSH_ERROR)

    def wait_exit(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        """Kills qemu by its PID (SIGTERM, then SIGKILL) and reaps it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        if not self.wait_exit(5):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.wait_exit(5)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            err = (self.opts.workdir / "qemu.stderr").read_text(errors="replace").strip()[-400:]
            raise MinisandError(f"qemu exited with {self.proc.returncode}: {err}", hint=f"see {self.serial_log}",
                                code=ExitCode.DRIVER_ERROR)


def run(client: paramiko.SSHClient, command: str, timeout: float = 120) -> tuple[int, str]:
    """Runs a fixed command string (no user input in it) on the guest: (exit status, stdout+stderr)."""
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode(errors="replace") + stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out


@contextlib.contextmanager
def booted(opts: VMOptions) -> Iterator[QemuVM]:
    vm = QemuVM(opts)
    try:
        vm.start()
        yield vm
    finally:
        vm.kill()


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)
