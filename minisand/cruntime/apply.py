"""Applies a ContainerdPlan through a CommandRunner:

1. validate: the new config.toml goes to a temporary file that `containerd --config TMP config dump` must load;
   a refusal raises RUNTIME_ERROR before anything else changes;
2. write each certs.d/<registry>/hosts.toml whose text differs, remove the ones minisand wrote earlier that the
   plan no longer has (tracked in certs.d/.minisand-managed; entries minisand did not write are never touched);
3. only when config.toml's text changed: keep the old one beside it, write the new one, restart containerd and wait
   for `ctr version`; on failure put the old config back and restart again. hosts.toml needs no restart (containerd
   re-reads it on every pull).
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

Restarter = Callable[[CommandRunner], None]
BACKUP_SUFFIX = ".minisand-prev"
CHECK_SUFFIX = ".minisand-check"


@dataclass(frozen=True)
class Tools:
    containerd: str = "containerd"
    ctr: str = "ctr"


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


def _read_optional(runner: CommandRunner, path: PurePosixPath) -> str | None:
    probe = runner.run(["test", "-f", str(path)], sudo=True, check=False)
    if not probe.ok:
        return None
    return runner.read_file(path).decode()


def validate_config(runner: CommandRunner, plan: ContainerdPlan, tools: Tools = Tools()) -> None:
    """Has the guest's containerd load the new config without installing it."""
    check = plan.config_file.with_name(plan.config_file.name + CHECK_SUFFIX)
    runner.write_file(check, plan.config_text.encode(), mode=0o644)
    try:
        result = runner.run([tools.containerd, "--config", str(check), "config", "dump"], sudo=True,
                            check=False, timeout=60)
    finally:
        runner.run(["rm", "-f", "--", str(check)], sudo=True, check=False)
    if not result.ok:
        detail = last_line(result) or f"exit code {result.exit_code}"
        raise _runtime_error(f"containerd on {runner.where} refuses the new config ({detail}); nothing was changed",
                             "the previous containerd configuration is still in place; `minisand logs` has details")


def _managed(runner: CommandRunner, plan: ContainerdPlan) -> list[str]:
    text = _read_optional(runner, plan.manifest_path)
    try:
        names = json.loads(text) if text else []
    except ValueError:
        return []
    # Names come back from the guest: accept only plain registry names before deleting anything by them.
    return [n for n in names if isinstance(n, str) and n and "/" not in n and n not in (".", "..")]


def sync_hosts(runner: CommandRunner, plan: ContainerdPlan) -> tuple[tuple[str, ...], tuple[str, ...]]:
    written: list[str] = []
    for registry, text in sorted(plan.hosts_text.items()):
        path = plan.hosts_path(registry)
        if _read_optional(runner, path) != text:
            runner.write_file(path, text.encode(), mode=0o644)
            written.append(registry)
    removed: list[str] = []
    for registry in _managed(runner, plan):
        if registry not in plan.hosts_text:
            runner.run(["rm", "-f", "--", str(plan.hosts_path(registry))], sudo=True)
            runner.run(["rmdir", "--ignore-fail-on-non-empty", "--", str(plan.certs_dir / registry)], sudo=True,
                       check=False)
            removed.append(registry)
    manifest = json.dumps(sorted(plan.hosts_text)) + "\n"
    current = _read_optional(runner, plan.manifest_path)
    if current != manifest and (plan.hosts_text or current is not None):
        runner.write_file(plan.manifest_path, manifest.encode(), mode=0o644)
    return tuple(written), tuple(removed)


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
    validate_config(runner, plan, tools)
    old = _read_optional(runner, plan.config_file)
    written, removed = sync_hosts(runner, plan)
    if old == plan.config_text:
        return ApplyResult(False, False, written, removed)
    if old is not None:
        backup = plan.config_file.with_name(plan.config_file.name + BACKUP_SUFFIX)
        runner.write_file(backup, old.encode(), mode=0o644)
    runner.write_file(plan.config_file, plan.config_text.encode(), mode=0o644)
    try:
        _restart(runner, plan, restart, tools, ready_timeout)
    except MinisandError as exc:
        raise _rollback(runner, plan, old, restart, tools, ready_timeout, exc) from exc
    return ApplyResult(True, True, written, removed)


def detect_config_version(runner: CommandRunner, tools: Tools = Tools()) -> int:
    """The config version the machine's containerd reads (`containerd --version`): 3 for 2.x, 2 for 1.7."""
    from minisand.cruntime.plan import config_version_for

    result = runner.run([tools.containerd, "--version"], check=False, timeout=30)
    if not result.ok:
        raise _runtime_error(f"containerd is not usable on {runner.where} ({last_line(result)})",
                             "the guest ISO ships containerd; on the none driver install containerd 1.7 or 2.x")
    return config_version_for(result.out)
