"""After the machines are up: container runtime, Kubernetes, kubeconfig, addons."""

from __future__ import annotations

from minisand import ui
from minisand.cluster.context import Context
from minisand.cluster.timing import PhaseTimer
from minisand.config.model import ClusterConfig
from minisand.errors import not_available
from minisand.runner.base import CommandRunner


def run(ctx: Context, cfg: ClusterConfig, runners: dict[str, CommandRunner], timer: PhaseTimer) -> None:
    with timer.phase("provision"):
        for runner in runners.values():
            runner.run(["systemctl", "is-active", "--quiet", "containerd"], sudo=True, timeout=60)
    if cfg.no_kubernetes:
        ui.done(f"Done! machine {cfg.name!r} runs containerd (no Kubernetes, as asked)")
        return
    raise not_available("Kubernetes bootstrap")
