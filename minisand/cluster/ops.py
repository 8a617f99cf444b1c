"""stop, delete, ip, runner access: lifecycle operations other than start."""

from __future__ import annotations

import json
import logging
import shutil

from minisand import ui
from minisand.cluster.context import Context
from minisand.cluster.machine import stop_machine
from minisand.cluster.nodes import driver_for
from minisand.config.model import ClusterConfig
from minisand.drivers.base import Driver, MachineRecord, MachineState
from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandRunner

log = logging.getLogger(__name__)


def stop(ctx: Context, timeout: float = 120.0) -> int:
    cfg = ctx.store.load(ctx.profile)
    ctx.attach_log()
    stopped = 0
    with ctx.store.lock(ctx.profile):
        for name in reversed(cfg.machine_names()):
            drv = driver_for(ctx, cfg, name)
            ui.step(f"Stopping node {name!r} ...")
            if stop_machine(drv, timeout):
                stopped += 1
    ui.done(f"{stopped} node(s) stopped." if stopped else "All nodes were already stopped.")
    return stopped


def _machines_of(ctx: Context, name: str) -> list[str]:
    found = []
    if ctx.home.machines.is_dir():
        for d in ctx.home.machines.iterdir():
            if d.name == name or (d.name.startswith(f"{name}-m") and d.name[len(name) + 2:].isdigit()):
                found.append(d.name)
    return sorted(found)


def _driver_from_record(ctx: Context, machine: str, fallback: ClusterConfig | None) -> Driver | None:
    try:
        rec = MachineRecord.load(ctx.home.machine_dir(machine))
    except MinisandError:
        rec = None
    driver = rec.driver if rec else (fallback.driver if fallback else None)
    if driver is None:
        return None
    cfg = fallback or ClusterConfig(name=machine, driver=driver)
    if cfg.driver != driver:
        import dataclasses

        cfg = dataclasses.replace(cfg, driver=driver)
    return driver_for(ctx, cfg, machine)


def delete_profile(ctx: Context, name: str) -> bool:
    """Removes the machines, the kubeconfig context and the profile; works from any state."""
    sub = Context(ctx.home, name)
    try:
        cfg: ClusterConfig | None = sub.store.load(name)
    except MinisandError as exc:
        if exc.code == ExitCode.PROFILE_NOT_FOUND:
            cfg = None
        elif exc.code == ExitCode.PROFILE_CORRUPT:
            ui.warn(f"{exc.message}; deleting what can be found")
            cfg = None
        else:
            raise
    machines = sorted(set(cfg.machine_names() if cfg else []) | set(_machines_of(ctx, name)))
    if cfg is None and not machines and not ctx.home.profile_dir(name).exists():
        return False
    with sub.store.lock(name):
        for m in reversed(machines):
            drv = _driver_from_record(ctx, m, cfg)
            ui.step(f"Deleting node {m!r} ...")
            if drv is not None:
                drv.remove()
            shutil.rmtree(ctx.home.machine_dir(m), ignore_errors=True)
        _remove_kubeconfig(name)
    sub.store.remove(name)
    return True


def _remove_kubeconfig(name: str) -> None:
    try:
        from minisand.bootstrap.kubeconfig import remove_context
    except ImportError:
        return
    remove_context(name)


def delete(ctx: Context, all_profiles: bool, purge: bool) -> None:
    names = ctx.store.names() if all_profiles else [ctx.profile]
    if all_profiles and ctx.home.machines.is_dir():
        known = set(names)
        for d in ctx.home.machines.iterdir():
            base = d.name.split("-m")[0] if "-m" in d.name else d.name
            if d.name not in known and base not in known:
                names.append(d.name)
    deleted = [n for n in names if delete_profile(ctx, n)]
    if not all_profiles and not deleted:
        ui.info(f"profile {ctx.profile!r} does not exist: nothing to delete")
    for n in deleted:
        ui.done(f"Removed all traces of the {n!r} cluster.")
    if purge:
        shutil.rmtree(ctx.home.root, ignore_errors=True)
        ui.done(f"Purged {ctx.home.root}")


def running_driver(ctx: Context, node: str | None = None) -> tuple[ClusterConfig, Driver]:
    cfg = ctx.store.load(ctx.profile)
    machines = cfg.machine_names()
    machine = machines[0] if node is None else node
    if machine not in machines:
        raise MinisandError(f"node {node!r} is not part of profile {ctx.profile!r}",
                            hint=f"nodes: {', '.join(machines)}", code=ExitCode.BAD_INPUT)
    drv = driver_for(ctx, cfg, machine)
    state = drv.state()
    if state != MachineState.RUNNING:
        raise MinisandError(f"node {machine!r} is not running (state: {state.value})",
                            hint=f"start it with `minisand start -p {ctx.profile}`",
                            code=ExitCode.MACHINE_NOT_RUNNING)
    return cfg, drv


def runner_for(ctx: Context, node: str | None = None) -> CommandRunner:
    _, drv = running_driver(ctx, node)
    return drv.runner()


def ip(ctx: Context, node: str | None = None) -> str:
    _, drv = running_driver(ctx, node)
    rec = drv.record()
    if rec is None:
        raise MinisandError("the machine has no recorded address", hint="run `minisand start`",
                            code=ExitCode.MACHINE_NOT_RUNNING)
    return rec.node_ip or rec.ssh_host


def profile_rows(ctx: Context) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name in ctx.store.names():
        try:
            cfg = ctx.store.load(name)
        except MinisandError as exc:
            rows.append({"name": name, "status": "Corrupt", "error": exc.message})
            continue
        drv = driver_for(ctx, cfg, cfg.machine_names()[0])
        rows.append({"name": name, "driver": cfg.driver, "runtime": cfg.container_runtime,
                     "kubernetes": "-" if cfg.no_kubernetes else cfg.kubernetes_version,
                     "nodes": cfg.nodes, "status": drv.state().value, "active": name == ctx.profile})
    return rows


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
