"""The ssh driver: an existing machine reached over SSH (--ssh-ip-address, --ssh-user, --ssh-key,
--ssh-port). Its host key is pinned on first contact (trust on first use, announced with its fingerprint) and
checked on every later connection. minisand never powers such a machine off or deletes it: stop stops the
Kubernetes services, delete removes what minisand installed."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import ClassVar

from minisand import ui
from minisand.drivers.base import GUEST_APISERVER_PORT, Health, MachineRecord, MachineSpec, MachineState
from minisand.errors import ExitCode, MinisandError
from minisand.keys import fingerprint
from minisand.runner.base import CommandRunner
from minisand.runner.logged import LoggedRunner
from minisand.runner.ssh import SSHRunner, SSHTarget, load_private_key


def health() -> Health:
    return Health(True)


def create_driver(spec: MachineSpec) -> SSHDriver:
    return SSHDriver(spec)


class SSHDriver:
    name: ClassVar[str] = "ssh"

    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.dir = spec.machine_dir

    def preflight(self) -> None:
        o = self.spec.options
        if not o.ssh_ip or not o.ssh_key:
            raise MinisandError("the ssh driver needs --ssh-ip-address and --ssh-key",
                                hint="e.g. --ssh-ip-address=127.0.0.1 --ssh-key=~/.ssh/id_ed25519",
                                code=ExitCode.BAD_INPUT)
        key = Path(o.ssh_key).expanduser()
        if not key.is_file():
            raise MinisandError(f"--ssh-key {o.ssh_key} is not a file", hint="pass a private key file",
                                code=ExitCode.BAD_INPUT)
        load_private_key(key, code=ExitCode.BAD_INPUT)

    def record(self) -> MachineRecord | None:
        return MachineRecord.load(self.dir)

    def _target(self, rec: MachineRecord) -> SSHTarget:
        o = self.spec.options
        return SSHTarget(host=o.ssh_ip or "", port=o.ssh_port, user=o.ssh_user,
                         key_path=Path(o.ssh_key or "").expanduser(), host_key=rec.host_key or None)

    def create(self) -> None:
        self.preflight()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        o = self.spec.options
        rec = self.record() or MachineRecord(machine=self.spec.machine, driver=self.name, profile=self.spec.profile)
        rec = dataclasses.replace(rec, ssh_user=o.ssh_user, ssh_host=o.ssh_ip or "", ssh_port=o.ssh_port,
                                  node_ip=o.ssh_ip or "", apiserver_host=o.ssh_ip or "",
                                  apiserver_port=GUEST_APISERVER_PORT)
        rec.save(self.dir)

    def _pin(self, key: str) -> None:
        rec = self.record()
        assert rec is not None
        dataclasses.replace(rec, host_key=key).save(self.dir)
        ui.info(f"pinned the SSH host key of {self.spec.options.ssh_ip}: {fingerprint(key)}")

    def start(self) -> None:
        self.create()
        rec = self.record()
        assert rec is not None
        runner = SSHRunner(self._target(rec), connect_timeout=30, on_new_host_key=self._pin)
        try:
            runner.run(["true"], timeout=30)
        finally:
            runner.close()
        rec = self.record()
        assert rec is not None
        dataclasses.replace(rec, extra={**rec.extra, "state": "running"}).save(self.dir)

    def state(self) -> MachineState:
        rec = self.record()
        if rec is None:
            return MachineState.NONEXISTENT
        if rec.extra.get("state") == "stopped":
            return MachineState.STOPPED
        if not rec.host_key:  # never contacted: only `start` may accept (and pin) the machine's host key
            return MachineState.STOPPED
        try:
            r = SSHRunner(self._target(rec), connect_timeout=5)
            r.run(["true"], timeout=10)
            r.close()
        except MinisandError:
            return MachineState.ERROR
        return MachineState.RUNNING

    def stop(self, timeout: float = 90.0) -> None:
        rec = self.record()
        if rec is None:
            return
        try:
            r = self.runner()
            r.run(["systemctl", "stop", "kubelet"], sudo=True, check=False, timeout=timeout)
            r.close()
        except MinisandError as exc:
            ui.warn(f"could not stop kubelet on {rec.ssh_host}: {exc.message}")
        dataclasses.replace(rec, extra={**rec.extra, "state": "stopped"}).save(self.dir)

    def kill(self) -> None:
        self.stop()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def ssh_target(self) -> SSHTarget | None:
        rec = self.record()
        return self._target(rec) if rec else None

    def runner(self) -> CommandRunner:
        rec = self.record()
        if rec is None or not rec.host_key:
            raise MinisandError("the machine has not been contacted yet", hint="run `minisand start`",
                                code=ExitCode.MACHINE_NOT_RUNNING)
        return LoggedRunner(SSHRunner(self._target(rec), connect_timeout=30), self.spec.machine)

    def console_log(self) -> Path | None:
        return None
