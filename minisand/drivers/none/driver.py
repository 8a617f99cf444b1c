"""The none driver: the host itself (Linux, root). It changes the host: containerd, kubelet and the control
plane run here, with their state under /etc and /var/lib as kubeadm lays it out. Services run under systemd when
it is PID 1, else as supervised background processes (minisand.services.ProcessServices). To keep the cluster
off the host's network, run minisand itself inside a network namespace (`nsenter --net=/run/netns/NAME
minisand start --driver=none`): everything it starts inherits the namespace."""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import socket
from pathlib import Path
from typing import ClassVar

from minisand import hosttools, ui
from minisand.drivers.base import GUEST_APISERVER_PORT, Health, MachineRecord, MachineSpec, MachineState
from minisand.errors import ExitCode, MinisandError
from minisand.hosttools import Role
from minisand.runner.base import CommandRunner
from minisand.runner.local import LocalRunner
from minisand.runner.logged import LoggedRunner
from minisand.runner.ssh import SSHTarget
from minisand.services import Services


def health() -> Health:
    """Linux, root, and every program the node runs on this host (minisand.hosttools, role none; systemctl and
    journalctl too where systemd is PID 1), checked before anything on the host changes."""
    if platform.system() != "Linux":
        return Health(False, "the none driver runs only on Linux", "use a VM driver")
    if os.geteuid() != 0:
        return Health(False, "the none driver needs root", "run minisand as root (sudo -E minisand ...)")
    from minisand.services import systemd_is_init

    roles = (Role.NONE, Role.SYSTEMD) if systemd_is_init() else (Role.NONE,)
    missing = hosttools.gap(*roles)
    if missing:
        return Health(False, *missing)
    return Health(True)


def create_driver(spec: MachineSpec) -> NoneDriver:
    return NoneDriver(spec)


def node_ip() -> str:
    """The address kubelet and the API server advertise: the source address of the default route, else the
    first global IPv4 address, else loopback (a namespace without a default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: a UDP connect sends nothing; it only picks a route
            addr: str = s.getsockname()[0]
            return addr
        except OSError:
            pass
    res = LocalRunner().run(["ip", "-4", "-o", "addr", "show", "scope", "global"], check=False)
    for line in res.out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return "127.0.0.1"


class NoneDriver:
    name: ClassVar[str] = "none"

    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.dir = spec.machine_dir

    def preflight(self) -> None:
        h = health()
        if not h.ok:
            raise MinisandError(f"the none driver is not usable: {h.reason}", hint=h.fix,
                                code=ExitCode.DRIVER_UNAVAILABLE)

    def record(self) -> MachineRecord | None:
        return MachineRecord.load(self.dir)

    def services(self) -> Services:
        from minisand.services import SystemdServices, systemd_is_init

        if systemd_is_init():
            return SystemdServices(self.runner())
        from minisand.drivers.none.host import process_services

        return process_services(self.dir)

    def state(self) -> MachineState:
        rec = self.record()
        if rec is None:
            return MachineState.NONEXISTENT
        return MachineState.STOPPED if rec.extra.get("state") == "stopped" else MachineState.RUNNING

    def create(self) -> None:
        self.preflight()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        rec = self.record()
        if rec is None:
            ui.warn("the none driver changes this host: containerd, kubelet and the control plane will run here, "
                    "with state in /etc/kubernetes, /var/lib/kubelet, /var/lib/etcd and /var/lib/containerd")
            rec = MachineRecord(machine=self.spec.machine, driver=self.name, profile=self.spec.profile, ssh_user="root")
        ip = node_ip()
        rec = dataclasses.replace(rec, ssh_host="", ssh_port=0, node_ip=ip, apiserver_host=ip,
                                  apiserver_port=GUEST_APISERVER_PORT)
        rec.save(self.dir)

    def _set_state(self, state: str) -> None:
        rec = self.record()
        if rec is not None:
            dataclasses.replace(rec, extra={**rec.extra, "state": state}).save(self.dir)

    def start(self) -> None:
        self.create()  # containerd is started once minisand has written its configuration
        self._set_state("running")

    def stop(self, timeout: float = 90.0) -> None:
        from minisand.drivers.none.host import stop_node

        stop_node(self.services(), self.runner())
        self._set_state("stopped")

    def kill(self) -> None:
        self.stop()

    def remove(self) -> None:
        from minisand.drivers.none.host import reset_node

        if self.record() is not None:
            reset_node(self.runner(), self.services())
        shutil.rmtree(self.dir, ignore_errors=True)

    def ssh_target(self) -> SSHTarget | None:
        return None

    def runner(self) -> CommandRunner:
        return LoggedRunner(LocalRunner(), self.spec.machine)

    def console_log(self) -> Path | None:
        return None
