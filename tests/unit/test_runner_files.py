"""Many files in one command each way (minisand.runner.files), run for real by the local runner's sh and tar in a
temporary folder: what exists is read, missing files are left out, writes are atomic, keep their modes, go in
order, and only what differs is written."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from minisand.runner import files
from minisand.runner.base import RunResult
from minisand.runner.files import FileSpec
from minisand.runner.local import LocalRunner

pytestmark = pytest.mark.allow_subprocess


def P(p: Path) -> PurePosixPath:
    return PurePosixPath(str(p))


def test_read_returns_the_files_that_exist(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("A\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"\x00\xffbinary")
    (tmp_path / "link").symlink_to("a")
    got = files.read_files(LocalRunner(), [P(tmp_path / "a"), P(tmp_path / "missing"), P(tmp_path / "d" / "b"),
                                           P(tmp_path / "link")])
    assert got == {P(tmp_path / "a"): b"A\n", P(tmp_path / "d" / "b"): b"\x00\xffbinary",
                   P(tmp_path / "link"): b"A\n"}
    assert files.read_files(LocalRunner(), [P(tmp_path / "missing")]) == {}


def test_write_creates_folders_keeps_modes_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    want = {P(tmp_path / "etc" / "hosts"): FileSpec(b"127.0.0.1 localhost\n"),
            P(tmp_path / "secret" / "kubeadm.yaml"): FileSpec(b"token: x\n", 0o600),
            P(tmp_path / "a b" / "it's"): FileSpec(b"odd names\n", 0o755)}
    files.write_files(LocalRunner(), want, staging_dir=P(staging))
    for path, spec in want.items():
        assert Path(path).read_bytes() == spec.data
        assert Path(path).stat().st_mode & 0o777 == spec.mode
    assert os.listdir(staging) == []
    assert sorted(os.listdir(tmp_path / "etc")) == ["hosts"]


def test_sync_writes_only_what_differs(tmp_path: Path) -> None:
    (tmp_path / "same").write_text("same\n")
    (tmp_path / "old").write_text("old\n")
    want = {P(tmp_path / "same"): FileSpec(b"same\n"), P(tmp_path / "old"): FileSpec(b"new\n"),
            P(tmp_path / "new"): FileSpec(b"new\n")}
    changed = files.sync_files(LocalRunner(), want, staging_dir=P(tmp_path))
    assert changed == [P(tmp_path / "old"), P(tmp_path / "new")]
    assert (tmp_path / "old").read_text() == "new\n" and (tmp_path / "new").read_text() == "new\n"
    assert files.sync_files(LocalRunner(), want, staging_dir=P(tmp_path)) == []


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: list[str], **_kw: object) -> RunResult:
        self.calls.append(argv)
        return RunResult(tuple(argv), 0, b"", b"", 0.0)


def test_scripts_are_constants_and_paths_are_parameters() -> None:
    rec = _Recorder()
    files.write_files(rec, {PurePosixPath("/etc/$(reboot)"): FileSpec(b"x")})  # type: ignore[arg-type]
    files.read_files(rec, [PurePosixPath("/etc/x;rm -rf y")])  # type: ignore[arg-type]
    write, read = rec.calls
    assert write[:2] == ["sh", "-c"] and "$(reboot)" not in write[2] and write[-2:] == ["0", "/etc/$(reboot)"]
    assert read[:2] == ["sh", "-c"] and ";rm" not in read[2] and read[-1] == "/etc/x;rm -rf y"
    assert files.read_files(rec, []) == {} and len(rec.calls) == 2  # type: ignore[arg-type]
