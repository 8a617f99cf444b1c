"""stop, ip, runner access, profile rows: lifecycle operations other than start and delete (cluster/delete.py)."""

from __future__ import annotations

import logging

from minisand import ui
from minisand.cluster.context import Context
from minisand.cluster.nodes import driver_for, node_of
from minisand.config.model import ClusterConfig
from minisand.drivers.base import Driver, MachineState
from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandRunner

log = logging.getLogger(__name__)


def stop(ctx: Context, timeout: float = 120.0, cold: bool = False) -> int:
    """Saves each VM node (cold=True, or a driver that cannot save: powers it off); returns how many changed."""
    from minisand.cluster.suspend import Outcome, stop_node

    cfg = ctx.store.load(ctx.profile)
    drivers = [(name, driver_for(ctx, cfg, name)) for name in reversed(cfg.machine_names())]  # a bad profile fails here
    ctx.attach_log()
    done: list[Outcome] = []
    with ctx.store.lock(ctx.profile):
        for name, drv in drivers:
            ui.step(f"Stopping node {name!r} ...")
            done.append(stop_node(drv, timeout, cold))
    saved, stopped = done.count(Outcome.SAVED), done.count(Outcome.STOPPED)
    if saved:
        ui.done(f"{saved} node(s) saved" + (f", {stopped} powered off" if stopped else "")
                + ": `minisand start` resumes them.")
    else:
        ui.done(f"{stopped} node(s) stopped." if stopped else "All nodes were already stopped.")
    return saved + stopped


def running_driver(ctx: Context, node: str | None = None) -> tuple[ClusterConfig, Driver]:
    cfg = ctx.store.load(ctx.profile)
    machine = node_of(cfg, node)
    drv = driver_for(ctx, cfg, machine)
    state = drv.state()
    if state != MachineState.RUNNING:
        raise MinisandError(f"node {machine!r} is not running (state: {state.value})",
                            hint=f"start it with `minisand start -p {ctx.profile}`",
                            code=ExitCode.MACHINE_NOT_RUNNING)
    return cfg, drv


def runner_for(ctx: Context, node: str | None = None) -> CommandRunner:
    """The user's `minisand ssh`: as the machine's login user, also where minisand's own commands log in as
    root (minisand.drivers.vmcommon.ROOT_LOGIN_KEY)."""
    from minisand.drivers.vmcommon import ROOT_LOGIN_KEY
    from minisand.runner.logged import LoggedRunner
    from minisand.runner.ssh import SSHRunner

    _, drv = running_driver(ctx, node)
    target, rec = drv.ssh_target(), drv.record()
    if target is not None and rec is not None and rec.extra.get(ROOT_LOGIN_KEY) == "yes":
        return LoggedRunner(SSHRunner(target), rec.machine)
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
    names = ctx.store.names()
    for name in ctx.store.entries():
        if name not in names:
            rows.append({"name": name, "status": "Corrupt", "active": False,
                         "error": f"{ctx.home.profiles / name} is not a profile folder: its name is invalid"})
            continue
        try:
            cfg = ctx.store.load(name)
            state = driver_for(ctx, cfg, cfg.machine_names()[0]).state().value
        except MinisandError as exc:
            status, error = {
                ExitCode.PROFILE_CORRUPT: ("Corrupt", exc.message),
                ExitCode.PROFILE_NOT_FOUND: ("Incomplete", f"no config.json (a first start that did not finish; "
                                                           f"`minisand delete -p {name}` removes it)"),
            }.get(ExitCode(exc.code), ("Error", exc.message))
            rows.append({"name": name, "status": status, "active": name == ctx.profile, "error": error})
            continue
        rows.append({"name": name, "driver": cfg.driver, "runtime": cfg.container_runtime,
                     "kubernetes": "-" if cfg.no_kubernetes else cfg.kubernetes_version,
                     "nodes": cfg.nodes, "status": state, "active": name == ctx.profile})
    return rows
