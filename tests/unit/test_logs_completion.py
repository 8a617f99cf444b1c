"""`logs --file` and `logs -f` (the follower's pieces, and a follow of a stopped profile ended by its stop event),
shell completion offered once (the `completion` command), and `--help` importing no progress library."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from minisand.cluster.context import Context
from minisand.cluster.logfollow import FileFollower, LineSink, Printer, follow
from minisand.config.model import ClusterConfig
from minisand.config.store import ProfileStore
from minisand.errors import ExitCode
from minisand.paths import Home
from tests.unit.clihelp import one_line_error, run_cli


@pytest.fixture()
def stopped(home: Path) -> Home:
    h = Home(home)
    ProfileStore(h).save(ClusterConfig(name="minisand", driver="qemu"))
    h.ensure()
    h.profile_log("minisand").write_text("".join(f"2026-01-01 INFO minisand: line {i}\n" for i in range(100)))
    return h


def test_printer_puts_a_header_where_the_source_changes() -> None:
    out = io.StringIO()
    p = Printer(out)
    p.emit("a", "1")
    p.emit("a", "2\n")
    p.emit("b", "3")
    assert out.getvalue() == "==> a <==\n1\n2\n\n==> b <==\n3\n"


def test_line_sink_passes_whole_lines_and_keeps_a_partial_one() -> None:
    out = io.StringIO()
    sink = LineSink(Printer(out), "journal")
    sink.write(b"one\ntw")
    sink.write(b"o\nthr")
    assert out.getvalue() == "==> journal <==\none\ntwo\n"


def test_file_follower_backlog_then_new_lines_and_truncation(tmp_path: Path) -> None:
    f = tmp_path / "x.log"
    f.write_text("".join(f"{i}\n" for i in range(20)))
    ff = FileFollower(f, "x", backlog=3)
    assert ff.poll() == ["17", "18", "19"]
    assert ff.poll() == []
    with f.open("a") as w:
        w.write("20\n21")
    assert ff.poll() == ["20"]  # 21 has no end yet
    with f.open("a") as w:
        w.write("\n")
    assert ff.poll() == ["21"]
    f.write_text("new\n")  # truncated (rotated): read again from the start
    assert ff.poll() == ["new"]
    assert FileFollower(tmp_path / "missing", "m", 3).poll() == []


def test_follow_of_a_stopped_profile_prints_new_lines_until_stopped(stopped: Home) -> None:
    out = io.StringIO()
    stop = threading.Event()
    t = threading.Thread(target=follow, args=(Context(stopped, "minisand"), out), kwargs={"length": 5, "stop": stop})
    t.start()
    time.sleep(0.3)
    with stopped.profile_log("minisand").open("a") as w:
        w.write("2026-01-01 INFO minisand: appended\n")
    deadline = time.monotonic() + 5
    while "appended" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    t.join(5)
    assert not t.is_alive()
    text = out.getvalue()
    assert text.startswith("==> minisand log <==\n") and "line 95" in text and "line 94" not in text
    assert text.rstrip().endswith("appended")


def test_logs_file_writes_the_logs_there(stopped: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "logs.txt"
    code, out, err = run_cli(["logs", "--file", str(dest), "-n", "3"], capsys)
    assert code == 0, err
    assert out == "" and "line 99" in dest.read_text() and "line 96" not in dest.read_text()


@pytest.mark.parametrize(("argv", "code", "words"), [
    (["logs", "--file", "DIR"], ExitCode.BAD_INPUT, "is a directory"),
    (["logs", "--file", "DIR/no/such/x.txt"], ExitCode.BAD_INPUT, "not a directory"),
    (["logs", "-f", "--commands"], ExitCode.BAD_INPUT, "--follow"),
    (["logs", "-p", "ghost", "--file", "DIR/x.txt"], ExitCode.PROFILE_NOT_FOUND, "ghost"),
])
def test_logs_bad_input(stopped: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                        code: ExitCode, words: str) -> None:
    argv = [a.replace("DIR", str(tmp_path)) for a in argv]
    got, _out, err = run_cli(argv, capsys)
    assert got == code
    assert words in one_line_error(err)
    assert not (tmp_path / "x.txt").exists()


# -- completion -----------------------------------------------------------------------------------------------------
def test_completion_is_offered_once(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run_cli(["--help"], capsys)
    assert code == 0 and "--install-completion" not in out and "--show-completion" not in out
    assert "completion" in out
    assert run_cli(["--install-completion"], capsys)[0] == ExitCode.USAGE


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell", "pwsh"])
def test_completion_scripts(home: Path, capsys: pytest.CaptureFixture[str], shell: str) -> None:
    code, out, _err = run_cli(["completion", shell], capsys)
    assert code == 0 and "_MINISAND_COMPLETE" in out


def test_completion_of_an_unknown_shell(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_cli(["completion", "tcsh"], capsys)
    assert code == ExitCode.BAD_INPUT and "bash, zsh, fish or powershell" in one_line_error(err)


@pytest.mark.allow_subprocess
@pytest.mark.parametrize(("env", "expected"), [
    ({"_MINISAND_COMPLETE": "complete_bash", "COMP_WORDS": "minisand ima", "COMP_CWORD": "1"}, "image"),
    ({"_MINISAND_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "minisand image l"}, "load"),
    ({"_MINISAND_COMPLETE": "complete_fish", "_TYPER_COMPLETE_ARGS": "minisand image l",
      "_TYPER_COMPLETE_FISH_ACTION": "get-args"}, "ls"),
])
def test_the_scripts_callback_answers(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    """What the printed script runs on <TAB>: minisand itself with _MINISAND_COMPLETE set."""
    proc = subprocess.run([sys.executable, "-m", "minisand"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "MINISAND_HOME": str(tmp_path), **env}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout


@pytest.mark.allow_subprocess
def test_help_imports_no_progress_library(tmp_path: Path) -> None:
    probe = ("import sys; from minisand.cli.app import run; rc = run(['--help']); "
             "print(repr((rc, sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'kubernetes', "
             "'paramiko')))), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "MINISAND_HOME": str(tmp_path)})
    assert proc.stderr.strip().splitlines()[-1] == "(0, [])"
