"""`start` on a saved machine (cluster.machine.start_machine with a stand-in driver, the platform boundary): it
resumes and sets the guest's clock without reading the console, or says in one line why it boots cold (the saved
state dropped first); `stop` saves, powers off with --cold or when the resources changed, and leaves a saved
machine alone; the converged mark that lets a resumed start skip the reconcile."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from minisand.cluster import converged, machine, resume, suspend
from minisand.cluster.context import Context
from minisand.config.model import ClusterConfig
from minisand.drivers import vmcommon
from minisand.drivers.base import Driver, MachineRecord, MachineState, ResumeFailed, Suspendable
from minisand.drivers.savedstate import SaveReport
from minisand.paths import Home
from minisand.runner.base import RunResult

BOOTED = """\
-----BEGIN MINISAND HOST KEYS-----
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMyIuNaRP0y0VhCYZeIbQ0xS0SxJk7aXD3G5tD0x6mP1
-----END MINISAND HOST KEYS-----
MINISAND-SSH-READY
"""


class GuestClockRunner:
    """Answers `date +%s.%N` with a clock `lag` seconds behind the host's until the step script ran."""

    def __init__(self, lag: float) -> None:
        self.lag = lag
        self.ran: list[list[str]] = []

    def run(self, argv: list[str], **kw: Any) -> RunResult:
        self.ran.append(list(argv))
        out = b""
        if argv == ["date", "+%s.%N"]:
            out = f"{time.time() - self.lag:.9f}\n".encode()
        elif argv[:2] == ["sh", "-c"] and argv[2] == resume.STEP_SCRIPT:
            self.lag -= int(argv[4]) / 1e9  # the guest steps its own clock forward by the correction
        return RunResult(tuple(argv), 0, out, b"", 0.0)

    def close(self) -> None:
        pass


class SavingDriver:
    """A VM driver with a saved state; `problem` and `fail` choose how its resume goes."""

    def __init__(self, tmp: Path, state: MachineState = MachineState.SAVED, problem: str | None = None,
                 fail: str | None = None, cpus: int = 2) -> None:
        self.spec = SimpleNamespace(machine="m01", machine_dir=tmp, cpus=cpus, memory_mb=2048)
        self.console = tmp / "serial.log"
        self._state, self.problem, self.fail = state, problem, fail
        self.calls: list[str] = []
        self.fake_runner = GuestClockRunner(lag=42.0)
        rec = MachineRecord(machine="m01", driver="fake", host_key=BOOTED.splitlines()[1])
        vmcommon.note_boot(rec, cast(Any, SimpleNamespace(cpus=2, memory_mb=2048))).save(tmp)

    def state(self) -> MachineState:
        return self._state

    def create(self) -> None:
        self.calls.append("create")

    def start(self) -> None:
        self.calls.append("start")
        self.console.write_text(BOOTED)
        self._state = MachineState.RUNNING

    def stop(self, timeout: float = 90.0) -> None:
        self.calls.append("stop")
        self._state = MachineState.STOPPED

    def kill(self) -> None:
        self.calls.append("kill")

    def console_log(self) -> Path:
        return self.console

    def record(self) -> MachineRecord | None:
        return MachineRecord.load(self.spec.machine_dir)

    def runner(self) -> GuestClockRunner:
        return self.fake_runner

    def has_saved_state(self) -> bool:
        return self._state == MachineState.SAVED

    def saved_state_problem(self) -> str | None:
        return self.problem

    def resume(self, timeout: float) -> None:
        self.calls.append("resume")
        if self.fail:
            raise ResumeFailed(self.fail)
        self._state = MachineState.RUNNING

    def discard_saved_state(self) -> None:
        self.calls.append("discard")
        self._state = MachineState.STOPPED

    def save(self, timeout: float) -> SaveReport:
        self.calls.append("save")
        self._state = MachineState.SAVED
        return SaveReport("m01", "/x/vmstate", 1 << 30, 1 << 30, 1.0)

    def pause(self) -> None:
        self.calls.append("pause")
        self._state = MachineState.PAUSED

    def unpause(self) -> None:
        self.calls.append("unpause")
        self._state = MachineState.RUNNING


def test_the_fake_is_a_suspendable_driver(tmp_path: Path) -> None:
    assert isinstance(SavingDriver(tmp_path), Suspendable)


def test_a_usable_state_is_resumed_and_the_clock_set_without_the_console(tmp_path: Path) -> None:
    drv = SavingDriver(tmp_path)
    runner, resumed = machine.start_machine(cast(Driver, drv), boot_timeout=5)
    assert resumed and drv.calls == ["create", "resume"]
    assert not drv.console.exists()  # nothing booted, nothing read from a console
    assert drv.fake_runner.ran[:resume.SAMPLES] == [["date", "+%s.%N"]] * resume.SAMPLES
    assert abs(drv.fake_runner.lag) < 0.5  # was 42 s behind; stepped by the measured offset
    assert runner is cast(Any, drv.fake_runner)


@pytest.mark.parametrize(("problem", "fail", "reason"), [
    ("memory changed from 2048 MB to 4096 MB", None, "memory changed"),
    ("the state file is truncated (5 of 10 bytes)", None, "truncated"),
    (None, "qemu could not load it (load of migration failed)", "qemu could not load it"),
    (None, "the state file is corrupt (its sha256 differs)", "corrupt"),
])
def test_an_unusable_state_boots_cold_after_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     problem: str | None, fail: str | None, reason: str) -> None:
    drv = SavingDriver(tmp_path, problem=problem, fail=fail)
    _, resumed = machine.start_machine(cast(Driver, drv), boot_timeout=5)
    assert not resumed
    expected = ["create", "discard", "start"] if fail is None else ["create", "resume", "discard", "start"]
    assert drv.calls == expected
    notice = [ln for ln in capsys.readouterr().err.splitlines() if "cannot be used" in ln]
    assert len(notice) == 1 and reason in notice[0] and "data disk is" in notice[0]


def test_a_paused_machine_is_unpaused_not_rebooted(tmp_path: Path) -> None:
    drv = SavingDriver(tmp_path, state=MachineState.PAUSED)
    drv.console.write_text(BOOTED)
    machine.start_machine(cast(Driver, drv), boot_timeout=5)
    assert "unpause" in drv.calls and "stop" not in drv.calls


def test_stop_saves_leaves_a_saved_machine_alone_and_powers_off_when_asked(tmp_path: Path) -> None:
    drv = SavingDriver(tmp_path, state=MachineState.RUNNING)
    assert suspend.stop_node(cast(Driver, drv), 10, cold=False) == suspend.Outcome.SAVED
    assert drv.fake_runner.ran[0] == ["sync"] and drv.calls == ["save"]
    assert suspend.stop_node(cast(Driver, drv), 10, cold=False) == suspend.Outcome.ALREADY
    assert drv.calls == ["save"]
    cold = SavingDriver(tmp_path, state=MachineState.RUNNING)
    assert suspend.stop_node(cast(Driver, cold), 10, cold=True) == suspend.Outcome.STOPPED
    assert "save" not in cold.calls and "stop" in cold.calls


def test_changed_resources_power_off_instead_of_saving(tmp_path: Path) -> None:
    drv = SavingDriver(tmp_path, state=MachineState.RUNNING, cpus=4)  # booted with 2, the profile says 4
    assert suspend.resources_changed(cast(Driver, drv)) == "CPUs 2 -> 4"
    assert suspend.stop_node(cast(Driver, drv), 10, cold=False) == suspend.Outcome.STOPPED
    assert "save" not in drv.calls


def test_converged_mark(tmp_path: Path) -> None:
    ctx = Context(Home(tmp_path), "dev")
    cfg = ClusterConfig(name="dev", driver="qemu")
    assert not converged.matches(ctx, cfg)
    ctx.home.profile_dir("dev").mkdir(parents=True)
    converged.mark(ctx, cfg)
    assert converged.matches(ctx, cfg)
    assert not converged.matches(ctx, ClusterConfig(name="dev", driver="qemu", addons=("gvisor",)))
    assert converged.unmark(ctx, cfg) and not converged.matches(ctx, cfg)
    assert not converged.unmark(ctx, cfg)


@pytest.mark.parametrize("driver", ["ssh", "none"])
def test_pause_refuses_drivers_without_a_vm_in_one_line(home: Path, capsys: pytest.CaptureFixture[str],
                                                        driver: str) -> None:
    from minisand.config.store import ProfileStore
    from minisand.errors import ExitCode
    from tests.unit.clihelp import one_line_error, run_cli

    ProfileStore(Home(home)).save(ClusterConfig(name="minisand", driver=driver))
    before = Home(home).profile_config("minisand").read_bytes()
    for verb in ("pause", "unpause"):
        code, _out, err = run_cli([verb], capsys)
        assert code == ExitCode.NOT_AVAILABLE, err
        one_line_error(err)
        assert f"the {driver} driver cannot {verb}" in err
    assert Home(home).profile_config("minisand").read_bytes() == before
    assert sorted(p.name for p in home.iterdir()) == ["profiles"]  # nothing else written
    code, _out, err = run_cli(["pause", "-p", "nope"], capsys)
    assert code == ExitCode.PROFILE_NOT_FOUND
