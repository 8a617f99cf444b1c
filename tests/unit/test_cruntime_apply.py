"""apply(): validate first, write hosts.toml without restarting, restart only when config.toml's text changed,
roll back a failed restart; pull errors name the endpoints tried.

FakeGuest is the fake at the true external boundary: the machine behind the CommandRunner (its files, its
containerd). It records every command so tests can assert what did and did not happen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import pytest

from minisand.config.model import MirrorConfig
from minisand.cruntime.apply import Tools, apply, detect_config_version
from minisand.cruntime.config import ContainerdSettings
from minisand.cruntime.plan import ContainerdPlan, build_plan
from minisand.cruntime.pull import Crictl, guest_image_probe, pull_image
from minisand.errors import ExitCode, MinisandError
from minisand.images.sources import choose_repository
from minisand.runner.base import RunResult
from minisand.runner.files import FileSpec, pack, parse_tar

CONFIG = "/etc/containerd/config.toml"
CERTS = "/etc/containerd/certs.d"
SETTINGS = ContainerdSettings(sandbox_image="registry.k8s.io/pause:3.10.2")


@dataclass
class FakeGuest:
    files: dict[str, str] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    refuse_config_containing: str | None = None  # containerd's `config dump` rejects such a file
    restarts_fail: int = 0  # how many of the next restarts leave containerd down
    version: str = "containerd github.com/containerd/containerd/v2 2.1.9+unknown"
    pullable: set[str] = field(default_factory=set)
    containerd_up: bool = True
    restarts: int = 0

    @property
    def where(self) -> str:
        return "the fake guest"

    def _result(self, argv: Sequence[str], code: int, out: str = "", err: str = "") -> RunResult:
        return RunResult(tuple(argv), code, out.encode(), err.encode(), 0.0)

    def run(self, argv: Sequence[str], *, sudo: bool = False, input: bytes | None = None,
            timeout: float | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> RunResult:
        argv = list(argv)
        self.commands.append(argv)
        if argv[:2] == ["sh", "-c"]:
            return self._script(argv, input or b"")
        if argv[:2] == ["test", "-f"]:
            return self._result(argv, 0 if argv[2] in self.files else 1)
        if argv[0] == "rm":
            self.files.pop(argv[-1], None)
            return self._result(argv, 0)
        if argv[0] == "rmdir":
            return self._result(argv, 0)
        if argv[0] == "containerd" and argv[1:2] == ["--version"]:
            return self._result(argv, 0, self.version)
        if argv[0] == "containerd" and argv[-2:] == ["config", "dump"]:
            text = self.files[argv[2]]
            if self.refuse_config_containing and self.refuse_config_containing in text:
                return self._result(argv, 1, err="containerd: toml: cannot decode TOML string into bool")
            return self._result(argv, 0, text)
        if argv[:2] == ["systemctl", "restart"]:
            self.restarts += 1
            self.containerd_up = self.restarts_fail == 0
            self.restarts_fail = max(0, self.restarts_fail - 1)
            return self._result(argv, 0)
        if argv[0] == "ctr":
            return self._result(argv, 0 if self.containerd_up else 1,
                                err="" if self.containerd_up else "connection refused")
        if argv[0] == "crictl":
            image = argv[-1]
            if image in self.pullable:
                return self._result(argv, 0, "Image is up to date for sha256:" + "a" * 64)
            return self._result(argv, 1, err='E1123 PullImage failed err="rpc error: code = Unknown desc = failed '
                                               'to resolve reference: dial tcp 127.0.0.1:5001: connection refused"')
        raise AssertionError(f"unexpected command {argv}")

    def _script(self, argv: list[str], data: bytes) -> RunResult:
        """minisand's constant scripts (minisand.runner.files, the validation), as the machine's sh runs them."""
        name, args = argv[3], argv[4:]
        if name == "minisand-read":
            present = {PurePosixPath(p): FileSpec(self.files[p].encode()) for p in args if p in self.files}
            return RunResult(tuple(argv), 0, pack([(str(p).lstrip("/"), f) for p, f in present.items()]), b"", 0.0)
        if name == "minisand-write":
            staged = parse_tar(data)
            for n, dest in zip(args[1::2], args[2::2], strict=True):
                self.files[dest] = staged[PurePosixPath("/" + n)].decode()
                self.writes.append(dest)
            return self._result(argv, 0)
        if name == "minisand-validate":
            check, binary = args
            assert binary == "containerd"
            self.files[check] = data.decode()
            result = self.run([binary, "--config", check, "config", "dump"])
            self.files.pop(check, None)
            return result
        raise AssertionError(f"unexpected script {name}")

    def stream(self, argv: Sequence[str], *, sudo: bool = False, stdin: BinaryIO | None = None,
               stdout: BinaryIO, stderr: BinaryIO, timeout: float | None = None) -> int:
        raise AssertionError("stream is not used")

    def write_file(self, dest: PurePosixPath, data: bytes, *, mode: int = 0o644, sudo: bool = True) -> None:
        self.files[str(dest)] = data.decode()
        self.writes.append(str(dest))

    def read_file(self, path: PurePosixPath, *, sudo: bool = True) -> bytes:
        return self.files[str(path)].encode()

    def close(self) -> None:
        return None


def restart(runner: FakeGuest) -> None:  # the guest's systemd, through the runner
    runner.run(["systemctl", "restart", "containerd"], sudo=True)


def plan_with(*mirrors: str, settings: ContainerdSettings = SETTINGS) -> ContainerdPlan:
    return build_plan(settings, MirrorConfig(registry_mirrors=mirrors))


def fast_apply(guest: FakeGuest, plan: ContainerdPlan):  # type: ignore[no-untyped-def]
    return apply(guest, plan, restart=restart, ready_timeout=0.0)  # type: ignore[arg-type]


def test_first_apply_validates_writes_everything_and_restarts_once() -> None:
    guest = FakeGuest(files={CONFIG: "version = 3\n# the ISO's default\n"})
    plan = plan_with("http://127.0.0.1:5001")
    result = fast_apply(guest, plan)
    assert result.config_changed and result.restarted and result.hosts_written == ("docker.io",)
    assert guest.files[CONFIG] == plan.config_text
    assert guest.files[f"{CERTS}/docker.io/hosts.toml"] == plan.hosts_text["docker.io"]
    assert guest.files[f"{CONFIG}.minisand-prev"] == "version = 3\n# the ISO's default\n"
    assert guest.files[f"{CERTS}/.minisand-managed"] == '["docker.io"]\n'
    assert guest.restarts == 1
    dump = next(c for c in guest.commands if c[-2:] == ["config", "dump"])
    assert dump[2] == f"{CONFIG}.minisand-check" and dump[2] not in guest.files  # checked, then removed
    assert guest.commands.index(dump) < guest.commands.index(["systemctl", "restart", "containerd"])
    # read everything, validate, write everything, restart, check: five commands
    assert [c[3] if c[0] == "sh" else c[0] for c in guest.commands] == [
        "minisand-read", "minisand-validate", "containerd", "minisand-write", "systemctl", "ctr"]


def test_same_plan_again_changes_nothing_and_does_not_restart() -> None:
    guest = FakeGuest()
    plan = plan_with("http://127.0.0.1:5001")
    fast_apply(guest, plan)
    writes_before, commands_before = len(guest.writes), len(guest.commands)
    result = fast_apply(guest, plan)
    assert not result.config_changed and not result.restarted and result.hosts_written == ()
    assert guest.restarts == 1
    assert guest.writes[writes_before:] == []
    assert [c[3] for c in guest.commands[commands_before:]] == ["minisand-read"]  # one command, no validation


def test_changed_mirrors_rewrite_hosts_toml_without_a_restart() -> None:
    guest = FakeGuest()
    fast_apply(guest, plan_with("http://127.0.0.1:5001"))
    result = fast_apply(guest, plan_with("http://127.0.0.1:5002", "http://127.0.0.1:5001"))
    assert result.hosts_written == ("docker.io",) and not result.restarted
    assert guest.restarts == 1
    assert "5002" in guest.files[f"{CERTS}/docker.io/hosts.toml"]


def test_stale_entries_minisand_wrote_are_removed_and_others_are_kept() -> None:
    users_own = f"{CERTS}/ghcr.io/hosts.toml"
    guest = FakeGuest(files={users_own: 'server = "https://ghcr.io"\n'})
    fast_apply(guest, plan_with("http://127.0.0.1:5001", "quay.io=http://127.0.0.1:5003"))
    result = fast_apply(guest, plan_with("quay.io=http://127.0.0.1:5003"))
    assert result.hosts_removed == ("docker.io",)
    assert f"{CERTS}/docker.io/hosts.toml" not in guest.files
    assert f"{CERTS}/quay.io/hosts.toml" in guest.files
    assert users_own in guest.files
    assert guest.files[f"{CERTS}/.minisand-managed"] == '["quay.io"]\n'


def test_a_manifest_entry_with_a_path_is_never_used_for_deletion() -> None:
    guest = FakeGuest(files={f"{CERTS}/.minisand-managed": '["../../etc", "docker.io"]'})
    fast_apply(guest, plan_with())
    removed = [c[-1] for c in guest.commands if c[0] == "rm" and not c[-1].endswith(".minisand-check")]
    assert removed == [f"{CERTS}/docker.io/hosts.toml"]


def test_refused_config_raises_before_anything_changes() -> None:
    before = {CONFIG: "version = 3\n", f"{CERTS}/docker.io/hosts.toml": "old\n"}
    guest = FakeGuest(files=dict(before), refuse_config_containing="registry.k8s.io/pause")
    with pytest.raises(MinisandError) as err:
        fast_apply(guest, plan_with("http://127.0.0.1:5001"))
    assert err.value.code == ExitCode.RUNTIME_ERROR
    assert "refuses the new config" in err.value.message and "cannot decode" in err.value.message
    assert guest.files == before
    assert guest.restarts == 0


def test_failed_restart_restores_the_previous_config() -> None:
    old = "version = 3\n# previous\n"
    guest = FakeGuest(files={CONFIG: old}, restarts_fail=1)
    with pytest.raises(MinisandError) as err:
        fast_apply(guest, plan_with())
    assert err.value.code == ExitCode.RUNTIME_ERROR
    assert "previous config was restored" in err.value.message
    assert guest.files[CONFIG] == old
    assert guest.restarts == 2 and guest.containerd_up


def test_failed_restart_and_failed_rollback_say_both() -> None:
    guest = FakeGuest(files={CONFIG: "version = 3\n"}, restarts_fail=2)
    with pytest.raises(MinisandError) as err:
        fast_apply(guest, plan_with())
    assert "again after restoring" in err.value.message


def test_detect_config_version_runs_containerd_version() -> None:
    assert detect_config_version(FakeGuest()) == 3  # type: ignore[arg-type]
    old = FakeGuest(version="containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1")
    assert detect_config_version(old, Tools()) == 2  # type: ignore[arg-type]


def test_pull_failure_names_every_endpoint_tried() -> None:
    guest = FakeGuest()
    plan = plan_with("http://127.0.0.1:5001", "http://127.0.0.1:5002")
    with pytest.raises(MinisandError) as err:
        pull_image(guest, "busybox", hosts=plan.hosts, crictl=Crictl(endpoint="/run/c.sock"))  # type: ignore[arg-type]
    message = err.value.message
    assert err.value.code == ExitCode.DOWNLOAD_ERROR
    assert "docker.io/library/busybox:latest" in message
    assert "http://127.0.0.1:5001, http://127.0.0.1:5002, https://registry-1.docker.io" in message
    assert "connection refused" in message and "rpc error" not in message
    assert guest.commands[-1][:5] == ["crictl", "--runtime-endpoint", "unix:///run/c.sock", "--image-endpoint",
                                      "unix:///run/c.sock"]


def test_guest_probe_drives_choose_repository() -> None:
    guest = FakeGuest(pullable={"registry.k8s.io/pause:3.10.2"})
    probe = guest_image_probe(guest, "3.10.2")  # type: ignore[arg-type]
    repo, warning = choose_repository(["registry.cn-hangzhou.aliyuncs.com/google_containers", "registry.k8s.io"],
                                      probe)
    assert (repo, warning) == ("registry.k8s.io", None)
    pulled = [c[-1] for c in guest.commands if c[0] == "crictl"]
    assert pulled == ["registry.cn-hangzhou.aliyuncs.com/google_containers/pause:3.10.2",
                      "registry.k8s.io/pause:3.10.2"]
    assert pull_image(guest, "registry.k8s.io/pause:3.10.2") == "sha256:" + "a" * 64  # type: ignore[arg-type]


@pytest.mark.allow_subprocess
def test_validation_by_this_hosts_containerd_and_a_restart_systemd_confirms(tmp_path: Path) -> None:
    fake = tmp_path / "containerd"  # stands in for this host's containerd: refuses what the fake guest refuses
    fake.write_text('#!/bin/sh\ngrep -q "registry.k8s.io/pause" "$2" && { echo "refused here" >&2; exit 1; }\n'
                    'exit 0\n')
    fake.chmod(0o755)
    tools = Tools(host_containerd=str(fake), restart_confirms_ready=True)
    guest = FakeGuest(files={CONFIG: "version = 3\n"})
    with pytest.raises(MinisandError) as err:
        apply(guest, plan_with(), restart=restart, tools=tools)  # type: ignore[arg-type]
    assert "refused here" in err.value.message and guest.restarts == 0
    assert not any(c[:2] == ["sh", "-c"] and c[3] == "minisand-validate" for c in guest.commands)
    ok = plan_with(settings=ContainerdSettings(sandbox_image="example.org/pause:1"))
    guest = FakeGuest(files={CONFIG: "version = 3\n"})
    assert apply(guest, ok, restart=restart, tools=tools).restarted  # type: ignore[arg-type]
    assert [c[3] if c[0] == "sh" else c[0] for c in guest.commands] == ["minisand-read", "minisand-write",
                                                                         "systemctl"]  # no `ctr version`


@pytest.mark.allow_subprocess
def test_the_validate_script_makes_the_config_folder_on_a_host_that_has_none(tmp_path: Path) -> None:
    """The none driver's host may have no /etc/containerd yet: the check file's folder is made, then removed file."""
    import subprocess

    from minisand.cruntime.apply import _VALIDATE

    check = tmp_path / "etc" / "containerd" / "config.toml.minisand-check"
    seen = tmp_path / "seen"
    fake = tmp_path / "containerd"
    fake.write_text(f'#!/bin/sh\ncp -- "$2" {seen}\n')  # stands in for `containerd --config F config dump`
    fake.chmod(0o755)
    done = subprocess.run(["sh", "-c", _VALIDATE, "minisand-validate", str(check), str(fake)], input=b"version = 3\n",
                          capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert seen.read_bytes() == b"version = 3\n" and not check.exists() and check.parent.is_dir()
