"""The driver registry: names, aliases, priorities and a health check per driver. Implementations are imported
only when a driver is used, so `minisand --help` stays fast."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from minisand.drivers.base import Driver, Health, MachineSpec
from minisand.errors import ExitCode, MinisandError


@dataclass(frozen=True)
class DriverInfo:
    name: str
    module: str  # implementation module with `health() -> Health` and a `create_driver(spec) -> Driver`
    description: str
    priority: int  # higher is preferred when choosing automatically; 0 = never chosen automatically
    aliases: tuple[str, ...] = ()
    is_vm: bool = True

    def _module(self) -> ModuleType:
        return importlib.import_module(self.module)

    def health(self) -> Health:
        fn: Callable[[], Health] = self._module().health
        return fn()

    def create(self, spec: MachineSpec) -> Driver:
        fn: Callable[[MachineSpec], Driver] = self._module().create_driver
        return fn(spec)


DRIVERS: tuple[DriverInfo, ...] = (
    DriverInfo("kvm2", "minisand.drivers.kvm2.driver", "a libvirt domain (qemu/KVM) with a private network",
               priority=30, aliases=("kvm", "libvirt")),
    DriverInfo("qemu", "minisand.drivers.qemu.driver", "qemu-system run directly, user-mode networking",
               priority=20, aliases=("qemu2",)),
    DriverInfo("hyperkit", "minisand.drivers.hyperkit.driver", "macOS hyperkit VM", priority=25),
    DriverInfo("none", "minisand.drivers.none.driver", "the host itself (Linux, root); changes the host",
               priority=0, is_vm=False),
    DriverInfo("ssh", "minisand.drivers.ssh.driver", "an existing machine reached over SSH", priority=0,
               is_vm=False),
)


def names() -> list[str]:
    return [d.name for d in DRIVERS]


def lookup(name: str) -> DriverInfo:
    key = name.strip().lower()
    for d in DRIVERS:
        if key == d.name or key in d.aliases:
            return d
    raise MinisandError(f"unknown driver {name!r}",
                        hint=f"choose one of: {', '.join(names())} (`minisand start --help`)",
                        code=ExitCode.BAD_INPUT, reason="DRIVER_UNKNOWN")


def choose(explicit: str | None) -> tuple[DriverInfo, list[str]]:
    """The driver to use, and notes on the candidates that were skipped (for the user)."""
    if explicit:
        info = lookup(explicit)
        health = info.health()
        if not health.ok:
            raise MinisandError(f"the {info.name} driver is not usable here: {health.reason}",
                                hint=health.fix or "choose another --driver", code=ExitCode.DRIVER_UNAVAILABLE)
        return info, []
    notes: list[str] = []
    for info in sorted((d for d in DRIVERS if d.priority > 0), key=lambda d: -d.priority):
        health = info.health()
        if health.ok:
            return info, notes
        notes.append(f"{info.name}: {health.describe()}")
    raise MinisandError("no usable driver found: " + "; ".join(notes),
                        hint="fix one of the drivers above, or use --driver=none (Linux, root)",
                        code=ExitCode.DRIVER_UNAVAILABLE)
