"""The qemu-system command line for one machine, built as an argv list from typed settings (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minisand.drivers.base import GUEST_APISERVER_PORT, GUEST_SSH_PORT


@dataclass(frozen=True)
class GuestForward:
    guest_ip: str
    guest_port: int
    host_ip: str
    host_port: int

    @classmethod
    def parse(cls, text: str) -> GuestForward:
        """'GUESTIP:PORT=HOSTIP:PORT', e.g. 10.0.2.100:5000=127.0.0.1:5000."""
        from minisand.errors import bad_input

        try:
            guest, host = text.split("=", 1)
            gip, gport = guest.rsplit(":", 1)
            hip, hport = host.rsplit(":", 1)
            fwd = cls(gip, int(gport), hip, int(hport))
        except ValueError:
            raise bad_input(f"--guest-forward {text!r} is not GUESTIP:PORT=HOSTIP:PORT",
                            "e.g. --guest-forward 10.0.2.100:5000=127.0.0.1:5000") from None
        import ipaddress

        try:
            g = ipaddress.IPv4Address(gip)
            ipaddress.IPv4Address(hip)
        except ValueError:
            raise bad_input(f"--guest-forward {text!r} needs IPv4 addresses",
                            "e.g. --guest-forward 10.0.2.100:5000=127.0.0.1:5000") from None
        if g not in ipaddress.IPv4Network("10.0.2.0/24"):
            raise bad_input(f"--guest-forward guest address {gip} is outside qemu's user network 10.0.2.0/24",
                            "use an address such as 10.0.2.100")
        if not (0 < fwd.guest_port < 65536 and 0 < fwd.host_port < 65536):
            raise bad_input(f"--guest-forward {text!r} has a port out of range", "ports are 1..65535")
        return fwd

    def netdev_option(self) -> str:
        return f"guestfwd=tcp:{self.guest_ip}:{self.guest_port}-tcp:{self.host_ip}:{self.host_port}"


@dataclass(frozen=True)
class QemuSettings:
    qemu: str
    name: str
    accel: str  # kvm | tcg
    cpus: int
    memory_mb: int
    disk: Path
    iso: Path | None
    kernel: Path | None
    initrd: Path | None
    append: str
    ssh_port: int
    apiserver_port: int
    restrict: bool  # user-mode networking without egress
    guest_forwards: tuple[GuestForward, ...]
    fw_cfg_files: tuple[tuple[str, Path], ...]
    fw_cfg_strings: tuple[tuple[str, str], ...]
    serial_log: Path
    qmp_socket: Path
    pidfile: Path
    incoming: bool = False  # wait for a saved state (`-incoming defer`, then QMP migrate-incoming) instead of booting
    serial_append: bool = False  # keep the console log of the boot this state came from


def build_argv(s: QemuSettings) -> list[str]:
    argv = [s.qemu, "-name", f"minisand-{s.name},process=minisand-{s.name}",
            "-machine", "q35" if s.accel == "kvm" else "q35,hpet=off"]
    if s.accel == "kvm":
        argv += ["-accel", "kvm", "-cpu", "host"]
    else:
        argv += ["-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max"]
    argv += ["-smp", str(s.cpus), "-m", str(s.memory_mb),
             "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
             "-device", "virtio-rng-pci"]
    if s.kernel and s.initrd:
        argv += ["-kernel", str(s.kernel), "-initrd", str(s.initrd), "-append", s.append]
    if s.iso:
        argv += ["-drive", f"file={s.iso},if=none,id=cd0,media=cdrom,readonly=on,format=raw",
                 "-device", "ide-cd,drive=cd0,bus=ide.1"]
        if not s.kernel:
            argv += ["-boot", "order=d"]
    argv += ["-drive", f"file={s.disk},if=virtio,format=qcow2,cache=writeback,discard=unmap"]
    netdev = [f"user,id=net0,restrict={'on' if s.restrict else 'off'}",
              f"hostfwd=tcp:127.0.0.1:{s.ssh_port}-:{GUEST_SSH_PORT}",
              f"hostfwd=tcp:127.0.0.1:{s.apiserver_port}-:{GUEST_APISERVER_PORT}"]
    netdev += [f.netdev_option() for f in s.guest_forwards]
    argv += ["-netdev", ",".join(netdev), "-device", "virtio-net-pci,netdev=net0"]
    for name, path in s.fw_cfg_files:
        argv += ["-fw_cfg", f"name={name},file={path}"]
    for name, value in s.fw_cfg_strings:
        argv += ["-fw_cfg", f"name={name},string={value}"]
    argv += ["-chardev", f"file,id=serial0,path={s.serial_log}" + (",append=on" if s.serial_append else ""),
             "-serial", "chardev:serial0",
             "-qmp", f"unix:{s.qmp_socket},server=on,wait=off",
             "-pidfile", str(s.pidfile), "-daemonize"]
    if s.incoming:
        argv += ["-incoming", "defer"]
    return argv


def device_argv(s: QemuSettings) -> tuple[str, ...]:
    """The part of the command line a saved state depends on: everything the guest can see. Host-side details
    (the host ports of the forwards, the pidfile, the monitor socket, console appending) may differ between the
    save and the resume."""
    from dataclasses import replace

    from minisand.drivers.savedstate import strip_host_only

    same = replace(s, ssh_port=0, apiserver_port=0, serial_append=False, incoming=False)
    return strip_host_only(build_argv(same), ("-pidfile", "-qmp", "-incoming"), ("-daemonize",))
