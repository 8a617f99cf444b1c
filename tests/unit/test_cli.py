from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from minisand.cli.app import app
from minisand.cli.argv import hoist_globals
from minisand.config.model import ClusterConfig
from minisand.config.store import ProfileStore
from minisand.errors import ExitCode
from minisand.paths import Home
from tests.unit.clihelp import assert_unchanged, one_line_error, run_cli, snapshot


@pytest.mark.parametrize(("argv", "code"), [
    (["start", "--memory", "lots"], ExitCode.BAD_INPUT),
    (["start", "--cpus", "0"], ExitCode.BAD_INPUT),
    (["start", "--driver", "foo"], ExitCode.BAD_INPUT),
    (["start", "--container-runtime", "docker"], ExitCode.BAD_INPUT),
    (["start", "--insecure-registry", "http://r:5000"], ExitCode.BAD_INPUT),
    (["status", "-p", "nope"], ExitCode.PROFILE_NOT_FOUND),
    (["ssh", "-p", "nope"], ExitCode.PROFILE_NOT_FOUND),
    (["ip"], ExitCode.PROFILE_NOT_FOUND),
    (["stop"], ExitCode.PROFILE_NOT_FOUND),
    (["-p", "Bad_Name", "status"], ExitCode.BAD_INPUT),
    (["config", "set", "cpus", "0"], ExitCode.BAD_INPUT),
    (["config", "set", "nosuch", "1"], ExitCode.BAD_INPUT),
    (["start", "--bogus-flag"], ExitCode.USAGE),
    (["delete", "--purge"], ExitCode.BAD_INPUT),
])
def test_bad_input_is_one_line_with_a_code(home: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                           code: ExitCode) -> None:
    got, _out, err = run_cli(argv, capsys)
    assert got == code, err
    one_line_error(err)
    assert not (home / "profiles" / "minisand").exists()


def test_bad_input_leaves_an_existing_profile_intact(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ProfileStore(Home(home))
    cfg = ClusterConfig(name="minisand", driver="qemu", memory_mb=3000)
    store.save(cfg)
    before = Home(home).profile_config("minisand").read_bytes()
    for argv in (["start", "--memory", "lots"], ["start", "--driver", "kvm2"], ["start", "--cpus", "0"]):
        code, _o, err = run_cli(argv, capsys)
        assert code == ExitCode.BAD_INPUT
        one_line_error(err)
    assert Home(home).profile_config("minisand").read_bytes() == before


@pytest.mark.parametrize("argv", [["start"], ["start", "--driver", "none"], ["stop"], ["delete"],
                                  ["addons", "enable", "gvisor"], ["addons", "disable", "gvisor"]], ids=" ".join)
def test_second_command_on_a_locked_profile(home: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """While another minisand holds the profile, a mutating command exits 12 at once and leaves MINISAND_HOME
    byte-identical but for the profile's log, which records the refusal (the lock file still names the holder; no
    machine or cache is made)."""
    store = ProfileStore(Home(home))
    store.save(ClusterConfig(name="minisand", driver="none"))
    with store.lock("minisand"):
        before = snapshot(home)
        code, _o, err = run_cli(argv, capsys)
        assert_unchanged(home, before, ignore=("logs",))
    assert code == ExitCode.PROFILE_BUSY, err
    assert "is busy" in one_line_error(err)


@pytest.mark.parametrize("argv", [["pause"], ["unpause"]], ids=" ".join)
def test_pause_on_a_locked_profile_says_busy(home: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """A stopped cluster is refused before the log or lock is touched, but a held lock is reported first."""
    store = ProfileStore(Home(home))
    store.save(ClusterConfig(name="minisand", driver="qemu"))
    with store.lock("minisand"):
        before = snapshot(home)
        code, _o, err = run_cli(argv, capsys)
        assert_unchanged(home, before)
    assert code == ExitCode.PROFILE_BUSY, err
    assert "is busy" in one_line_error(err)


def test_globals_anywhere() -> None:
    root = typer.main.get_command(app)
    assert hoist_globals(root, ["status", "-p", "dev", "-o", "json"]) == ["-p", "dev", "status", "-o", "json"]
    assert hoist_globals(root, ["ssh", "-pdev", "--", "ls", "-p", "x"]) == ["-p", "dev", "ssh", "--", "ls", "-p", "x"]
    assert hoist_globals(root, ["-v", "start", "--profile=x"]) == ["-v", "--profile=x", "start"]


def test_config_set_get_view(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["config", "set", "memory", "6g"], capsys)[0] == 0
    assert run_cli(["config", "set", "registry-mirror", "http://a:5000,http://b:5000"], capsys)[0] == 0
    code, out, _ = run_cli(["config", "get", "memory"], capsys)
    assert (code, out.strip()) == (0, "6g")
    code, out, _ = run_cli(["config", "view", "-o", "json"], capsys)
    data = json.loads(out)
    assert data["defaults"]["registry-mirror"] == ["http://a:5000", "http://b:5000"]
    assert run_cli(["config", "unset", "memory"], capsys)[0] == 0
    assert run_cli(["config", "get", "memory"], capsys)[0] == ExitCode.BAD_INPUT


def test_version_and_completion(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["version", "-o", "json"], capsys)
    assert code == 0 and json.loads(out)["minisandVersion"]
    code, out, _ = run_cli(["completion", "bash"], capsys)
    assert code == 0 and "_MINISAND_COMPLETE" in out


def test_profile_list_empty(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["profile", "list"], capsys)
    assert code == 0 and "No profiles" in out


def test_delete_of_unknown_profile_is_a_no_op(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_cli(["delete", "-p", "ghost"], capsys)
    assert code == 0 and "nothing to delete" in err


@pytest.mark.allow_subprocess
def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    probe = ("import sys, time; t=time.perf_counter(); from minisand.cli.app import run; rc=run(['--help']); "
             "heavy=[m for m in ('kubernetes','paramiko','libvirt','requests') if m in sys.modules]; "
             "print(repr((rc, heavy, time.perf_counter()-t)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "MINISAND_HOME": str(tmp_path)})
    rc, heavy, _seconds = eval(proc.stderr.strip().splitlines()[-1])
    assert rc == 0 and heavy == []
    assert "start" in proc.stdout and "addons" in proc.stdout


@pytest.mark.parametrize(("driver", "network", "ok"), [("qemu", "default", False), ("none", "default", False),
                                                    ("kvm2", "user", False), ("kvm2", "default", True)])
def test_multinode_needs_a_shared_network(driver: str, network: str, ok: bool) -> None:
    from minisand.cluster.start import check_topology
    from minisand.config.model import DriverOptions
    from minisand.errors import MinisandError

    cfg = ClusterConfig(name="dev", driver=driver, nodes=2, driver_options=DriverOptions(network=network))
    if ok:
        check_topology(cfg)
        return
    with pytest.raises(MinisandError) as exc:
        check_topology(cfg)
    assert exc.value.code == ExitCode.BAD_INPUT and "kvm2" in exc.value.hint
