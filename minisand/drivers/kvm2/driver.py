"""The kvm2 driver: a libvirt domain (type kvm when KVM really works, else qemu/TCG) booting the ISO from a
cdrom, with minikube-style networking (a private NAT network per profile, the IP from its DHCP leases) or
user-mode networking with 127.0.0.1 host forwards. `save` is libvirt's managed save (libvirt embeds the domain
XML in it; the next start restores it); minisand writes its own metadata beside the machine to decide at start
whether the saved state may be used."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from minisand import guest, hosttools, ui
from minisand.drivers import accel, savedstate, vmcommon
from minisand.drivers.base import (
    GUEST_APISERVER_PORT,
    GUEST_SSH_PORT,
    Health,
    MachineRecord,
    MachineSpec,
    MachineState,
    ResumeFailed,
)
from minisand.drivers.kvm2 import xml
from minisand.drivers.kvm2.virt import Connection
from minisand.drivers.kvm2.virt import health as virt_health
from minisand.drivers.qemu import hostfwd
from minisand.drivers.savedstate import SavedMeta, SaveReport
from minisand.errors import ExitCode, MinisandError
from minisand.guest import check_panic
from minisand.hosttools import Role
from minisand.runner.base import CommandRunner
from minisand.runner.ssh import SSHTarget

log = logging.getLogger(__name__)

DEFAULT_URI = "qemu:///system"
USER_NETDEV = "mnet0"  # the user-mode netdev's id (on the qemu command line): where hostfwd_add adds forwards


def health(uri: str | None = None) -> Health:
    """The host tools (minisand.hosttools, role kvm2: qemu-img for the disks always; libvirtd, qemu and dnsmasq
    when libvirt runs on this host), then a libvirt connection."""
    uri = uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI
    local = not urlsplit(uri).hostname
    missing = hosttools.gap(Role.KVM2) if local else (
        None if hosttools.locate("qemu-img") else ("qemu-img is not installed", "apt-get install qemu-utils"))
    if missing:
        return Health(False, *missing)
    ok, reason, fix = virt_health(uri)
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
        self.state_meta = self.dir / "vmstate.json"
        self.launch_file = self.dir / "launch.json"

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
        if info.state == "shutoff" and info.managed_save:
            return MachineState.SAVED
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
            fw_cfg=((guest.FW_CFG_KEYS, fw / "authorized_keys"), (guest.FW_CFG_HOSTNAME, fw / "hostname")),
            mac=xml.mac_for(self.spec.machine), uid=os.getuid(), gid=os.getgid(),
            network=None if self.user_net else self.network, user_netdev=netdev, uuid=rec.extra["uuid"])

    def create(self) -> None:
        self.preflight()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        vmcommon.write_first_boot(self.spec)
        vmcommon.create_disk(self.disk, self.spec.disk_mb, self.spec.data_image)
        rec = self.record() or MachineRecord(machine=self.spec.machine, driver=self.name, profile=self.spec.profile)
        if "uuid" not in rec.extra:
            import uuid

            rec = dataclasses.replace(rec, extra={**rec.extra, "uuid": str(uuid.uuid4())})
        running = self.user_net and self.state() in (MachineState.RUNNING, MachineState.PAUSED)
        with self._conn() as conn:
            if self.user_net and not running:  # a running domain keeps the forwards it was started with
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
        """A cold boot (force_boot: a managed save is dropped; the disk moves on without it)."""
        if self.state() == MachineState.RUNNING:
            return
        self.create()
        hostfwd.forget(self.dir)  # a machine that died without a stop took its forwards with it
        if self.serial_log.exists():
            self.serial_log.replace(self.dir / "serial.log.prev")
        self.state_meta.unlink(missing_ok=True)
        with self._conn() as conn:
            conn.start_domain(self.domain, force_boot=True)
            self._note_launch(conn)
        if not self.user_net:
            self._learn_ip(timeout=180)

    def _note_launch(self, conn: Connection) -> None:
        rec = self.record()
        if rec is not None:
            vmcommon.note_boot(rec, self.spec).save(self.dir)
        savedstate.save_current(self.launch_file, self._current(conn))

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
        if self.user_net:
            hostfwd.release_all(self.dir, self.hmp, USER_NETDEV)
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
        hostfwd.forget(self.dir)

    # -- saved state (libvirt's managed save) ------------------------------------------------------------
    def _local(self) -> bool:
        return not urlsplit(self.uri).hostname

    def _save_path(self) -> Path | None:
        """libvirt's managed save file, when libvirt runs on this host (qemu.conf's default save_dir)."""
        if not self._local():
            return None
        if urlsplit(self.uri).path.rstrip("/") == "/session":
            return Path.home() / ".config/libvirt/qemu/save" / f"{self.domain}.save"
        return Path("/var/lib/libvirt/qemu/save") / f"{self.domain}.save"

    def _current(self, conn: Connection) -> savedstate.Current:
        emulator = conn.emulator(self.domain)
        local = self._local()
        return savedstate.Current(
            emulator=emulator, emulator_sha256=savedstate.emulator_sha256(emulator) if local else "",
            cpus=self.spec.cpus, memory_mb=self.spec.memory_mb, device_argv=(),
            boot_id=savedstate.boot_id() if local else "",
            media={"ISO": savedstate.FileId.of(self.spec.iso) if self.spec.iso else None,
                   "data disk": savedstate.FileId.of(self.disk)})

    def has_saved_state(self) -> bool:
        with self._conn() as conn:
            return conn.domain_info(self.domain).managed_save

    def save(self, timeout: float) -> SaveReport:
        launched = savedstate.launched_with(self.launch_file, self.spec.machine)
        t0 = time.monotonic()
        self.state_meta.unlink(missing_ok=True)
        with self._conn() as conn:
            conn.managed_save(self.domain)  # libvirt pauses the vCPUs first and lifts the bandwidth limit
        hostfwd.forget(self.dir)  # forwards added at run time are not part of the saved machine
        path = self._save_path()
        readable = path is not None and path.exists()
        current = dataclasses.replace(launched, boot_id=savedstate.boot_id() if self._local() else "",
                                      media={**launched.media, "data disk": savedstate.FileId.of(self.disk)})
        meta = SavedMeta(driver=self.name, state_file=str(path or ""),
                         size=path.stat().st_size if readable and path else -1,
                         sha256=savedstate.file_sha256(path) if readable and path else "", current=current,
                         saved_at=savedstate.now(), save_seconds=round(time.monotonic() - t0, 3))
        meta.save(self.state_meta)
        return savedstate.report_for(self.spec.machine, path or "", time.monotonic() - t0)

    def saved_state_problem(self) -> str | None:
        path = self._save_path()
        size = (path.stat().st_size if path.exists() else None) if path is not None else -1
        with self._conn() as conn:
            current = self._current(conn)
        return savedstate.unusable_reason(SavedMeta.load(self.state_meta), current, size)

    def resume(self, timeout: float) -> None:
        meta = SavedMeta.load(self.state_meta)
        if meta is None:
            raise ResumeFailed("no saved state")
        path = self._save_path()
        digest = savedstate.BackgroundDigest(path) if meta.sha256 and path is not None else None
        hostfwd.forget(self.dir)  # forwards added at run time are not part of the saved machine
        if self.serial_log.exists():
            self.serial_log.replace(self.dir / "serial.log.prev")
        with self._conn() as conn:
            try:
                conn.start_domain(self.domain, paused=True)  # restores the managed save, vCPUs stopped
            except MinisandError as exc:
                raise ResumeFailed(f"libvirt could not restore it ({exc.message})") from None
            bad = savedstate.digest_mismatch(meta, digest.result()) if digest is not None else None
            if bad:
                conn.destroy_domain(self.domain)
                raise ResumeFailed(bad)
            self.state_meta.unlink(missing_ok=True)
            try:
                conn.resume_domain(self.domain)
            except MinisandError as exc:
                conn.destroy_domain(self.domain)
                raise ResumeFailed(f"the restored machine did not run ({exc.message})") from None
            self._note_launch(conn)

    def discard_saved_state(self) -> None:
        with self._conn() as conn:
            conn.managed_save_remove(self.domain)
        self.state_meta.unlink(missing_ok=True)

    def pause(self) -> None:
        self._require_running()
        with self._conn() as conn:
            conn.suspend_domain(self.domain)

    def unpause(self) -> None:
        self._require_running()
        with self._conn() as conn:
            conn.resume_domain(self.domain)

    def _require_running(self) -> None:
        if self.state() not in (MachineState.RUNNING, MachineState.PAUSED):
            raise MinisandError(f"machine {self.spec.machine} is not running", hint="start it with `minisand start`",
                                code=ExitCode.MACHINE_NOT_RUNNING)

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
    def hmp(self, command: str) -> str:
        """One human-monitor command on the running domain (libvirt's qemu monitor passthrough)."""
        from minisand.drivers.kvm2.monitor import hmp

        return hmp(self.uri, self.domain, command)

    def ssh_target(self) -> SSHTarget | None:
        rec = self.record()
        return vmcommon.ssh_target(self.spec, rec) if rec else None

    def runner(self) -> CommandRunner:
        return vmcommon.ssh_runner(self.spec, self.record())

    def console_log(self) -> Path | None:
        return self.serial_log
