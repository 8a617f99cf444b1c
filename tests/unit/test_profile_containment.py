"""Issue 11, item 1: a profile is its folder; every path built from a profile or node name is checked and stays
inside MINISAND_HOME; delete removes only the machines its profile owns, and never follows a symlink out."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from minisand.cluster.context import Context
from minisand.cluster.nodes import machine_spec
from minisand.config.model import ClusterConfig
from minisand.errors import ExitCode, MinisandError
from minisand.paths import Home, check_machine_name, check_profile_name, profile_of_machine
from tests.unit.clihelp import assert_unchanged, one_line_error, run_cli, snapshot


def _profile(home: Path, folder: str, **fields: object) -> Path:
    d = home / "profiles" / folder
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"name": folder, "driver": "qemu", **fields}))
    return d


def _machine(home: Path, name: str, profile: str | None = None) -> Path:
    d = home / "machines" / name
    d.mkdir(parents=True, exist_ok=True)
    rec: dict[str, object] = {"machine": name, "driver": "qemu"}
    if profile is not None:
        rec["profile"] = profile
    (d / "machine.json").write_text(json.dumps(rec))
    (d / "disk.qcow2").write_bytes(b"the disk of " + name.encode())
    return d


@pytest.fixture()
def victim(tmp_path: Path) -> Path:
    """A folder beside MINISAND_HOME that nothing may touch."""
    v = tmp_path / "victim"
    v.mkdir()
    (v / "precious").write_text("keep me\n")
    return v


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".", "", "Dev", "dev_1", "-dev", "dev-", "a" * 43, "dev\n",
                                 "/abs", "dev-m02", "x-m10"])
def test_profile_names_are_checked(bad: str) -> None:
    with pytest.raises(MinisandError) as exc:
        check_profile_name(bad)
    assert exc.value.code == ExitCode.BAD_INPUT
    with pytest.raises(MinisandError):
        Home(Path("/h")).profile_dir(bad)


@pytest.mark.parametrize("bad", ["../../x", "dev/../../x", "..", "", "DEV", "dev m02"])
def test_machine_names_are_checked(bad: str) -> None:
    with pytest.raises(MinisandError) as exc:
        check_machine_name(bad)
    assert exc.value.code == ExitCode.BAD_INPUT
    with pytest.raises(MinisandError):
        Home(Path("/h")).machine_dir(bad)


def test_machine_names_map_to_their_profile() -> None:
    assert [profile_of_machine(m) for m in ("dev", "dev-m02", "dev-m10", "m02", "a-b-m03")] == \
        ["dev", "dev", "dev", "m02", "a-b"]


def test_paths_resolve_inside_home(home: Path, victim: Path) -> None:
    h = Home(home)
    h.ensure()
    os.symlink(victim, home / "machines" / "dev")
    with pytest.raises(MinisandError) as exc:
        h.machine_dir("dev")
    assert exc.value.code == ExitCode.PROFILE_CORRUPT and "outside MINISAND_HOME" in exc.value.message
    assert h.machine_dir("other") == home / "machines" / "other"


def test_a_config_linked_out_of_home_is_not_read(home: Path, victim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (victim / "config.json").write_text(json.dumps({"name": "dev", "driver": "qemu"}))
    (home / "profiles" / "dev").mkdir(parents=True)
    os.symlink(victim / "config.json", home / "profiles" / "dev" / "config.json")
    code, _out, err = run_cli(["-p", "dev", "status"], capsys)
    assert code == ExitCode.PROFILE_CORRUPT and "outside MINISAND_HOME" in one_line_error(err)
    code, _out, err = run_cli(["-p", "dev", "delete"], capsys)
    assert code == 0, err
    assert (victim / "config.json").is_file() and not (home / "profiles" / "dev").exists()


def test_a_symlinked_home_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    h = Home(tmp_path / "link")
    assert h.profile_dir("dev") == tmp_path / "link" / "profiles" / "dev"


def test_stored_name_other_than_the_folder_is_corrupt(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _profile(home, "dev", name="prod")
    before = snapshot(home)
    code, _out, err = run_cli(["-p", "dev", "status"], capsys)
    assert code == ExitCode.PROFILE_CORRUPT
    assert "names profile 'prod', not 'dev'" in one_line_error(err)
    assert_unchanged(home, before)


def test_deleting_a_copied_profile_leaves_the_original_machine(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cp -r profiles/dev profiles/dev-copy; minisand -p dev-copy delete` removed machines/dev."""
    _profile(home, "dev")
    _machine(home, "dev", profile="dev")
    shutil.copytree(home / "profiles" / "dev", home / "profiles" / "dev-copy")
    keep = snapshot(home / "machines")
    code, _out, err = run_cli(["-p", "dev-copy", "delete"], capsys)
    assert code == 0, err
    assert err.count("names profile 'dev', not 'dev-copy'") == 1
    assert not (home / "profiles" / "dev-copy").exists()
    assert (home / "profiles" / "dev" / "config.json").is_file()
    assert snapshot(home / "machines") == keep


def test_a_machine_record_naming_another_profile_is_left_alone(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Ownership is the record's: machines/dev-m02 recorded for profile `other` is not dev's to delete."""
    _profile(home, "dev")
    _machine(home, "dev", profile="dev")
    _machine(home, "dev-m02", profile="other")
    code, _out, err = run_cli(["-p", "dev", "delete"], capsys)
    assert code == 0, err
    assert not (home / "machines" / "dev").exists()
    assert (home / "machines" / "dev-m02" / "disk.qcow2").is_file()
    assert "belongs to profile 'other'" in err


def test_a_machine_of_another_profile_is_never_reused_by_start(home: Path) -> None:
    _machine(home, "dev", profile="other")
    ctx = Context(Home(home), "dev")
    with pytest.raises(MinisandError) as exc:
        machine_spec(ctx, ClusterConfig(name="dev", driver="qemu"), "dev", None, with_key=True)
    assert exc.value.code == ExitCode.PROFILE_CORRUPT
    assert not (home / "machines" / "dev" / "id_ed25519").exists()


@pytest.mark.parametrize("tampered", ["../../victim", "../victim", "../../victim/precious", "/tmp/victim",
                                      "victim/../../../victim", "..", ""])
def test_a_tampered_name_never_reaches_outside_home(home: Path, victim: Path, capsys: pytest.CaptureFixture[str],
                                                    tampered: str) -> None:
    _profile(home, "dev", name=tampered, nodes=2)
    _machine(home, "dev", profile="dev")
    outside = snapshot(victim)
    for argv, want in ((["status"], ExitCode.PROFILE_CORRUPT), (["stop"], ExitCode.PROFILE_CORRUPT),
                       (["ip"], ExitCode.PROFILE_CORRUPT), (["logs"], ExitCode.PROFILE_CORRUPT),
                       (["ssh", "--", "true"], ExitCode.PROFILE_CORRUPT)):
        before = snapshot(home)
        code, _out, err = run_cli(["-p", "dev", *argv], capsys)
        assert code == want, (argv, err)
        one_line_error(err)
        assert_unchanged(home, before)
    code, _out, err = run_cli(["profile", "list", "-o", "json"], capsys)
    assert code == 0 and json.loads(_out)[0]["status"] == "Corrupt"
    code, _out, err = run_cli(["-p", "dev", "delete"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert snapshot(victim) == outside
    assert not (home / "profiles" / "dev").exists() and not (home / "machines" / "dev").exists()


def test_symlinks_out_of_home_are_unlinked_not_followed(home: Path, victim: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    Home(home).ensure()
    os.symlink(victim, home / "machines" / "dev")
    os.symlink(victim, home / "machines" / "dev-m02")
    os.symlink(victim, home / "profiles" / "dev")
    outside = snapshot(victim)
    code, _out, err = run_cli(["-p", "dev", "status"], capsys)
    assert code == ExitCode.PROFILE_CORRUPT and "outside MINISAND_HOME" in one_line_error(err)
    code, _out, err = run_cli(["-p", "dev", "delete"], capsys)
    assert code == 0, err
    assert snapshot(victim) == outside
    assert not any(os.path.lexists(home / d / "dev") for d in ("machines", "profiles"))
    assert not os.path.lexists(home / "machines" / "dev-m02")


def test_a_symlinked_machines_folder_is_not_deleted_through(home: Path, victim: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    _profile(home, "dev")
    (victim / "dev").mkdir()
    (victim / "dev" / "disk.qcow2").write_text("elsewhere")
    os.symlink(victim, home / "machines")
    outside = snapshot(victim)
    code, _out, err = run_cli(["-p", "dev", "delete"], capsys)
    assert code == 0, err
    assert snapshot(victim) == outside
    assert "no machine is deleted through it" in err


@pytest.mark.parametrize("cmd", ["logs", "ip"])
@pytest.mark.parametrize("node", ["../../x", "../dev", "dev/..", "nosuch", "dev-m03"])
def test_node_option_names_only_the_profiles_nodes(home: Path, capsys: pytest.CaptureFixture[str], cmd: str,
                                                   node: str) -> None:
    _profile(home, "dev", nodes=2)
    before = snapshot(home)
    code, _out, err = run_cli(["-p", "dev", cmd, "--node", node], capsys)
    assert code == ExitCode.BAD_INPUT, err
    assert "is not part of profile 'dev'" in one_line_error(err)
    assert_unchanged(home, before)


def test_a_profile_name_that_looks_like_a_node_is_refused(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_cli(["-p", "dev-m02", "start", "--driver", "qemu"], capsys)
    assert code == ExitCode.BAD_INPUT
    assert "ends like a node name" in one_line_error(err)
    assert not home.exists()


def test_delete_of_a_half_written_profile(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A first start interrupted after the lock: a folder with only .lock, or an empty config.json."""
    (home / "profiles" / "half").mkdir(parents=True)
    (home / "profiles" / "half" / ".lock").write_text("")
    (home / "profiles" / "empty").mkdir(parents=True)
    (home / "profiles" / "empty" / "config.json").write_text("")
    (home / "machines" / "empty").mkdir(parents=True)  # a key was made, nothing else
    (home / "machines" / "empty" / "id_ed25519").write_text("k")
    code, out, err = run_cli(["profile", "list", "-o", "json"], capsys)
    assert code == 0, err
    assert {r["name"]: r["status"] for r in json.loads(out)} == {"empty": "Corrupt", "half": "Incomplete"}
    for name in ("half", "empty"):
        code, _out, err = run_cli(["-p", name, "delete"], capsys)
        assert code == 0, err
        assert not (home / "profiles" / name).exists()
    assert not (home / "machines" / "empty").exists()
