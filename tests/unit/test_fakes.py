"""The shared FakeRunner keeps the CommandRunner contract, and its built-in file commands answer as the real
ones do (checked against LocalRunner on a temporary folder)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from minisand.runner.base import CommandError
from minisand.runner.local import LocalRunner
from tests.unit.fakes import FakeRunner, Reply

BINARY = bytes(range(256))


def test_the_contract() -> None:
    runner = FakeRunner(where="m1").on("false", reply=1).on("echo", reply=lambda argv: " ".join(argv[1:]) + "\n")
    assert runner.run(["echo", "a", "b"]).out == "a b\n"
    assert runner.run(["false"], check=False).exit_code == 1
    with pytest.raises(CommandError) as exc:
        runner.run(["false"], sudo=True)
    assert "on m1 with exit code 1" in exc.value.message
    with pytest.raises(TypeError):
        runner.run(["echo", 3])  # type: ignore[list-item]
    with pytest.raises(AssertionError, match="nobody scripted"):
        runner.run(["nosuch"])
    assert [c.sudo for c in runner.calls] == [False, False, True, False]  # the refused one is recorded too


def test_files_keep_their_bytes_and_mode() -> None:
    runner = FakeRunner()
    runner.write_file(PurePosixPath("/etc/x.bin"), BINARY, mode=0o600)
    assert runner.read_file(PurePosixPath("/etc/x.bin")) == BINARY
    assert runner.modes["/etc/x.bin"] == 0o600 and runner.writes == ["/etc/x.bin"]
    with pytest.raises(CommandError):
        runner.read_file(PurePosixPath("/etc/missing"))
    runner.on("cat", reply=Reply(0, "scripted\n"))  # a script wins over the built-in
    assert runner.read_file(PurePosixPath("/etc/x.bin")) == b"scripted\n"


@pytest.mark.allow_subprocess
def test_builtins_answer_as_the_real_commands(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").write_bytes(BINARY)
    fake = FakeRunner({str(tmp_path / "dir" / "f"): BINARY})
    real = LocalRunner()
    cases = [["test", "-e", str(tmp_path / "dir" / "f")], ["test", "-e", str(tmp_path / "dir")],
             ["test", "-f", str(tmp_path / "nope")], ["cat", "--", str(tmp_path / "dir" / "f")],
             ["cat", "--", str(tmp_path / "nope")], ["rm", "-f", "--", str(tmp_path / "dir" / "f")],
             ["test", "-e", str(tmp_path / "dir" / "f")], ["rm", "-f", "--", str(tmp_path / "nope")]]
    for argv in cases:
        want = real.run(argv, check=False)
        got = fake.run(argv, check=False)
        assert (got.exit_code, got.stdout) == (want.exit_code, want.stdout), argv
