"""qemu's human monitor of a libvirt domain (libvirt-qemu's monitor passthrough): what the kvm2 driver's user-mode
network needs to add and remove host forwards at run time (libvirt has no API for slirp's hostfwd)."""

from __future__ import annotations

import importlib

from minisand.drivers.kvm2.virt import VirtError, _lib
from minisand.errors import ExitCode

HMP = 1  # libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP


def hmp(uri: str, domain: str, command: str) -> str:
    lib = _lib()
    libvirt_qemu = importlib.import_module("libvirt_qemu")  # no stubs: typed as Any

    try:
        conn = lib.open(uri)
    except lib.libvirtError as exc:
        raise VirtError(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}",
                        hint="start libvirtd or pass --libvirt-uri", code=ExitCode.DRIVER_UNAVAILABLE) from None
    try:
        dom = conn.lookupByName(domain)
        return str(libvirt_qemu.qemuMonitorCommand(dom, command, HMP))
    except lib.libvirtError as exc:
        raise VirtError(f"libvirt: monitor command {command!r} on {domain}: {exc.get_error_message()}",
                        hint="is the machine running? (`minisand status`)", code=ExitCode.DRIVER_ERROR) from None
    finally:
        conn.close()
