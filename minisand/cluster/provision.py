"""After the machines are up: container runtime, Kubernetes, kubeconfig, addons. Each step converges: a start on
a running, stopped or half-provisioned cluster finishes the job without redoing what is done."""

from __future__ import annotations

import logging

from minisand import ui
from minisand.cluster.context import Context
from minisand.cluster.nodes import driver_for
from minisand.cluster.timing import PhaseTimer
from minisand.config.model import ClusterConfig
from minisand.node import Node, services_for
from minisand.nodefacts import gather
from minisand.runner.base import CommandRunner
from minisand.services import ProcessServices

log = logging.getLogger(__name__)


def nodes(ctx: Context, cfg: ClusterConfig, runners: dict[str, CommandRunner]) -> list[Node]:
    from minisand.cluster.kubernetes import facts_paths

    out = []
    for i, machine in enumerate(cfg.machine_names()):
        drv = driver_for(ctx, cfg, machine)
        runner = runners[machine]
        facts = gather(runner, *facts_paths(cfg))
        out.append(Node(machine, drv, runner, services_for(drv, runner), facts, i == 0))
    return out


HOST_DAEMONS = ("kubelet", "containerd")  # in the order they stop


def _host_daemons_running(node: Node) -> set[str]:
    """The daemons minisand supervises itself on this host (none driver without systemd); none for VMs or units."""
    if not isinstance(node.services, ProcessServices):
        return set()
    return {name for name in HOST_DAEMONS if node.services.is_active(name)}


def run(ctx: Context, cfg: ClusterConfig, runners: dict[str, CommandRunner], timer: PhaseTimer) -> None:
    cluster_nodes = nodes(ctx, cfg, runners)
    before = {n.machine: _host_daemons_running(n) for n in cluster_nodes}
    try:
        _converge(ctx, cfg, cluster_nodes, timer)
    except BaseException:
        # a failed start leaves no daemon it started behind on this host (the next start starts them again)
        for node in cluster_nodes:
            started = _host_daemons_running(node) - before[node.machine]
            if started:
                log.info("start failed: stopping %s on %s", ", ".join(sorted(started)), node.machine)
                node.driver.stop(timeout=30)
        raise


def _converge(ctx: Context, cfg: ClusterConfig, cluster_nodes: list[Node], timer: PhaseTimer) -> None:
    from minisand.cluster import runtime

    with timer.phase("provision"):
        words = cluster_nodes[0].facts.containerd_version.split()
        ui.step(f"Preparing containerd {words[2].split('+')[0] if len(words) > 2 else ''} ...", "Preparing containerd")
        repository = runtime.configure_all(ctx, cfg, cluster_nodes)
    if cfg.no_kubernetes:
        ui.done(f"Done! {cfg.name!r} runs containerd without Kubernetes, as asked.")
        return
    from minisand.cluster import kubernetes

    kubernetes.bootstrap(ctx, cfg, cluster_nodes, repository, timer)
    from minisand.cluster import addons as manage

    with timer.phase("addons"):
        manage.reconcile(ctx, cfg, cluster_nodes)
    ui.done(f"Done! kubectl is now configured to use {cfg.name!r} (`minisand kubectl -- get pods -A`).")


def after_resume(ctx: Context, cfg: ClusterConfig, runners: dict[str, CommandRunner], timer: PhaseTimer) -> None:
    """Every node was resumed from a state saved after the profile's last converge: nothing to reconcile."""
    ui.step("Resumed from the saved state: the profile is unchanged since, nothing to reconcile ...")
    if cfg.no_kubernetes:
        ui.done(f"Done! {cfg.name!r} runs containerd without Kubernetes, as asked.")
        return
    from minisand.cluster import kubernetes
    from minisand.errors import ExitCode, MinisandError

    cp = cfg.machine_names()[0]
    rec = driver_for(ctx, cfg, cp).record()
    if rec is None:
        raise MinisandError(f"machine {cp} has no state", code=ExitCode.DRIVER_ERROR,
                            hint="`minisand delete` and start again")
    kubernetes.after_resume(ctx, cfg, runners[cp], rec, timer)
    ui.done(f"Done! kubectl is now configured to use {cfg.name!r} (`minisand kubectl -- get pods -A`).")
