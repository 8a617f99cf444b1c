"""Bringing one machine up: create or fix, resume its saved state or boot it (pinning the guest's host key from its
console), reach SSH."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from minisand import ui
from minisand.drivers.base import Driver, MachineState
from minisand.errors import ExitCode, MinisandError
from minisand.guest import HOST_KEYS_END, ROOT_LOGIN, SSH_READY, GuestPanicked, raise_if_panicked
from minisand.keys import fingerprint, host_keys_from_console, preferred_host_key
from minisand.runner.base import CommandRunner

log = logging.getLogger(__name__)

BOOT_ATTEMPTS = 3  # boots tried when the guest kernel panics early (see minisand.guest)


def wait_console(path: Path, marker: str, timeout: float, alive: object = None) -> str:
    """Waits until the console log at path contains marker; alive() False aborts early; a kernel panic on the
    console raises GuestPanicked at once."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        if marker in text:
            return text
        raise_if_panicked(text, path)
        if callable(alive) and not alive():
            raise MinisandError("the machine stopped while booting", hint=f"see its console log {path}",
                                code=ExitCode.DRIVER_ERROR)
        if time.monotonic() > deadline:
            raise MinisandError(f"the machine did not finish booting within {timeout:.0f}s",
                                hint=f"see its console log {path}", code=ExitCode.DRIVER_ERROR)
        time.sleep(0.2)


def pin_host_key(driver: Driver, timeout: float) -> str | None:
    """Reads the host key the guest printed on its console at this boot and pins it (first boot) or checks
    it against the pinned one (later boots)."""
    console = driver.console_log()
    rec = driver.record()
    if console is None or rec is None:
        return None
    alive = lambda: driver.state() not in (MachineState.STOPPED, MachineState.NONEXISTENT,  # noqa: E731
                                           MachineState.SAVED)
    text = wait_console(console, HOST_KEYS_END, timeout, alive=alive)
    try:
        # the ISO prints this once the network is configured and sshd listens: connecting earlier through
        # user-mode networking only queues connections that each cost the guest a process
        text = wait_console(console, SSH_READY, timeout, alive=alive)
    except MinisandError as exc:
        if exc.code != ExitCode.DRIVER_ERROR or "did not finish booting" not in exc.message:
            raise
        log.warning("no %s on the console of %s; trying SSH anyway", SSH_READY, driver.spec.machine)
    key = preferred_host_key(host_keys_from_console(text))
    if key is None:
        raise MinisandError("the guest printed no usable SSH host key on its console",
                            hint=f"see {console}; is this a minisand ISO?", code=ExitCode.SSH_ERROR)
    if rec.host_key and rec.host_key != key:
        raise MinisandError(f"the guest's SSH host key changed: pinned {fingerprint(rec.host_key)}, "
                            f"now {fingerprint(key)}",
                            hint="the data disk was replaced or tampered with; `minisand delete` and start again",
                            code=ExitCode.HOST_KEY_MISMATCH)
    if not rec.host_key:
        rec = dataclasses.replace(rec, host_key=key)
        rec.save(driver.spec.machine_dir)
        log.info("pinned host key %s for %s", fingerprint(key), rec.machine)
    _note_root_login(driver, ROOT_LOGIN in text)
    return key


def _note_root_login(driver: Driver, allowed: bool) -> None:
    """Whether this boot's image lets minisand's key log in as root (its commands then need no sudo)."""
    from minisand.drivers.vmcommon import ROOT_LOGIN_KEY

    rec = driver.record()
    if rec is None or (rec.extra.get(ROOT_LOGIN_KEY) == "yes") == allowed:
        return
    extra = {k: v for k, v in rec.extra.items() if k != ROOT_LOGIN_KEY}
    if allowed:
        extra[ROOT_LOGIN_KEY] = "yes"
    dataclasses.replace(rec, extra=extra).save(driver.spec.machine_dir)


def bring_up(driver: Driver, boot_timeout: float = 300.0) -> CommandRunner:
    return start_machine(driver, boot_timeout)[0]


def start_machine(driver: Driver, boot_timeout: float = 300.0) -> tuple[CommandRunner, bool]:
    """Create-or-fix then start: a stopped or half-created machine is started, not recreated; a saved one is
    resumed (or, when its saved state cannot be used, booted cold after a notice); a paused one is unpaused.
    Returns a runner on it and whether it was resumed from a saved state."""
    from minisand.cluster.resume import resume_or_notice, suspendable

    state = driver.state()
    driver.create()  # idempotent: repairs missing pieces (disk, files, domain)
    if state == MachineState.PAUSED:
        s = suspendable(driver)
        if s is not None:
            s.unpause()
        else:
            driver.stop(timeout=5)
    if state == MachineState.SAVED:
        resumed = resume_or_notice(driver, boot_timeout)
        if resumed is not None:
            return resumed, True
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        started = time.monotonic()
        try:
            driver.start()
            pin_host_key(driver, boot_timeout)
            break
        except GuestPanicked as exc:
            if attempt == BOOT_ATTEMPTS:
                raise
            # the panics seen under TCG come ~1.5 s into boot, before the data disk is mounted; after a later one
            # the initramfs replays the disk's journal (e2fsck) on the next boot
            ui.warn(f"{exc.message}; restarting machine {driver.spec.machine} (boot {attempt + 1} of "
                    f"{BOOT_ATTEMPTS})")
            driver.kill()
    runner = driver.runner()
    runner.run(["true"], timeout=60)
    log.info("machine reachable over SSH %.1fs after start", time.monotonic() - started)
    return runner, False


def stop_machine(driver: Driver, timeout: float) -> bool:
    """A VM is asked to power off from inside first (systemd's orderly shutdown: containerd and the kubelet stop
    cleanly, the data disk is synced); the driver then waits, sends ACPI power-off, and kills after timeout."""
    state = driver.state()
    if state in (MachineState.STOPPED, MachineState.NONEXISTENT, MachineState.SAVED):
        return False
    if state == MachineState.RUNNING and driver.console_log() is not None:
        try:
            runner = driver.runner()
            runner.run(["systemctl", "poweroff", "--no-block"], sudo=True, timeout=30, check=False)
            runner.close()
        except MinisandError as exc:
            log.info("in-guest power-off of %s failed (%s); using ACPI", driver.spec.machine, exc.message)
    driver.stop(timeout=timeout)
    return True


def notice_accel(driver: Driver) -> None:
    rec = driver.record()
    if rec and rec.accel == "tcg":
        ui.info("running under TCG software emulation (no usable KVM): expect a slow node")
