"""`stop` saves VM machines (or powers them off: `--cold`, a driver that cannot save, a profile whose CPUs or
memory changed since the boot); `pause` and `unpause` freeze and thaw every machine of a profile."""

from __future__ import annotations

import logging
from enum import StrEnum

from minisand import ui
from minisand.cluster.context import Context
from minisand.cluster.machine import stop_machine
from minisand.cluster.nodes import driver_for
from minisand.cluster.resume import set_guest_clock, suspendable
from minisand.drivers import vmcommon
from minisand.drivers.base import Driver, MachineState
from minisand.errors import ExitCode, MinisandError

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    SAVED = "saved"
    STOPPED = "stopped"
    ALREADY = "already stopped"


def resources_changed(driver: Driver) -> str | None:
    """'CPUs 2 -> 4, memory 2048 -> 4096 MB' when the profile asks for other resources than the machine got at
    its boot; None when they match or were not recorded."""
    booted = vmcommon.booted_with(driver.record())
    if booted is None:
        return None
    cpus, memory = booted
    parts = []
    if cpus != driver.spec.cpus:
        parts.append(f"CPUs {cpus} -> {driver.spec.cpus}")
    if memory != driver.spec.memory_mb:
        parts.append(f"memory {memory} -> {driver.spec.memory_mb} MB")
    return ", ".join(parts) or None


def stop_node(driver: Driver, timeout: float, cold: bool) -> Outcome:
    state = driver.state()
    if state in (MachineState.STOPPED, MachineState.NONEXISTENT, MachineState.SAVED):
        return Outcome.ALREADY
    s = suspendable(driver)
    name = driver.spec.machine
    changed = resources_changed(driver) if s is not None and not cold else None
    if changed:
        ui.info(f"node {name!r}: {changed} since its boot: powering it off instead of saving it, so that the next "
                "start applies them")
    if s is None or cold or changed:
        if s is not None and state == MachineState.PAUSED:
            s.unpause()  # an orderly power-off needs running vCPUs
        stop_machine(driver, timeout)
        return Outcome.STOPPED
    if state == MachineState.RUNNING:
        _sync_guest(driver)
    try:
        report = s.save(timeout)
    except MinisandError as exc:
        if exc.code != ExitCode.DRIVER_ERROR:
            raise
        ui.warn(f"{exc.message}; powering it off instead")
        stop_machine(driver, timeout)
        return Outcome.STOPPED
    ui.info(f"node {name!r} saved in {report.seconds:.1f}s: {_size(report.size)} ({_size(report.allocated)} on "
            f"disk) in {report.path}")
    return Outcome.SAVED


def _sync_guest(driver: Driver) -> None:
    """Writes the guest's dirty pages to its data disk first: should the saved state ever be unusable, the cold
    boot that replaces it finds everything written up to the stop."""
    try:
        runner = driver.runner()
        try:
            runner.run(["sync"], sudo=True, timeout=120, check=False)
        finally:
            runner.close()
    except MinisandError as exc:
        log.info("sync in %s before saving failed (%s)", driver.spec.machine, exc.message)


def _size(n: int) -> str:
    if n < 0:
        return "unknown size"
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"


def pause(ctx: Context, *, thaw: bool = False) -> int:
    """Freezes (or, thaw=True, thaws) the vCPUs of every node of the profile; returns how many changed."""
    cfg = ctx.store.load(ctx.profile)
    verb = "unpause" if thaw else "pause"
    drivers = [driver_for(ctx, cfg, m) for m in cfg.machine_names()]
    if any(suspendable(d) is None for d in drivers):
        raise MinisandError(f"the {cfg.driver} driver cannot {verb} a node: there is no VM to freeze",
                            hint="pause works with the qemu and kvm2 drivers; `minisand stop` stops the node",
                            code=ExitCode.NOT_AVAILABLE, reason="PAUSE_UNSUPPORTED")
    ctx.store.check_not_busy(ctx.profile)
    for drv in drivers:  # a stopped node is refused before the profile's log or lock is touched
        _check_state(drv, verb, cfg.name, thaw)
    ctx.attach_log()
    changed = 0
    with ctx.store.lock(ctx.profile):
        for drv in drivers:
            s = suspendable(drv)
            assert s is not None
            if _check_state(drv, verb, cfg.name, thaw):
                continue
            ui.step(f"{verb.capitalize()} node {drv.spec.machine!r} ...")
            if thaw:
                s.unpause()
                _fix_clock(drv)
            else:
                s.pause()
            changed += 1
    return changed


def _check_state(drv: Driver, verb: str, profile: str, thaw: bool) -> bool:
    """True if the node is already as asked; False if it can be changed; MACHINE_NOT_RUNNING otherwise."""
    state = drv.state()
    want, have = (MachineState.RUNNING, MachineState.PAUSED) if thaw else (MachineState.PAUSED, MachineState.RUNNING)
    if state == want:
        return True
    if state != have:
        raise MinisandError(f"node {drv.spec.machine!r} is {state.value.lower()}: nothing to {verb}",
                            hint=f"`minisand start -p {profile}` starts it", code=ExitCode.MACHINE_NOT_RUNNING)
    return False


def _fix_clock(driver: Driver) -> None:
    """A paused guest's clock stood still too (qemu stops its virtual clock): set it, as after a resume."""
    try:
        runner = driver.runner()
        try:
            set_guest_clock(runner, driver.spec.machine)
        finally:
            runner.close()
    except MinisandError as exc:
        ui.warn(f"could not set the clock of node {driver.spec.machine!r} after unpausing it: {exc.message}")
