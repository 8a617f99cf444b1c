"""After the machines are up: container runtime, Kubernetes, kubeconfig, addons. Each step converges: a start on
a running, stopped or half-provisioned cluster finishes the job without redoing what is done."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from minisand import ui
from minisand.cluster.context import Context
from minisand.cluster.nodefacts import NodeFacts, gather
from minisand.cluster.nodes import driver_for
from minisand.cluster.timing import PhaseTimer
from minisand.config.model import ClusterConfig
from minisand.drivers.base import Driver
from minisand.runner.base import CommandRunner
from minisand.services import Services, SystemdServices

log = logging.getLogger(__name__)


@dataclass
class Node:
    machine: str
    driver: Driver
    runner: CommandRunner
    services: Services
    facts: NodeFacts
    control_plane: bool


def services_for(driver: Driver, runner: CommandRunner) -> Services:
    own = getattr(driver, "services", None)
    if callable(own):
        svc: Services = own()
        return svc
    return SystemdServices(runner)


def nodes(ctx: Context, cfg: ClusterConfig, runners: dict[str, CommandRunner]) -> list[Node]:
    out = []
    for i, machine in enumerate(cfg.machine_names()):
        drv = driver_for(ctx, cfg, machine)
        runner = runners[machine]
        out.append(Node(machine, drv, runner, services_for(drv, runner), gather(runner), i == 0))
    return out


def run(ctx: Context, cfg: ClusterConfig, runners: dict[str, CommandRunner], timer: PhaseTimer) -> None:
    from minisand.cluster import runtime

    with timer.phase("provision"):
        cluster_nodes = nodes(ctx, cfg, runners)
        words = cluster_nodes[0].facts.containerd_version.split()
        ui.step(f"Preparing containerd {words[2].split('+')[0] if len(words) > 2 else ''} ...")
        repository = runtime.configure_all(ctx, cfg, cluster_nodes)
    if cfg.no_kubernetes:
        ui.done(f"Done! {cfg.name!r} runs containerd without Kubernetes, as asked.")
        return
    from minisand.cluster import kubernetes

    kubernetes.bootstrap(ctx, cfg, cluster_nodes, repository, timer)
    from minisand.addons import manage

    with timer.phase("addons"):
        manage.reconcile(ctx, cfg, cluster_nodes)
    ui.done(f"Done! kubectl is now configured to use {cfg.name!r} (`minisand kubectl -- get pods -A`).")
