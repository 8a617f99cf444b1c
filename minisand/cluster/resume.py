"""`start` on a saved machine: resume it, set the guest's clock at once, or fall back to a cold boot with a
one-line notice (the saved state is dropped; the data disk is kept).

The guest's clock stood still while the machine was saved: after a resume it is behind the host by the time the
machine spent saved. The first commands minisand runs in the guest set it: a few readings of the guest's clock
against the host's give the offset (the reading with the shortest SSH round trip; its error is at most half that
round trip), and the guest steps its own clock by it (`date -s`), before anything else minisand does and about a
second after the vCPUs run again; the kubelet and etcd then see one forward jump, as after a laptop's suspend.
Nothing is booted, so there is no console to read: SSH connects with the host key pinned at the first boot."""

from __future__ import annotations

import logging
import time

from minisand import ui
from minisand.drivers.base import Driver, ResumeFailed, Suspendable
from minisand.runner.base import CommandRunner

log = logging.getLogger(__name__)

# A constant script (the correction in nanoseconds is its positional parameter): steps the guest's clock by that
# much relative to its own reading when the step runs, so the latency of sudo and of the SSH channel does not count.
STEP_SCRIPT = ('t=$(( $(date +%s%N) + $1 )); '
               'date -u -s "@$((t / 1000000000)).$(printf %09d $((t % 1000000000)))" >/dev/null')
SAMPLES = 3  # clock readings; the one with the shortest round trip (the first also opens the SSH connection) wins


def suspendable(driver: Driver) -> Suspendable | None:
    return driver if isinstance(driver, Suspendable) else None


def resume_or_notice(driver: Driver, timeout: float) -> CommandRunner | None:
    """A runner on the resumed machine, or None after the notice (the caller boots the machine cold)."""
    s = suspendable(driver)
    if s is None or not s.has_saved_state():
        return None
    name = driver.spec.machine
    problem = s.saved_state_problem()
    if problem is None:
        t0 = time.monotonic()
        try:
            s.resume(timeout)
        except ResumeFailed as exc:
            problem = exc.why
        else:
            log.info("machine %s resumed in %.1fs", name, time.monotonic() - t0)
            runner = driver.runner()
            set_guest_clock(runner, name)
            log.info("machine %s reachable over SSH %.1fs after the resume began", name, time.monotonic() - t0)
            return runner
    ui.warn(f"the saved state of machine {name!r} cannot be used ({problem}): booting it cold; its data disk is "
            "kept")
    s.discard_saved_state()
    return None


def clock_offset(runner: CommandRunner) -> tuple[float, float]:
    """(guest minus host in seconds, round trip): one reading of the guest's clock between two of the host's;
    the error is at most half the round trip."""
    t0 = time.time()
    guest = float(runner.run(["date", "+%s.%N"], timeout=120).out)
    t1 = time.time()
    return guest - (t0 + t1) / 2, t1 - t0


def set_guest_clock(runner: CommandRunner, machine: str) -> dict[str, float]:
    """Steps the guest's clock to the host's (NTP-like: the reading with the shortest round trip gives the offset,
    the guest applies it to its own clock); returns the offset found and the residual measured right after."""
    offset, rtt = min((clock_offset(runner) for _ in range(SAMPLES)), key=lambda s: s[1])
    runner.run(["sh", "-c", STEP_SCRIPT, "sh", str(-round(offset * 1e9))], sudo=True, timeout=60)
    residual, rtt_after = clock_offset(runner)
    facts = {"offset_before": round(offset, 3), "residual": round(residual, 3), "round_trip": round(rtt, 3),
             "round_trip_after": round(rtt_after, 3)}
    log.info("guest clock of %s: was %+.3fs off; set; right after %+.3fs (reading round trips %.3fs, %.3fs)",
             machine, offset, residual, rtt, rtt_after)
    return facts
