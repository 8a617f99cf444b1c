"""Issue 11, item 5: global options are not taken out of kubectl's or ssh's arguments; logs --length; corrupt
profiles in `profile list`; `delete --all` past stray entries, then --purge; symlinked kubeconfig; ssh keys of
every type and no host key accepted outside `start`; exact PID markers; the unknown-command hint."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import paramiko
import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from minisand import procs
from minisand.bootstrap.kubeconfig import merge, remove_context
from minisand.cli.app import G, app
from minisand.cli.argv import hoist_globals
from minisand.config.model import DriverOptions
from minisand.drivers.base import MachineRecord, MachineSpec, MachineState
from minisand.drivers.ssh.driver import SSHDriver
from minisand.errors import ExitCode, MinisandError
from minisand.runner.ssh import SSHRunner, SSHTarget, load_private_key
from tests.unit.clihelp import assert_unchanged, one_line_error, run_cli, snapshot
from tests.unit.sshdouble import ssh_double

ROOT = typer.main.get_command(app)


def _profile(home: Path, name: str, **fields: object) -> None:
    d = home / "profiles" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"name": name, "driver": "qemu", **fields}))


# -- global options -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["kubectl", "logs", "-p", "pod"], ["kubectl", "get", "pods", "-v"],
                                  ["kubectl", "logs", "--profile=x"], ["kubectl", "logs", "-ppod"],
                                  ["ssh", "ls", "-p", "x"], ["ssh", "-n", "dev", "ls", "--verbose"]])
def test_globals_among_a_tools_arguments_are_refused(home: Path, capsys: pytest.CaptureFixture[str],
                                                      argv: list[str]) -> None:
    _profile(home, "minisand")
    before = snapshot(home)
    G.verbose, G.profile = False, "minisand"
    code, _out, err = run_cli(argv, capsys)
    assert code == ExitCode.USAGE, err
    assert "after `--`" in one_line_error(err)
    assert (G.verbose, G.profile) == (False, "minisand")  # nothing was switched
    assert_unchanged(home, before)


@pytest.mark.parametrize(("argv", "want"), [
    (["kubectl", "--", "logs", "-p", "pod"], ["kubectl", "--", "logs", "-p", "pod"]),
    (["kubectl", "get", "pods", "--", "-v"], ["kubectl", "get", "pods", "--", "-v"]),
    (["-p", "dev", "kubectl", "logs", "pod"], ["-p", "dev", "kubectl", "logs", "pod"]),
    (["kubectl", "-p", "dev", "get", "pods"], ["-p", "dev", "kubectl", "get", "pods"]),
    (["kubectl", "get", "pods", "-o", "wide"], ["kubectl", "get", "pods", "-o", "wide"]),
    (["ssh", "-n", "dev-m02", "-p", "dev", "--", "ls", "-p"], ["-p", "dev", "ssh", "-n", "dev-m02", "--", "ls", "-p"]),
    (["ssh", "--node=dev", "ls", "-la"], ["ssh", "--node=dev", "ls", "-la"]),
    (["status", "-p", "dev", "-o", "json"], ["-p", "dev", "status", "-o", "json"]),
    (["addons", "enable", "gvisor", "-v", "-p", "dev"], ["-v", "-p", "dev", "addons", "enable", "gvisor"]),
    (["start", "--ssh-user", "-v"], ["start", "--ssh-user", "-v"]),  # an option's value stays its value
    (["logs", "-n", "5", "--profile", "dev"], ["--profile", "dev", "logs", "-n", "5"]),
])
def test_where_globals_are_taken(argv: list[str], want: list[str]) -> None:
    assert hoist_globals(ROOT, argv) == want


def test_a_global_after_a_normal_command_still_works(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_cli(["status", "-p", "dev"], capsys)
    assert code == ExitCode.PROFILE_NOT_FOUND and "'dev'" in one_line_error(err)


# -- logs --length ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("length", ["-5", "0"])
def test_logs_length_must_be_positive(home: Path, capsys: pytest.CaptureFixture[str], length: str) -> None:
    _profile(home, "minisand")
    before = snapshot(home)
    code, _out, err = run_cli(["logs", "--length", length], capsys)
    assert code == ExitCode.BAD_INPUT
    assert "--length" in one_line_error(err)
    assert_unchanged(home, before)


# -- corrupt profiles -----------------------------------------------------------------------------------------
_CORRUPT = {
    "json": b"{not json",
    "array": b"[]",
    "binary": b"\xff\xfe\x00garbage",
    "unknown-key": json.dumps({"name": "unknown-key", "driver": "qemu", "bogus": 1}).encode(),
    "wrong-type": json.dumps({"name": "wrong-type", "driver": "qemu", "cpus": "two"}).encode(),
    "bad-driver": json.dumps({"name": "bad-driver", "driver": "nosuch"}).encode(),
    "other-name": json.dumps({"name": "good", "driver": "qemu"}).encode(),
    "schema": json.dumps({"name": "schema", "driver": "qemu", "schema": 99}).encode(),
}


def test_one_corrupt_profile_does_not_hide_the_others(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _profile(home, "good")
    for name, raw in _CORRUPT.items():
        (home / "profiles" / name).mkdir(parents=True)
        (home / "profiles" / name / "config.json").write_bytes(raw)
    (home / "profiles" / "dir-config" / "config.json").mkdir(parents=True)
    (home / "profiles" / "Not_A_Name").mkdir()
    (home / "profiles" / "stray-file").write_text("x")
    before = snapshot(home)
    code, out, err = run_cli(["profile", "list", "-o", "json"], capsys)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows.pop("good")["status"] == "Nonexistent"  # a qemu profile whose machine was never created
    assert {n: r["status"] for n, r in rows.items()} == {n: "Corrupt" for n in rows}
    assert set(rows) == {*_CORRUPT, "dir-config", "Not_A_Name", "stray-file"}
    code, out, err = run_cli(["profile", "list"], capsys)
    assert code == 0 and out.count("Corrupt") == len(rows)
    for name in [*_CORRUPT, "dir-config", "stray-file"]:
        code, _out, err = run_cli(["-p", name, "status"], capsys)
        assert code == ExitCode.PROFILE_CORRUPT, (name, err)
        one_line_error(err)
    assert_unchanged(home, before)


# -- delete --all ---------------------------------------------------------------------------------------------
def test_delete_all_passes_stray_entries_and_purges(tmp_path: Path, home: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _profile(home, "dev")
    (home / "profiles" / "broken").mkdir()
    (home / "profiles" / "broken" / "config.json").write_text("{")
    (home / "profiles" / "Weird Name").mkdir()
    for d in ("dev", "orphan", "stray folder", "UPPER"):
        (home / "machines" / d).mkdir(parents=True)
    (home / "machines" / "orphan" / "machine.json").write_text(json.dumps({"machine": "orphan", "driver": "qemu"}))
    (home / "machines" / "a-file").write_text("x")
    (home / "machines" / "bad-record").mkdir()
    (home / "machines" / "bad-record" / "machine.json").write_text("[1, 2")
    os.symlink(tmp_path, home / "machines" / "link")
    (home / "cache").mkdir()
    (home / "cache" / "big.iso").write_text("iso")
    code, _out, err = run_cli(["delete", "--all", "--purge"], capsys)
    assert code == 0, err
    assert "Traceback" not in err and f"Purged {home}" in err
    assert not home.exists()
    assert tmp_path.is_dir()


def test_purge_keeps_what_minisand_did_not_create(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """MINISAND_HOME=~ would otherwise remove the user's home."""
    _profile(home, "dev")
    (home / "notes.txt").write_text("mine")
    code, _out, err = run_cli(["delete", "--all", "--purge"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    assert "kept" in err


# -- kubeconfig -----------------------------------------------------------------------------------------------
def _profile_kubeconfig(name: str) -> dict[str, object]:
    return {"clusters": [{"name": name, "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": name, "user": {"token": "t"}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}]}


def test_a_symlinked_kubeconfig_stays_a_link(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "kubeconfig"
    target.parent.mkdir()
    target.write_text("apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n")
    target.chmod(0o644)
    link = tmp_path / ".kube" / "config"
    link.parent.mkdir()
    os.symlink(target, link)
    merge(_profile_kubeconfig("dev"), "dev", link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "name: dev" in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert remove_context("dev", link)
    assert link.is_symlink() and "name: dev" not in target.read_text()


def test_a_dangling_kubeconfig_link_creates_its_target(tmp_path: Path) -> None:
    target = tmp_path / "kube" / "config"
    link = tmp_path / "config"
    os.symlink(target, link)
    merge(_profile_kubeconfig("dev"), "dev", link)
    assert link.is_symlink() and target.is_file()


def test_a_kubeconfig_that_is_not_a_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    os.symlink(fifo, link)
    for path in (fifo, link, tmp_path):
        with pytest.raises(MinisandError) as exc:
            merge(_profile_kubeconfig("dev"), "dev", path)
        assert exc.value.code == ExitCode.KUBERNETES_ERROR
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink()


# -- ssh keys and host keys -----------------------------------------------------------------------------------
def _write_key(path: Path, kind: str) -> str:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if kind.startswith("rsa"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ecdsa":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if kind == "rsa-pem" else \
        serialization.PrivateFormat.OpenSSH
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    path.chmod(0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return pub.decode()


@pytest.mark.parametrize("kind", ["rsa-pem", "rsa-openssh", "ecdsa", "ed25519"])
def test_every_common_key_type_connects(tmp_path: Path, kind: str) -> None:
    key = tmp_path / "id"
    pub = _write_key(key, kind)
    with ssh_double(pub) as sshd:
        r = SSHRunner(SSHTarget("127.0.0.1", sshd.port, "root", key, sshd.host_key_line), connect_timeout=10)
        try:
            assert r.run(["echo", kind]).out == f"{kind}\n"
        finally:
            r.close()


@pytest.mark.parametrize("content", [b"", b"not a key\n", b"-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n"])
def test_an_unreadable_key_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    key = tmp_path / "id"
    key.write_bytes(content)
    with pytest.raises(MinisandError) as exc:
        load_private_key(key, code=ExitCode.BAD_INPUT)
    assert exc.value.code == ExitCode.BAD_INPUT and "RSA, ECDSA or ed25519" in exc.value.hint


def test_a_passphrase_key_is_refused_clearly(tmp_path: Path) -> None:
    key = tmp_path / "id"
    k = ed25519.Ed25519PrivateKey.generate()
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(MinisandError) as exc:
        load_private_key(key)
    assert "passphrase" in exc.value.message


def _ssh_spec(tmp_path: Path, port: int, key: Path) -> MachineSpec:
    opts = DriverOptions(ssh_ip="127.0.0.1", ssh_port=port, ssh_key=str(key), ssh_user="root")
    return MachineSpec(machine="dev", profile="dev", machine_dir=tmp_path / "m", cache_dir=tmp_path / "c",
                       cpus=1, memory_mb=1024, disk_mb=4096, hostname="dev", ssh_pubkey="", ssh_key_path=key,
                       options=opts)


def test_ssh_driver_state_never_accepts_an_unpinned_host_key(tmp_path: Path) -> None:
    key = tmp_path / "id"
    pub = _write_key(key, "rsa-openssh")
    with ssh_double(pub) as sshd:
        drv = SSHDriver(_ssh_spec(tmp_path, sshd.port, key))
        MachineRecord(machine="dev", driver="ssh", profile="dev", ssh_host="127.0.0.1", ssh_port=sshd.port
                      ).save(drv.dir)
        assert drv.state() == MachineState.STOPPED  # created, never contacted: not connected to
        assert sshd.seen.commands == []
        drv.start()  # start pins the key (trust on first use, announced) ...
        assert MachineRecord.load(drv.dir).host_key == sshd.host_key_line  # type: ignore[union-attr]
        assert drv.state() == MachineState.RUNNING  # ... and later connections check it
    other = paramiko.ECDSAKey.generate()
    with ssh_double(pub, host_key=other) as impostor:
        drv = SSHDriver(_ssh_spec(tmp_path, impostor.port, key))
        assert drv.state() == MachineState.ERROR
        assert impostor.seen.commands == []


def test_a_runner_without_a_pinned_key_or_a_pinning_caller_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MinisandError) as exc:
        SSHRunner(SSHTarget("127.0.0.1", 22, "root", tmp_path / "id", None))
    assert exc.value.code == ExitCode.SSH_ERROR


# -- PID markers ----------------------------------------------------------------------------------------------
def test_pid_markers_match_whole_words() -> None:
    qemu = ["/usr/bin/qemu-system-x86_64", "-name", "minisand-dev-m02,process=minisand-dev-m02"]
    assert procs.mentions(qemu, "minisand-dev-m02")
    assert not procs.mentions(qemu, "minisand-dev")
    assert procs.mentions(["/usr/bin/qemu-system-x86_64", "-name", "minisand-dev,process=minisand-dev"],
                          "minisand-dev")
    kubelet = ["/opt/bin/v1.36.4/kubelet", "--config=/var/lib/kubelet/config.yaml"]
    assert procs.mentions(kubelet, "kubelet")
    assert not procs.mentions(["/usr/bin/vim", "/var/lib/kubelet/config.yaml"], "kubelet")
    assert not procs.mentions(["/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io"], "containerd")


def test_alive_checks_the_marker_against_a_real_process() -> None:
    argv = procs.cmdline(os.getpid())
    assert procs.alive(os.getpid(), argv[0])
    assert not procs.alive(os.getpid(), argv[0][:-1])


# -- unknown commands -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "hint"), [(["frobnicate", "--help"], "minisand --help"),
                                            (["frobnicate"], "minisand --help"),
                                            (["addons", "enabel", "x"], "minisand addons --help"),
                                            (["start", "--memry", "3"], "minisand start --help")])
def test_usage_hints_name_real_commands(capsys: pytest.CaptureFixture[str], argv: list[str], hint: str) -> None:
    code, _out, err = run_cli(argv, capsys)
    assert code == ExitCode.USAGE
    line = one_line_error(err)
    assert line.endswith(f"(hint: run `{hint}`)"), line
    assert "frobnicate --help" not in line and "enabel x" not in line
