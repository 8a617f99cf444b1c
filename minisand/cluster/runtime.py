"""containerd on every node: the config rendered for the node's containerd version and facts, mirrors written as
hosts.toml, restarted only when config.toml changed; the control-plane image repository chosen by probing in
the guest (through the mirrors, never from the host)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from minisand import ui
from minisand.cluster.context import Context
from minisand.config.model import ClusterConfig
from minisand.cruntime.apply import Restarter, Tools, apply, detect_config_version, systemd_restarter
from minisand.cruntime.config import ContainerdSettings, RuntimeHandler, runc_handler
from minisand.cruntime.plan import ContainerdPlan, build_plan
from minisand.images.kubeadm import pause_image
from minisand.images.sources import choose_repository, source_candidates
from minisand.nodefacts import ISO_GUEST, NodeFacts
from minisand.runner.base import CommandRunner
from minisand.services import SystemdServices

if TYPE_CHECKING:
    from minisand.node import Node

log = logging.getLogger(__name__)


def settings_for(cfg: ClusterConfig, facts: NodeFacts, repository: str,
                 handlers: tuple[RuntimeHandler, ...]) -> ContainerdSettings:
    return ContainerdSettings(
        sandbox_image=str(pause_image(cfg.kubernetes_version, repository)),
        cgroup_driver=facts.cgroup_driver,
        handlers=(runc_handler(facts.cgroup_driver,
                               root=None if facts.systemd else "/run/containerd/runc-minisand"), *handlers),
        restrict_oom_score_adj=not facts.cap_sys_resource,
    )


def plan_for(cfg: ClusterConfig, node: Node, repository: str, handlers: tuple[RuntimeHandler, ...],
             config_version: int) -> ContainerdPlan:
    return build_plan(settings_for(cfg, node.facts, repository, handlers), cfg.mirrors,
                      config_version=config_version)


def guest_config_text(cfg: ClusterConfig, repository: str) -> str:
    """config.toml as the first start will write it on a minisand guest (for the node image)."""
    settings = settings_for(cfg, ISO_GUEST, repository, addon_handlers(cfg))
    return build_plan(settings, cfg.mirrors, config_version=3).config_text


def restarter_for(node: Node) -> Restarter:
    if isinstance(node.services, SystemdServices):
        return systemd_restarter()
    services = node.services

    def restart(_runner: CommandRunner) -> None:
        services.restart("containerd")

    return restart


def tools_for(node: Node) -> Tools:
    """For a VM: validate configs with this host's containerd when it is the node's version exactly; trust
    systemd's restart (containerd's unit is Type=notify) instead of polling `ctr version`."""
    if node.driver.name in ("none", "ssh"):
        return Tools()
    from minisand.bootstrap.nodeimage import containerd_version
    from minisand.bootstrap.nodeimage_build import host_containerd_version
    from minisand.hosttools import locate

    here = host_containerd_version()
    same = here is not None and containerd_version(node.facts.containerd_version) == here
    return Tools(host_containerd=locate("containerd") if same else None,
                 restart_confirms_ready=isinstance(node.services, SystemdServices))


def addon_handlers(cfg: ClusterConfig) -> tuple[RuntimeHandler, ...]:
    from minisand.addons.registry import runtime_handlers

    return runtime_handlers(cfg)


def configure_node(cfg: ClusterConfig, node: Node, repository: str) -> bool:
    from minisand.cruntime.plan import config_version_for

    facts = node.facts
    version = config_version_for(facts.containerd_version) if facts.containerd_version else \
        detect_config_version(node.runner)
    plan = plan_for(cfg, node, repository, addon_handlers(cfg), version)
    result = apply(node.runner, plan, restart=restarter_for(node), tools=tools_for(node))
    running = result.restarted or ("containerd" in facts.active if facts.active is not None
                                   else node.services.is_active("containerd"))
    if not running:  # unchanged config, but stopped (none driver after a stop)
        node.services.start("containerd")
    log.info("containerd on %s: config v%d changed=%s hosts=%s removed=%s", node.machine, version,
             result.config_changed, result.hosts_written, result.hosts_removed)
    return result.config_changed


def configure_all(ctx: Context, cfg: ClusterConfig, nodes: list[Node]) -> str:
    """Returns the control-plane image repository in use."""
    candidates = source_candidates(cfg.mirrors)
    repository = stored_repository(ctx, cfg) or candidates.repository_candidates[0]
    for node in nodes:
        configure_node(cfg, node, repository)
    if cfg.no_kubernetes or len(candidates.repository_candidates) < 2 or stored_repository(ctx, cfg):
        return repository
    from minisand.cruntime.pull import guest_image_probe
    from minisand.images.kubeadm import pins_for

    probe: Callable[[str], bool] = guest_image_probe(nodes[0].runner, pins_for(cfg.kubernetes_version).pause,
                                                     hosts=candidates.registry_hosts)
    chosen, warning = choose_repository(candidates.repository_candidates, probe)
    if warning:
        ui.warn(warning)
    if chosen != repository:
        ui.info(f"using image repository {chosen}")
        for node in nodes:
            configure_node(cfg, node, chosen)
    store_repository(ctx, cfg, chosen)
    return chosen


def _repo_file(ctx: Context, cfg: ClusterConfig) -> object:
    return ctx.home.profile_dir(cfg.name) / "image-repository"


def stored_repository(ctx: Context, cfg: ClusterConfig) -> str | None:
    """The repository an existing cluster was built from (kubeadm's config names it); kept across starts unless
    the mirror flags change it."""
    from pathlib import Path

    path = Path(str(_repo_file(ctx, cfg)))
    if not path.exists():
        return None
    stored = path.read_text().strip()
    if stored in source_candidates(cfg.mirrors).repository_candidates:
        return stored
    return None


def store_repository(ctx: Context, cfg: ClusterConfig, repository: str) -> None:
    from pathlib import Path

    Path(str(_repo_file(ctx, cfg))).write_text(repository + "\n")
