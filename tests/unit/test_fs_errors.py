"""Issue 11, item 3: an unusable MINISAND_HOME (a file, under a file, a folder that cannot be written) gives one
line and exit 14, never a traceback; the root logger has a handler, so nothing reaches Python's last-resort
handler (which printed every warning twice and tracebacks on stderr). The full-disk case needs a tmpfs:
tests/integration/test_home_fs.py."""

from __future__ import annotations

import errno
import json
import logging
import stat
from pathlib import Path

import pytest

from minisand.errors import ExitCode, filesystem_error
from minisand.paths import Home
from tests.unit.clihelp import assert_unchanged, one_line_error, run_cli, snapshot

_COMMANDS = [["status"], ["stop"], ["delete"], ["delete", "--all"], ["profile", "list"], ["ip"], ["logs"],
             ["config", "set", "memory", "6g"], ["config", "view"], ["addons", "list"],
             ["start", "--driver", "qemu", "--dry-run"], ["start", "--driver", "none"],
             # the commands added since
             ["image", "ls"], ["image", "load", "/etc/hostname"], ["image", "rm", "busybox"], ["image", "pull", "x"],
             ["service", "web"], ["cp", "/etc/hostname", "minisand:/tmp/x"], ["dashboard", "--url"], ["pause"],
             ["unpause"], ["stop", "--cold"], ["logs", "-f"], ["logs", "--file", "/nonexistent-dir/x"],
             ["start", "-o", "json", "--dry-run"], ["addons", "enable", "gvisor", "-o", "json"],
             ["addons", "disable", "gvisor"]]


@pytest.mark.parametrize("argv", _COMMANDS, ids=" ".join)
def test_a_file_as_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                        argv: list[str]) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder\n")
    monkeypatch.setenv("MINISAND_HOME", str(home))
    code, _out, err = run_cli(argv, capsys)
    assert code == ExitCode.FILESYSTEM_ERROR, err
    assert "is not a folder" in one_line_error(err)
    assert home.read_text() == "not a folder\n"


@pytest.mark.parametrize("argv", _COMMANDS, ids=" ".join)
def test_a_home_under_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                             argv: list[str]) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("MINISAND_HOME", str(tmp_path / "file" / "sub" / "home"))
    code, _out, err = run_cli(argv, capsys)
    assert code == ExitCode.FILESYSTEM_ERROR, err
    assert "cannot be created" in one_line_error(err)


@pytest.mark.parametrize("where", ["/proc/1/minisand-home", "/sys/kernel/minisand-home", "/proc/self"])
@pytest.mark.parametrize("argv", [["config", "set", "memory", "6g"], ["-p", "dev", "delete"]], ids=" ".join)
def test_a_folder_that_cannot_be_written(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                         where: str, argv: list[str]) -> None:
    """Root writes through any mode bits; these kernel file systems refuse even root."""
    monkeypatch.setenv("MINISAND_HOME", where)
    code, _out, err = run_cli(argv, capsys)
    if argv[-1] == "delete":  # nothing to delete is not an error, and writes nothing
        assert code == 0 and "nothing to delete" in err
        return
    assert code == ExitCode.FILESYSTEM_ERROR, err
    assert "cannot use a file or folder" in one_line_error(err)


def test_a_profile_that_cannot_be_locked(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "profiles" / "minisand").mkdir(parents=True)
    (home / "profiles" / "minisand" / "config.json").write_text(json.dumps({"name": "minisand", "driver": "qemu"}))
    (home / "profiles" / "minisand" / ".lock").mkdir()  # a folder where the lock file goes
    before = snapshot(home, ignore=("logs",))
    code, _out, err = run_cli(["stop"], capsys)
    assert code == ExitCode.FILESYSTEM_ERROR, err
    assert ".lock" in one_line_error(err)
    assert_unchanged(home, before, ignore=("logs",))  # stop had begun its log when the lock failed


@pytest.mark.parametrize(("err", "word"), [(errno.ENOSPC, "free space"), (errno.EROFS, "read-only"),
                                           (errno.EACCES, "permissions"), (errno.ENOTDIR, "a file stands")])
def test_filesystem_errors_map_to_one_line(err: int, word: str) -> None:
    mapped = filesystem_error(OSError(err, "boom", "/some/file"))
    assert mapped is not None and mapped.code == ExitCode.FILESYSTEM_ERROR
    assert "/some/file" in mapped.message and word in mapped.hint


def test_socket_errors_are_not_filesystem_errors() -> None:
    assert filesystem_error(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) is None


def test_root_logger_has_a_handler_so_nothing_prints_twice(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without one, Python's last-resort handler printed each warning a second time and tracebacks on stderr."""
    (home / "profiles" / "dev").mkdir(parents=True)
    (home / "profiles" / "dev" / "config.json").write_text("{broken")
    code, _out, err = run_cli(["-p", "dev", "delete"], capsys)
    assert code == 0, err
    assert err.count("is not valid JSON") == 1
    logging.getLogger("minisand.anything").error("after a run: %s", "no last resort")
    try:
        raise ValueError("a traceback")
    except ValueError:
        logging.getLogger("minisand").exception("logged with a traceback")
    _out, err = capsys.readouterr()
    assert err == ""


def test_home_and_its_folders_are_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "a" / "b" / "home"
    monkeypatch.setenv("MINISAND_HOME", str(home))
    assert run_cli(["config", "set", "memory", "6g"], capsys)[0] == 0
    for d in (tmp_path / "a", tmp_path / "a" / "b", home):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    Home(home).ensure()
    for d in ("profiles", "machines", "logs", "cache"):
        assert stat.S_IMODE((home / d).stat().st_mode) == 0o700, d


def test_commands_that_need_no_home_work_with_an_unusable_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`completion` and `version` need no home: an unusable one does not stop them, and they leave it alone."""
    home = tmp_path / "home"
    home.write_text("x")
    monkeypatch.setenv("MINISAND_HOME", str(home))
    code, out, _err = run_cli(["completion", "bash"], capsys)
    assert code == 0 and "_MINISAND_COMPLETE" in out
    assert home.read_text() == "x"
