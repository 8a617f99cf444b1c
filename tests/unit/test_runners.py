"""The command runners: local exec, the per-profile command log, and SSH (against an in-process sshd double,
tests/unit/sshdouble.py) — exit codes passed through, stdout/stderr kept apart, stdin forwarded, argv quoting
that survives the remote shell, the pinned host key enforced."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path, PurePosixPath

import paramiko
import pytest

from minisand.errors import ExitCode, MinisandError
from minisand.keys import ensure_client_key
from minisand.runner.base import CommandError
from minisand.runner.local import LocalRunner
from minisand.runner.logged import LoggedRunner
from minisand.runner.ssh import SSHRunner, SSHTarget
from tests.unit.fakes import FakeRunner, Reply
from tests.unit.sshdouble import ssh_double

TRICKY = ["a b", "$(touch /tmp/pwned)", "x;y", "'q'", ""]


@pytest.fixture()
def client_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "id_ed25519"
    return key, ensure_client_key(key, "unit")


# -- local ---------------------------------------------------------------------------------------------------
@pytest.mark.allow_subprocess
def test_local_run_keeps_streams_and_exit_code_apart() -> None:
    r = LocalRunner().run(["sh", "-c", "echo out; echo err >&2; exit 4"], check=False)
    assert (r.exit_code, r.out, r.err) == (4, "out\n", "err\n")
    with pytest.raises(CommandError) as exc:
        LocalRunner().run(["sh", "-c", "echo why >&2; exit 3"])
    assert exc.value.result.exit_code == 3 and "why" in exc.value.message


@pytest.mark.allow_subprocess
def test_local_argv_is_never_a_shell_string() -> None:
    assert LocalRunner().run(["printf", "%s\\n", *TRICKY]).out.splitlines() == TRICKY


@pytest.mark.allow_subprocess
def test_local_write_then_read_is_atomic_and_keeps_the_mode(tmp_path: Path) -> None:
    runner = LocalRunner()
    dest = PurePosixPath(tmp_path / "f.conf")
    runner.write_file(dest, b"one\n", mode=0o600, sudo=False)
    runner.write_file(dest, b"two\n", mode=0o600, sudo=False)
    assert runner.read_file(dest, sudo=False) == b"two\n"
    assert (Path(dest).stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.conf"]  # no temporary file left


@pytest.mark.allow_subprocess
def test_local_stream_forwards_stdin_and_returns_the_code(tmp_path: Path) -> None:
    out, err = io.BytesIO(), io.BytesIO()
    (tmp_path / "in").write_bytes(b"\x00\xffbin")
    with (tmp_path / "in").open("rb") as stdin:
        code = LocalRunner().stream(["sh", "-c", "cat; echo e >&2; exit 6"], stdin=stdin, stdout=out, stderr=err)
    assert (code, out.getvalue(), err.getvalue()) == (6, b"\x00\xffbin", b"e\n")


@pytest.mark.allow_subprocess
def test_local_missing_program_is_a_clear_error() -> None:
    with pytest.raises(MinisandError) as exc:
        LocalRunner().run(["minisand-no-such-program"])
    assert "not installed" in exc.value.message and exc.value.hint


# -- the command log ------------------------------------------------------------------------------------------
def test_every_command_is_logged_with_argv_duration_and_exit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="minisand.commands")
    inner = FakeRunner(where="the double").on("true", reply=Reply(0, seconds=0.25))
    inner.on("false", reply=Reply(1, err="boom", seconds=0.25))
    runner = LoggedRunner(inner, "m1")
    runner.run(["true", "x y"])
    with pytest.raises(CommandError):
        runner.run(["false"])
    runner.write_file(PurePosixPath("/etc/x"), b"abc", mode=0o600)
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "minisand.commands"]
    assert records[0] == {"machine": "m1", "argv": ["true", "x y"], "exit": 0, "seconds": 0.25}
    assert records[1]["exit"] == 1 and records[1]["note"] == "boom"
    assert records[2]["argv"] == ["<write>", "/etc/x", "3 bytes", "mode 0600"]
    assert inner.files == {"/etc/x": b"abc"} and inner.modes == {"/etc/x": 0o600}


# -- ssh ------------------------------------------------------------------------------------------------------
def _runner(port: int, key: Path, host_key: str | None, **kw: object) -> SSHRunner:
    return SSHRunner(SSHTarget("127.0.0.1", port, "minisand", key, host_key), **kw)  # type: ignore[arg-type]


def test_ssh_passes_exit_codes_streams_stdin_and_quoting(client_key: tuple[Path, str]) -> None:
    key, pub = client_key
    with ssh_double(pub) as sshd:
        r = _runner(sshd.port, key, sshd.host_key_line)
        try:
            failed = r.run(["fail", "3", "to", "stderr"], check=False)
            assert (failed.exit_code, failed.out, failed.err) == (3, "", "to stderr\n")
            assert r.run(["argv", *TRICKY]).out.splitlines() == TRICKY
            assert r.run(["cat"], input=b"\x00\x01 through stdin").stdout == b"\x00\x01 through stdin"
            out, err = io.BytesIO(), io.BytesIO()
            assert r.stream(["fail", "42", "streamed"], stdout=out, stderr=err) == 42
            assert err.getvalue() == b"streamed\n"
            r.run(["true"], sudo=True)
            with pytest.raises(CommandError) as exc:
                r.run(["nosuch"])
            assert exc.value.result.exit_code == 127
        finally:
            r.close()
    assert sshd.seen.sudo[-2:] == [True, False]  # user minisand: sudo -n -- only when asked


def test_ssh_prefers_aes_gcm_and_root_needs_no_sudo(client_key: tuple[Path, str]) -> None:
    key, pub = client_key
    with ssh_double(pub) as sshd:
        r = SSHRunner(SSHTarget("127.0.0.1", sshd.port, "root", key, sshd.host_key_line))
        try:
            r.run(["true"], sudo=True)
            transport = r.connect().get_transport()
            assert transport is not None and transport.local_cipher == "aes128-gcm@openssh.com"
        finally:
            r.close()
    assert sshd.seen.sudo == [False]  # as root: the command runs as it is


def test_ssh_rejects_a_host_key_that_is_not_the_pinned_one(client_key: tuple[Path, str]) -> None:
    key, pub = client_key
    other = paramiko.ECDSAKey.generate()
    with ssh_double(pub) as sshd:
        r = _runner(sshd.port, key, f"{other.get_name()} {other.get_base64()}", connect_timeout=30)
        t0 = time.monotonic()
        with pytest.raises(MinisandError) as exc:
            r.run(["true"])
        assert exc.value.code == ExitCode.HOST_KEY_MISMATCH and "not the pinned key" in exc.value.message
        assert time.monotonic() - t0 < 10  # a mismatch is not retried
    assert sshd.seen.commands == []


def test_ssh_trust_on_first_use_reports_the_key(client_key: tuple[Path, str]) -> None:
    key, pub = client_key
    learned: list[str] = []
    with ssh_double(pub) as sshd:
        r = _runner(sshd.port, key, None, on_new_host_key=learned.append)
        try:
            assert r.run(["echo", "hi"]).out == "hi\n"
        finally:
            r.close()
    assert learned == [sshd.host_key_line]


def test_ssh_unreachable_is_bounded_and_clear(client_key: tuple[Path, str]) -> None:
    key, pub = client_key
    with ssh_double(pub) as sshd:
        port, pinned = sshd.port, sshd.host_key_line  # nothing listens once the block ends
    r = _runner(port, key, pinned, connect_timeout=2)
    t0 = time.monotonic()
    with pytest.raises(MinisandError) as exc:
        r.run(["true"])
    assert exc.value.code == ExitCode.SSH_ERROR and "within 2s" in exc.value.message
    assert time.monotonic() - t0 < 10
