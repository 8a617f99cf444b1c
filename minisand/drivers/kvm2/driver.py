"""The kvm2 driver: a libvirt domain (type kvm when KVM really works, else qemu/TCG) booting the ISO from a
cdrom, with minikube-style networking (a private NAT network per profile, the IP from its DHCP leases) or
user-mode networking with 127.0.0.1 host forwards."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from pathlib import Path
from typing import ClassVar

from minisand import ui
from minisand.drivers import accel, vmcommon
from minisand.drivers.base import (
    GUEST_APISERVER_PORT,
    GUEST_SSH_PORT,
    Health,
    MachineRecord,
    MachineSpec,
    MachineState,
)
from minisand.drivers.console import check_panic
from minisand.drivers.kvm2 import xml
from minisand.drivers.kvm2.virt import Connection
from minisand.drivers.kvm2.virt import health as virt_health
from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandRunner
from minisand.runner.ssh import SSHTarget

log = logging.getLogger(__name__)

DEFAULT_URI = "qemu:///system"


def health(uri: str | None = None) -> Health:
    ok, reason, fix = virt_health(uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI)
    return Health(ok, reason, fix)


def create_driver(spec: MachineSpec) -> Kvm2Driver:
    return Kvm2Driver(spec)


class Kvm2Driver:
    name: ClassVar[str] = "kvm2"

    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.dir = vmcommon.check_path(spec.machine_dir)
        self.uri = spec.options.libvirt_uri or DEFAULT_URI
        self.domain = f"minisand-{spec.machine}"
        self.network = f"minisand-{spec.profile}"
        self.disk = self.dir / "disk.qcow2"
        self.serial_log = self.dir / "serial.log"
        self.user_net = spec.options.network == "user"

    def _conn(self) -> Connection:
        return Connection(self.uri)

    def preflight(self) -> None:
        h = health(self.uri)
        if not h.ok:
            raise MinisandError(f"the kvm2 driver is not usable: {h.reason}", hint=h.fix,
                                code=ExitCode.DRIVER_UNAVAILABLE)

    def record(self) -> MachineRecord | None:
        return MachineRecord.load(self.dir)

    def state(self) -> MachineState:
        if self.record() is None:
            return MachineState.NONEXISTENT
        with self._conn() as conn:
            info = conn.domain_info(self.domain)
        if not info.exists:
            return MachineState.STOPPED  # half-created: create() will define it
        return {"running": MachineState.RUNNING, "blocked": MachineState.RUNNING,
                "paused": MachineState.PAUSED, "pmsuspended": MachineState.PAUSED,
                "shutdown": MachineState.STOPPING, "shutoff": MachineState.STOPPED,
                "crashed": MachineState.ERROR}.get(info.state, MachineState.ERROR)

    # -- create ------------------------------------------------------------------------------------------
    def _network_params(self, conn: Connection) -> xml.NetworkParams:
        import ipaddress

        rec = self.record()
        existing = conn.network_xml(self.network)
        if existing is not None:  # another node of the profile created it
            subnet = next(iter(xml.used_subnets([existing])))
        elif rec and rec.extra.get("subnet"):
            subnet = ipaddress.IPv4Network(rec.extra["subnet"])
        else:
            subnet = xml.free_subnet(xml.used_subnets(conn.network_xmls()))
        return xml.NetworkParams(self.network, xml.bridge_for(self.spec.profile), subnet)

    def _domain_params(self, rec: MachineRecord, accel_name: str) -> xml.DomainParams:
        if self.spec.iso is None:
            raise MinisandError("the kvm2 driver needs the guest ISO", hint="pass --iso-url or run "
                                "`minisand iso build`", code=ExitCode.ISO_ERROR)
        fw = self.dir / "fw_cfg"
        netdev = ""
        if self.user_net:
            netdev = (f"user,id=mnet0,restrict={'off' if self.spec.options.guest_egress else 'on'},"
                      f"hostfwd=tcp:127.0.0.1:{rec.ssh_port}-:{GUEST_SSH_PORT},"
                      f"hostfwd=tcp:127.0.0.1:{rec.apiserver_port}-:{GUEST_APISERVER_PORT}")
            from minisand.drivers.qemu.cmdline import GuestForward

            for f in self.spec.options.guest_forwards:
                netdev += "," + GuestForward.parse(f).netdev_option()
        return xml.DomainParams(
            name=self.domain, machine=self.spec.machine, profile=self.spec.profile,
            domain_type="kvm" if accel_name == "kvm" else "qemu", memory_mb=self.spec.memory_mb,
            cpus=self.spec.cpus, iso=vmcommon.check_path(self.spec.iso), disk=self.disk, serial_log=self.serial_log,
            fw_cfg=((vmcommon.FW_CFG_KEYS, fw / "authorized_keys"), (vmcommon.FW_CFG_HOSTNAME, fw / "hostname")),
            mac=xml.mac_for(self.spec.machine), uid=os.getuid(), gid=os.getgid(),
            network=None if self.user_net else self.network, user_netdev=netdev, uuid=rec.extra["uuid"])

    def create(self) -> None:
        self.preflight()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        vmcommon.write_first_boot(self.spec)
        vmcommon.create_disk(self.disk, self.spec.disk_mb)
        rec = self.record() or MachineRecord(machine=self.spec.machine, driver=self.name)
        if "uuid" not in rec.extra:
            import uuid

            rec = dataclasses.replace(rec, extra={**rec.extra, "uuid": str(uuid.uuid4())})
        with self._conn() as conn:
            if self.user_net:
                rec = vmcommon.ensure_ports(rec, self.dir)
            else:
                net = self._network_params(conn)
                conn.ensure_network(self.network, xml.network_xml(net))
                rec = dataclasses.replace(rec, extra={**rec.extra, "subnet": str(net.subnet)})
            rec.save(self.dir)
            if self.spec.iso is not None:
                verdict = accel.resolve(self.spec.options.qemu_accel, self.spec.cache_dir, self.spec.kernel,
                                        self.spec.initrd)
                rec = dataclasses.replace(rec, accel=verdict.accel)
                rec.save(self.dir)
                if verdict.accel != "kvm" and Path("/dev/kvm").exists():
                    # libvirt 9 finds /dev/kvm usable, its qemu probe finds KVM unavailable, and it re-probes
                    # qemu on every capabilities lookup: minutes per domain operation (3-4 min a define here).
                    ui.warn("/dev/kvm is present but unusable: libvirt re-probes qemu on every call and is slow "
                            "here; the qemu driver (--driver=qemu) avoids libvirt")
                if conn.domain_info(self.domain).state in ("absent", "shutoff"):
                    conn.define_domain(xml.domain_xml(self._domain_params(rec, verdict.accel)))

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.state() == MachineState.RUNNING:
            return
        self.create()
        if self.serial_log.exists():
            self.serial_log.replace(self.dir / "serial.log.prev")
        with self._conn() as conn:
            conn.start_domain(self.domain)
        if not self.user_net:
            self._learn_ip(timeout=180)

    def _learn_ip(self, timeout: float) -> None:
        mac = xml.mac_for(self.spec.machine)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check_panic(self.serial_log)  # a guest that panicked gets no lease: say so now
            with self._conn() as conn:
                for hw, addr in conn.domain_addresses(self.domain):
                    if hw.lower() == mac:
                        rec = self.record()
                        assert rec is not None
                        rec = dataclasses.replace(rec, ssh_host=addr, ssh_port=GUEST_SSH_PORT, apiserver_host=addr,
                                                  apiserver_port=GUEST_APISERVER_PORT, node_ip=addr)
                        rec.save(self.dir)
                        return
            time.sleep(1.0)
        raise MinisandError(f"machine {self.spec.machine} got no DHCP lease on network {self.network} within "
                            f"{timeout:.0f}s", hint=f"see the console log {self.serial_log}",
                            code=ExitCode.DRIVER_ERROR)

    def stop(self, timeout: float = 90.0) -> None:
        with self._conn() as conn:
            conn.shutdown_domain(self.domain)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if conn.domain_info(self.domain).state in ("shutoff", "absent"):
                    return
                time.sleep(0.5)
        log.warning("machine %s did not power off within %.0fs; forcing it off", self.spec.machine, timeout)
        self.kill()

    def kill(self) -> None:
        with self._conn() as conn:
            conn.destroy_domain(self.domain)

    def remove(self) -> None:
        with self._conn() as conn:
            conn.destroy_domain(self.domain)
            conn.undefine_domain(self.domain)
            prefix = f"minisand-{self.spec.profile}"
            others = [d for d in conn.domain_names() if d != self.domain
                      and (d == prefix or (d.startswith(prefix + "-m") and d[len(prefix) + 2:].isdigit()))]
            if not others:
                conn.remove_network(self.network)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- access ------------------------------------------------------------------------------------------
    def ssh_target(self) -> SSHTarget | None:
        rec = self.record()
        return vmcommon.ssh_target(self.spec, rec) if rec else None

    def runner(self) -> CommandRunner:
        return vmcommon.ssh_runner(self.spec, self.record())

    def console_log(self) -> Path | None:
        return self.serial_log
