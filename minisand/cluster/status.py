"""`minisand status`: host / kubelet / apiserver / kubeconfig per node, like minikube, with an exit bitmask:
1 = a host is not running, 2 = the cluster (kubelet or apiserver) is not running, 4 = kubeconfig not configured.
A Saved host counts as not running; a Paused host runs (its kubelet and apiserver show Paused: bit 2 only)."""

from __future__ import annotations

from dataclasses import dataclass

from minisand.cluster.context import Context
from minisand.cluster.nodes import driver_for
from minisand.config.model import ClusterConfig
from minisand.drivers.base import MachineState
from minisand.errors import MinisandError

HOST_NOT_RUNNING = 1
CLUSTER_NOT_RUNNING = 2
KUBECONFIG_NOT_CONFIGURED = 4


@dataclass(frozen=True)
class NodeStatus:
    name: str
    control_plane: bool
    host: str
    kubelet: str
    apiserver: str | None  # control plane only
    kubeconfig: str | None  # control plane only

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"Name": self.name, "Host": self.host, "Kubelet": self.kubelet,
                                "Worker": not self.control_plane}
        if self.control_plane:
            d["APIServer"] = self.apiserver
            d["Kubeconfig"] = self.kubeconfig
        return d

    def text(self) -> str:
        lines = [self.name, f"type: {'Control Plane' if self.control_plane else 'Worker'}", f"host: {self.host}",
                 f"kubelet: {self.kubelet}"]
        if self.control_plane:
            lines += [f"apiserver: {self.apiserver}", f"kubeconfig: {self.kubeconfig}"]
        return "\n".join(lines)


def _kubelet_state(ctx: Context, cfg: ClusterConfig, machine: str) -> str:
    from minisand.node import services_for

    try:
        drv = driver_for(ctx, cfg, machine)
        runner = drv.runner()
        active = services_for(drv, runner).is_active("kubelet")
        runner.close()
    except MinisandError:
        return "Error"
    return "Running" if active else "Stopped"


def _apiserver_and_kubeconfig(ctx: Context, cfg: ClusterConfig) -> tuple[str, str]:
    try:
        from minisand.bootstrap import health
    except ImportError:
        return "Stopped", "Misconfigured"
    return health.apiserver_state(ctx.home, cfg), health.kubeconfig_state(ctx.home, cfg)


def collect(ctx: Context) -> tuple[list[NodeStatus], int]:
    cfg = ctx.store.load(ctx.profile)
    out: list[NodeStatus] = []
    code = 0
    for i, machine in enumerate(cfg.machine_names()):
        cp = i == 0
        state = driver_for(ctx, cfg, machine).state()
        host = state.value
        if state == MachineState.PAUSED:  # the host process runs; nothing in it does
            code |= CLUSTER_NOT_RUNNING
            inner = "Disabled" if cfg.no_kubernetes else "Paused"
            out.append(NodeStatus(machine, cp, host, inner, inner if cp else None,
                                  ("Disabled" if cfg.no_kubernetes else
                                   "Configured" if _has_context(cfg.name) else "Misconfigured") if cp else None))
            continue
        if state != MachineState.RUNNING:
            code |= HOST_NOT_RUNNING | CLUSTER_NOT_RUNNING
            if cfg.no_kubernetes:
                out.append(NodeStatus(machine, cp, host, "Disabled", "Disabled" if cp else None,
                                      "Disabled" if cp else None))
                continue
            if cp and not _has_context(cfg.name):
                code |= KUBECONFIG_NOT_CONFIGURED
            out.append(NodeStatus(machine, cp, host, "Stopped", "Stopped" if cp else None,
                                  ("Configured" if _has_context(cfg.name) else "Misconfigured") if cp else None))
            continue
        if cfg.no_kubernetes:
            out.append(NodeStatus(machine, cp, host, "Disabled", "Disabled" if cp else None,
                                  "Disabled" if cp else None))
            continue
        kubelet = _kubelet_state(ctx, cfg, machine)
        api = kc = None
        if cp:
            api, kc = _apiserver_and_kubeconfig(ctx, cfg)
            if api != "Running":
                code |= CLUSTER_NOT_RUNNING
            if kc != "Configured":
                code |= KUBECONFIG_NOT_CONFIGURED
        if kubelet != "Running":
            code |= CLUSTER_NOT_RUNNING
        out.append(NodeStatus(machine, cp, host, kubelet, api, kc))
    return out, code


def _has_context(name: str) -> bool:
    try:
        from minisand.bootstrap.kubeconfig import has_context
    except ImportError:
        return False
    return has_context(name)
