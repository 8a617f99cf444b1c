"""The one module that touches libvirt-python (it has no type stubs): a thin typed layer over the calls the kvm2
driver needs. libvirt's default error handler prints to stderr; we register a silent one and raise instead."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from minisand.errors import ExitCode, MinisandError

log = logging.getLogger(__name__)

_handler_set = False


def _lib() -> Any:
    global _handler_set
    import libvirt

    if not _handler_set:
        libvirt.registerErrorHandler(lambda _ctx, err: log.debug("libvirt: %s", err), None)
        _handler_set = True
    return libvirt


class VirtError(MinisandError):
    pass


def _wrap(what: str, exc: Exception) -> VirtError:
    return VirtError(f"libvirt: {what}: {exc}", hint="check that libvirtd runs and that you may use it "
                     "(libvirt group)", code=ExitCode.DRIVER_ERROR)


@dataclass(frozen=True)
class DomainInfo:
    state: str  # running | paused | shutoff | shutdown | crashed | other
    exists: bool
    managed_save: bool = False  # libvirt holds a saved state that the next start restores


_STATES = {1: "running", 2: "blocked", 3: "paused", 4: "shutdown", 5: "shutoff", 6: "crashed", 7: "pmsuspended"}


class Connection:
    def __init__(self, uri: str) -> None:
        lib = _lib()
        self.uri = uri
        try:
            self._conn = lib.open(uri)
        except lib.libvirtError as exc:
            raise VirtError(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}",
                            hint="start libvirtd (`sudo libvirtd -d` or `systemctl start libvirtd`) or pass "
                                 "--libvirt-uri", code=ExitCode.DRIVER_UNAVAILABLE) from None
        self._lib = lib

    def close(self) -> None:
        with contextlib.suppress(self._lib.libvirtError):
            self._conn.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _domain(self, name: str) -> Any | None:
        try:
            return self._conn.lookupByName(name)
        except self._lib.libvirtError as exc:
            if exc.get_error_code() == self._lib.VIR_ERR_NO_DOMAIN:
                return None
            raise _wrap(f"lookup of domain {name}", exc) from None

    def domain_info(self, name: str) -> DomainInfo:
        dom = self._domain(name)
        if dom is None:
            return DomainInfo("absent", False)
        try:
            state, _reason = dom.state()
            saved = bool(dom.hasManagedSaveImage(0)) if state == 5 else False
        except self._lib.libvirtError as exc:
            raise _wrap(f"state of {name}", exc) from None
        return DomainInfo(_STATES.get(state, "other"), True, saved)

    def define_domain(self, xml: str) -> None:
        try:
            self._conn.defineXML(xml)
        except self._lib.libvirtError as exc:
            raise _wrap("defining the domain", exc) from None

    def domain_xml(self, name: str) -> str | None:
        dom = self._domain(name)
        return None if dom is None else str(dom.XMLDesc(0))

    def _defined(self, name: str) -> Any:
        dom = self._domain(name)
        if dom is None:
            raise VirtError(f"domain {name} is not defined", hint="run `minisand start` to recreate it",
                            code=ExitCode.DRIVER_ERROR)
        return dom

    def start_domain(self, name: str, *, paused: bool = False, force_boot: bool = False) -> None:
        """Starts the domain: libvirt restores its managed save if it has one (force_boot: boots cold and drops
        it); paused: the vCPUs wait for resume_domain."""
        dom = self._defined(name)
        lib = self._lib
        flags = (lib.VIR_DOMAIN_START_PAUSED if paused else 0) | (lib.VIR_DOMAIN_START_FORCE_BOOT if force_boot
                                                                   else 0)
        try:
            if not dom.isActive():
                dom.createWithFlags(flags)
        except lib.libvirtError as exc:
            raise _wrap(f"starting {name}", exc) from None

    def managed_save(self, name: str) -> None:
        """libvirt pauses the vCPUs, migrates the domain's state to its managed save file and stops it."""
        try:
            self._defined(name).managedSave(0)
        except self._lib.libvirtError as exc:
            raise _wrap(f"saving {name}", exc) from None

    def managed_save_remove(self, name: str) -> None:
        dom = self._domain(name)
        try:
            if dom is not None and dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
        except self._lib.libvirtError as exc:
            raise _wrap(f"removing the saved state of {name}", exc) from None

    def suspend_domain(self, name: str) -> None:
        try:
            self._defined(name).suspend()
        except self._lib.libvirtError as exc:
            raise _wrap(f"pausing {name}", exc) from None

    def resume_domain(self, name: str) -> None:
        try:
            self._defined(name).resume()
        except self._lib.libvirtError as exc:
            raise _wrap(f"resuming {name}", exc) from None

    def emulator(self, name: str) -> str:
        """The qemu binary libvirt runs for the domain (its <emulator>)."""
        import re

        found = re.search(r"<emulator>([^<]+)</emulator>", self.domain_xml(name) or "")
        return found.group(1).strip() if found else ""

    def shutdown_domain(self, name: str) -> None:
        dom = self._domain(name)
        if dom is not None and dom.isActive():
            try:
                dom.shutdown()
            except self._lib.libvirtError as exc:
                raise _wrap(f"shutting down {name}", exc) from None

    def destroy_domain(self, name: str) -> None:
        dom = self._domain(name)
        if dom is not None and dom.isActive():
            try:
                dom.destroy()
            except self._lib.libvirtError as exc:
                if dom.isActive():
                    raise _wrap(f"destroying {name}", exc) from None

    def undefine_domain(self, name: str) -> None:
        dom = self._domain(name)
        if dom is None:
            return
        self.managed_save_remove(name)
        lib = self._lib
        flags = lib.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | lib.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | \
            lib.VIR_DOMAIN_UNDEFINE_NVRAM
        try:
            dom.undefineFlags(flags)
        except lib.libvirtError:
            try:
                dom.undefine()
            except lib.libvirtError as exc:
                raise _wrap(f"undefining {name}", exc) from None

    def domain_addresses(self, name: str) -> list[tuple[str, str]]:
        """(mac, ipv4) pairs from the DHCP leases of the domain's network."""
        dom = self._domain(name)
        if dom is None or not dom.isActive():
            return []
        try:
            ifaces = dom.interfaceAddresses(self._lib.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
        except self._lib.libvirtError as exc:
            log.debug("interfaceAddresses(%s): %s", name, exc)
            return []
        out: list[tuple[str, str]] = []
        for _iface, data in (ifaces or {}).items():
            for addr in data.get("addrs") or []:
                if addr.get("type") == self._lib.VIR_IP_ADDR_TYPE_IPV4:
                    out.append((str(data.get("hwaddr", "")), str(addr["addr"])))
        return out

    def domain_names(self) -> list[str]:
        try:
            return [d.name() for d in self._conn.listAllDomains(0)]
        except self._lib.libvirtError as exc:
            raise _wrap("listing domains", exc) from None

    # -- networks ----------------------------------------------------------------------------------------
    def _network(self, name: str) -> Any | None:
        try:
            return self._conn.networkLookupByName(name)
        except self._lib.libvirtError as exc:
            if exc.get_error_code() == self._lib.VIR_ERR_NO_NETWORK:
                return None
            raise _wrap(f"lookup of network {name}", exc) from None

    def network_exists(self, name: str) -> bool:
        return self._network(name) is not None

    def network_xml(self, name: str) -> str | None:
        net = self._network(name)
        return None if net is None else str(net.XMLDesc(0))

    def network_xmls(self) -> list[str]:
        try:
            return [str(n.XMLDesc(0)) for n in self._conn.listAllNetworks(0)]
        except self._lib.libvirtError as exc:
            raise _wrap("listing networks", exc) from None

    def ensure_network(self, name: str, xml: str) -> None:
        net = self._network(name)
        try:
            if net is None:
                net = self._conn.networkDefineXML(xml)
            if not net.isActive():
                net.create()
            net.setAutostart(False)
        except self._lib.libvirtError as exc:
            raise _wrap(f"creating network {name}", exc) from None

    def remove_network(self, name: str) -> None:
        net = self._network(name)
        if net is None:
            return
        try:
            if net.isActive():
                net.destroy()
            net.undefine()
        except self._lib.libvirtError as exc:
            raise _wrap(f"removing network {name}", exc) from None


def health(uri: str) -> tuple[bool, str, str]:
    try:
        _lib()
    except ImportError:
        return False, "libvirt-python is not installed", "pip install libvirt-python (needs libvirt-dev)"
    try:
        with Connection(uri) as conn:
            conn.domain_names()
    except MinisandError as exc:
        return False, exc.message, exc.hint
    return True, "", ""
