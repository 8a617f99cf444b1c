"""Applies a ContainerdPlan through a CommandRunner, in as few commands as it can (each costs the guest a
process start or three under emulation):

1. read config.toml, certs.d/.minisand-managed and every hosts.toml of the plan in one command;
2. validate, when config.toml's text changed: the new text goes to a temporary file that
   `containerd --config TMP config dump` must load; a refusal raises RUNTIME_ERROR before anything else changes;
3. write in one command each certs.d/<registry>/hosts.toml whose text differs and the manifest, then (when
   config.toml changed) the old config beside it and the new one; remove the hosts.toml files minisand wrote
   earlier that the plan no longer has (entries minisand did not write are never touched);
4. only when config.toml changed: restart containerd and wait for `ctr version`; on failure put the old config
   back and restart again. hosts.toml needs no restart (containerd re-reads it on every pull).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from minisand.cruntime.plan import ContainerdPlan
from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandRunner, RunResult
from minisand.runner.files import FileSpec, read_files, write_files

Restarter = Callable[[CommandRunner], None]
BACKUP_SUFFIX = ".minisand-prev"
CHECK_SUFFIX = ".minisand-check"


@dataclass(frozen=True)
class Tools:
    containerd: str = "containerd"
    ctr: str = "ctr"
    # a containerd on this host of exactly the machine's version: it validates new configs here, natively,
    # instead of a `containerd config dump` in the guest (seconds under emulation); None: in the machine
    host_containerd: str | None = None
    # the restart itself proves containerd is up (systemd waits for its READY notification): no `ctr version`
    restart_confirms_ready: bool = False


@dataclass(frozen=True)
class ApplyResult:
    config_changed: bool
    restarted: bool
    hosts_written: tuple[str, ...]
    hosts_removed: tuple[str, ...]


def systemd_restarter(unit: str = "containerd") -> Restarter:
    def restart(runner: CommandRunner) -> None:
        runner.run(["systemctl", "restart", unit], sudo=True, timeout=120)
    return restart


def last_line(result: RunResult) -> str:
    lines = (result.err.strip() or result.out.strip()).splitlines()
    return lines[-1].strip() if lines else ""


def _runtime_error(message: str, hint: str) -> MinisandError:
    return MinisandError(message, hint=hint, code=ExitCode.RUNTIME_ERROR)


# A constant script: the candidate config arrives on stdin and is checked by the machine's containerd at a
# temporary path ($1, beside the config: its folder is made on a host that has none yet), which is removed whatever
# the verdict; $2 is the containerd binary.
_VALIDATE = ('mkdir -p -- "${1%/*}" && cat > "$1" || exit 1; "$2" --config "$1" config dump > /dev/null; rc=$?; '
             'rm -f -- "$1"; exit $rc')


def validate_config(runner: CommandRunner, plan: ContainerdPlan, tools: Tools = Tools()) -> None:
    """Has the machine's containerd (or one of the same version on this host) load the new config without
    installing it (one command)."""
    if tools.host_containerd is not None:
        result = _validate_here(tools.host_containerd, plan.config_text)
    else:
        check = plan.config_file.with_name(plan.config_file.name + CHECK_SUFFIX)
        result = runner.run(["sh", "-c", _VALIDATE, "minisand-validate", str(check), tools.containerd], sudo=True,
                            input=plan.config_text.encode(), check=False, timeout=60)
    if not result.ok:
        detail = last_line(result) or f"exit code {result.exit_code}"
        raise _runtime_error(f"containerd on {runner.where} refuses the new config ({detail}); nothing was changed",
                             "the previous containerd configuration is still in place; `minisand logs` has details")


def _validate_here(containerd: str, text: str) -> RunResult:
    import tempfile
    from pathlib import Path

    from minisand.runner.local import LocalRunner

    with tempfile.TemporaryDirectory(prefix="minisand-validate-") as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(text)
        return LocalRunner().run([containerd, "--config", str(path), "config", "dump"], check=False, timeout=60)


def _managed(text: bytes | None) -> list[str]:
    try:
        names = json.loads(text) if text else []
    except ValueError:
        return []
    # Names come back from the machine: accept only plain registry names before deleting anything by them.
    return [n for n in names if isinstance(n, str) and n and "/" not in n and n not in (".", "..")]


def _hosts_changes(plan: ContainerdPlan, current: dict[PurePosixPath, bytes]
                   ) -> tuple[dict[PurePosixPath, FileSpec], list[str], list[str]]:
    """(files to write, registries written, registries minisand wrote earlier that the plan no longer has)."""
    writes: dict[PurePosixPath, FileSpec] = {}
    written: list[str] = []
    for registry, text in sorted(plan.hosts_text.items()):
        path = plan.hosts_path(registry)
        if current.get(path) != text.encode():
            writes[path] = FileSpec(text.encode())
            written.append(registry)
    old_manifest = current.get(plan.manifest_path)
    removed = [r for r in _managed(old_manifest) if r not in plan.hosts_text]
    manifest = (json.dumps(sorted(plan.hosts_text)) + "\n").encode()
    if old_manifest != manifest and (plan.hosts_text or old_manifest is not None):
        writes[plan.manifest_path] = FileSpec(manifest)
    return writes, written, removed


def _remove_hosts(runner: CommandRunner, plan: ContainerdPlan, registries: list[str]) -> None:
    if not registries:
        return
    runner.run(["rm", "-f", "--", *(str(plan.hosts_path(r)) for r in registries)], sudo=True)
    runner.run(["rmdir", "--ignore-fail-on-non-empty", "--", *(str(plan.certs_dir / r) for r in registries)],
               sudo=True, check=False)


def wait_ready(runner: CommandRunner, address: str, tools: Tools = Tools(), timeout: float = 30.0,
               interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = runner.run([tools.ctr, "--address", address, "version"], sudo=True, check=False, timeout=10)
        if result.ok:
            return
        last = last_line(result)
        if time.monotonic() >= deadline:
            raise _runtime_error(f"containerd on {runner.where} did not answer on {address} within {timeout:.0f}s"
                                 + (f" ({last})" if last else ""), "`minisand logs` has the containerd journal")
        time.sleep(interval)


def _restart(runner: CommandRunner, plan: ContainerdPlan, restart: Restarter, tools: Tools, timeout: float) -> None:
    restart(runner)
    if not tools.restart_confirms_ready:
        wait_ready(runner, plan.grpc_address, tools, timeout)


def _rollback(runner: CommandRunner, plan: ContainerdPlan, old: str | None, restart: Restarter, tools: Tools,
              timeout: float, cause: MinisandError) -> MinisandError:
    try:
        if old is None:
            runner.run(["rm", "-f", "--", str(plan.config_file)], sudo=True)
        else:
            runner.write_file(plan.config_file, old.encode(), mode=0o644)
        _restart(runner, plan, restart, tools, timeout)
    except MinisandError as again:
        return _runtime_error(f"containerd failed with the new config ({cause.message}) and again after restoring "
                              f"the previous one ({again.message})", "`minisand logs` has the containerd journal")
    return _runtime_error(f"containerd failed with the new config ({cause.message}); the previous config was "
                          "restored and containerd restarted", "`minisand logs` has the containerd journal")


def apply(runner: CommandRunner, plan: ContainerdPlan, *, restart: Restarter, tools: Tools = Tools(),
          ready_timeout: float = 30.0) -> ApplyResult:
    """One command reads config.toml, the manifest and every hosts.toml; a changed config is validated first;
    one command writes what differs (hosts.toml files, the manifest, then the old config's backup and the new
    config); containerd restarts only when config.toml changed."""
    paths = [plan.config_file, plan.manifest_path, *(plan.hosts_path(r) for r in sorted(plan.hosts_text))]
    current = read_files(runner, paths)
    raw_old = current.get(plan.config_file)
    old = raw_old.decode(errors="replace") if raw_old is not None else None
    config_changed = old != plan.config_text
    if config_changed:
        validate_config(runner, plan, tools)
    writes, written, removed = _hosts_changes(plan, current)
    if config_changed:
        if old is not None:
            writes[plan.config_file.with_name(plan.config_file.name + BACKUP_SUFFIX)] = FileSpec(old.encode())
        writes[plan.config_file] = FileSpec(plan.config_text.encode())
    write_files(runner, writes)
    _remove_hosts(runner, plan, removed)
    if not config_changed:
        return ApplyResult(False, False, tuple(written), tuple(removed))
    try:
        _restart(runner, plan, restart, tools, ready_timeout)
    except MinisandError as exc:
        raise _rollback(runner, plan, old, restart, tools, ready_timeout, exc) from exc
    return ApplyResult(True, True, tuple(written), tuple(removed))


def detect_config_version(runner: CommandRunner, tools: Tools = Tools()) -> int:
    """The config version the machine's containerd reads (`containerd --version`): 3 for 2.x, 2 for 1.7."""
    from minisand.cruntime.plan import config_version_for

    result = runner.run([tools.containerd, "--version"], check=False, timeout=30)
    if not result.ok:
        raise _runtime_error(f"containerd is not usable on {runner.where} ({last_line(result)})",
                             "the guest ISO ships containerd; on the none driver install containerd 1.7 or 2.x")
    return config_version_for(result.out)
