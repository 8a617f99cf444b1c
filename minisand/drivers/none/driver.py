"""The none driver: the host itself (Linux, root). It changes the host: containerd, kubelet and the control
plane run here, with their state under /etc and /var/lib as kubeadm lays it out. With --netns NAME the whole
cluster runs inside that network namespace."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import ClassVar

from minisand import ui
from minisand.drivers.base import GUEST_APISERVER_PORT, Health, MachineRecord, MachineSpec, MachineState
from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandRunner
from minisand.runner.local import LocalRunner
from minisand.runner.logged import LoggedRunner
from minisand.runner.ssh import SSHTarget

REQUIRED = ("containerd", "runc", "iptables", "conntrack", "nsenter", "ip")


def health() -> Health:
    if platform.system() != "Linux":
        return Health(False, "the none driver runs only on Linux", "use a VM driver")
    if os.geteuid() != 0:
        return Health(False, "the none driver needs root", "run minisand as root (sudo -E minisand ...)")
    missing = [b for b in REQUIRED if not shutil.which(b)]
    if missing:
        return Health(False, f"missing on this host: {', '.join(missing)}",
                      "install containerd (>= 1.7), runc, iptables, conntrack, util-linux and iproute2")
    return Health(True)


def create_driver(spec: MachineSpec) -> NoneDriver:
    return NoneDriver(spec)


class NoneDriver:
    name: ClassVar[str] = "none"

    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.dir = spec.machine_dir
        self.netns = spec.options.netns

    @property
    def prefix(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--"] if self.netns else []

    def preflight(self) -> None:
        h = health()
        if not h.ok:
            raise MinisandError(f"the none driver is not usable: {h.reason}", hint=h.fix,
                                code=ExitCode.DRIVER_UNAVAILABLE)
        if self.netns and not Path(f"/run/netns/{self.netns}").exists():
            raise MinisandError(f"network namespace {self.netns!r} does not exist",
                                hint=f"create it with `ip netns add {self.netns}`", code=ExitCode.BAD_INPUT)

    def record(self) -> MachineRecord | None:
        return MachineRecord.load(self.dir)

    def services(self) -> object:
        from minisand.services import SystemdServices, systemd_is_init

        if systemd_is_init() and not self.netns:
            return SystemdServices(self.runner())
        from minisand.drivers.none.host import process_services

        return process_services(self.dir, self.prefix)

    def state(self) -> MachineState:
        rec = self.record()
        if rec is None:
            return MachineState.NONEXISTENT
        if rec.extra.get("state") == "stopped":
            return MachineState.STOPPED
        if self.netns and not Path(f"/run/netns/{self.netns}").exists():
            return MachineState.ERROR
        return MachineState.RUNNING

    def _node_ip(self) -> str:
        res = LocalRunner(self.prefix).run(["ip", "-4", "-o", "route", "get", "1.1.1.1"], check=False)
        parts = res.out.split()
        if "src" in parts:
            return parts[parts.index("src") + 1]
        res = LocalRunner(self.prefix).run(["ip", "-4", "-o", "addr", "show", "scope", "global"], check=False)
        for line in res.out.splitlines():
            fields = line.split()
            if "inet" in fields:
                return fields[fields.index("inet") + 1].split("/")[0]
        return "127.0.0.1"

    def create(self) -> None:
        self.preflight()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.record() is None:
            ui.warn("the none driver changes this host: containerd, kubelet and the control plane will run here, "
                    "with state in /etc/kubernetes, /var/lib/kubelet, /var/lib/etcd and /var/lib/containerd")
        ip = self._node_ip()
        rec = self.record() or MachineRecord(machine=self.spec.machine, driver=self.name, ssh_user="root")
        import dataclasses

        rec = dataclasses.replace(rec, ssh_host="", ssh_port=0, node_ip=ip, apiserver_host=ip,
                                  apiserver_port=GUEST_APISERVER_PORT,
                                  extra={**rec.extra, "netns": self.netns or ""})
        rec.save(self.dir)

    def _set_state(self, state: str) -> None:
        import dataclasses

        rec = self.record()
        if rec is not None:
            dataclasses.replace(rec, extra={**rec.extra, "state": state}).save(self.dir)

    def start(self) -> None:
        self.create()
        self._set_state("running")

    def stop(self, timeout: float = 90.0) -> None:
        from minisand.drivers.none.host import stop_node

        stop_node(self)
        self._set_state("stopped")

    def kill(self) -> None:
        self.stop()

    def remove(self) -> None:
        from minisand.drivers.none.host import reset_node

        if self.record() is not None:
            reset_node(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def ssh_target(self) -> SSHTarget | None:
        return None

    def runner(self) -> CommandRunner:
        return LoggedRunner(LocalRunner(self.prefix), self.spec.machine)

    def console_log(self) -> Path | None:
        return None
