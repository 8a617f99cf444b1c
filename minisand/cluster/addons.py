"""`minisand addons list|enable|disable`, and the re-check of enabled addons on every start: cluster operations
(the profile's lock, its running nodes, the runtime's handlers) around the addon specs of minisand.addons."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

from minisand import ui
from minisand.addons import manifests
from minisand.addons.context import AddonContext
from minisand.addons.registry import addons, get
from minisand.addons.spec import AddonSpec
from minisand.cluster import converged, runtime
from minisand.cluster.context import Context
from minisand.cluster.nodes import driver_for, require_running
from minisand.config.model import ClusterConfig
from minisand.errors import ExitCode, MinisandError
from minisand.node import Node, services_for
from minisand.nodefacts import gather

log = logging.getLogger(__name__)


def list_addons(ctx: Context) -> list[dict[str, object]]:
    enabled: tuple[str, ...] = ()
    if ctx.store.exists(ctx.profile):
        enabled = ctx.store.load(ctx.profile).addons
    return [{"name": s.name, "status": "enabled" if s.name in enabled else "disabled", "runtime": s.runtime,
             "description": s.description} for s in sorted(addons().values(), key=lambda s: s.name)]


def _check_requirements(spec: AddonSpec, cfg: ClusterConfig) -> None:
    if cfg.container_runtime != spec.runtime:
        raise MinisandError(f"the {spec.name} addon needs the {spec.runtime} container runtime; profile "
                            f"{cfg.name!r} uses {cfg.container_runtime}", hint="--container-runtime=containerd",
                            code=ExitCode.ADDON_ERROR, reason="ADDON_REQUIREMENT_RUNTIME")
    if cfg.no_kubernetes:
        raise MinisandError(f"the {spec.name} addon needs Kubernetes; profile {cfg.name!r} runs without it",
                            hint="start a profile without --no-kubernetes", code=ExitCode.ADDON_ERROR)


def addon_context(ctx: Context, cfg: ClusterConfig, nodes: list[Node]) -> AddonContext:
    return AddonContext(ctx.home, cfg, nodes, repository=runtime.stored_repository(ctx, cfg))


def _running_nodes(ctx: Context, cfg: ClusterConfig) -> list[Node]:
    require_running(ctx, cfg)
    nodes: list[Node] = []
    try:
        for i, machine in enumerate(cfg.machine_names()):
            drv = driver_for(ctx, cfg, machine)
            runner = drv.runner()
            try:
                nodes.append(Node(machine, drv, runner, services_for(drv, runner), gather(runner), i == 0))
            except BaseException:
                runner.close()
                raise
    except BaseException:
        for n in nodes:
            n.runner.close()
        raise
    return nodes


def _objects(spec: AddonSpec, actx: AddonContext) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for template in spec.manifests:
        out += manifests.render_objects(template, **spec.template_vars(actx))
    return out


def _reconfigure_runtime(ctx: Context, cfg: ClusterConfig, nodes: list[Node]) -> None:
    repository = runtime.stored_repository(ctx, cfg) or _repository(cfg)  # the one the cluster was built from
    for node in nodes:
        if runtime.configure_node(cfg, node, repository):
            ui.info(f"containerd on {node.machine} restarted with the new runtime handlers")


def _repository(cfg: ClusterConfig) -> str:
    from minisand.images.sources import source_candidates

    return source_candidates(cfg.mirrors).repository_candidates[0]


def _install(ctx: Context, spec: AddonSpec, actx: AddonContext) -> None:
    spec.validate(actx)
    spec.install(actx)
    _reconfigure_runtime(ctx, actx.cfg, actx.nodes)
    manifests.apply(actx.api(), _objects(spec, actx))


@contextlib.contextmanager
def _locked_nodes(ctx: Context, cfg: ClusterConfig) -> Iterator[list[Node]]:
    """Every node of a running cluster, under the profile's lock; a refusal (busy, not running) comes before the
    profile's log or lock is touched, so MINISAND_HOME stays as it was."""
    ctx.store.check_not_busy(ctx.profile)
    require_running(ctx, cfg)
    ctx.attach_log()
    with ctx.store.lock(ctx.profile):
        nodes = _running_nodes(ctx, cfg)
        try:
            yield nodes
        finally:
            for n in nodes:
                n.runner.close()


def enable(ctx: Context, name: str) -> None:
    spec = get(name)
    cfg = ctx.store.load(ctx.profile)
    _check_requirements(spec, cfg)
    with _locked_nodes(ctx, cfg) as nodes:
        with_addon = dataclasses.replace(cfg, addons=tuple(dict.fromkeys((*cfg.addons, name))))
        actx = addon_context(ctx, with_addon, nodes)
        if name in cfg.addons and not spec.check(actx) and all(
                manifests.exists(actx.api(), o) for o in _objects(spec, actx)):
            ui.done(f"The {name!r} addon is already enabled.")
            return
        t0 = time.monotonic()
        ui.step(f"Enabling addon {name!r} ...", "Enabling Addon")
        spec.validate(actx)
        spec.prepare(actx)  # a failure here (a download, a checksum) leaves the nodes as they were
        was_converged = converged.unmark(ctx, cfg)
        _install(ctx, spec, actx)
        with ui.waiting(f"verifying the {name} addon"):
            measured = spec.verify(actx)
        ctx.store.save(with_addon)
        if was_converged:
            converged.mark(ctx, with_addon)
        seconds = time.monotonic() - t0
        log.info("addon %s enabled in %.1fs: %s", name, seconds, measured)
        _record(ctx, name, {"enable_seconds": round(seconds, 2), **measured})
        ui.done(f"The {name!r} addon is enabled ({seconds:.1f}s).")


def disable(ctx: Context, name: str, *, force: bool) -> None:
    spec = get(name)
    cfg = ctx.store.load(ctx.profile)
    with _locked_nodes(ctx, cfg) as nodes:
        without = dataclasses.replace(cfg, addons=tuple(a for a in cfg.addons if a != name))
        actx = addon_context(ctx, without, nodes)
        users = list(spec.in_use(actx))
        if users and not force:
            raise MinisandError(f"the {name!r} addon is still used by {len(users)} pod(s): {', '.join(users[:5])}",
                                hint=f"delete them, or `minisand addons disable {name} --force` deletes them",
                                code=ExitCode.ADDON_ERROR, reason="ADDON_IN_USE")
        was_converged = converged.unmark(ctx, cfg)
        if users:
            from minisand.addons import probe

            ui.info(f"deleting {len(users)} pod(s) that use {name}")
            probe.delete_pods(actx.api(), users)
        ui.step(f"Disabling addon {name!r} ...", "Disabling Addon")
        manifests.delete(actx.api(), _objects(spec, actx))
        ctx.store.save(without)
        _reconfigure_runtime(ctx, without, nodes)
        spec.remove(actx)
        if was_converged:
            converged.mark(ctx, without)
        ui.done(f"The {name!r} addon is disabled.")


def reconcile(ctx: Context, cfg: ClusterConfig, nodes: list[Node]) -> None:
    """At start: every enabled addon is re-checked and repaired (installed files, handlers, manifests)."""
    for name in cfg.addons:
        spec = get(name)
        _check_requirements(spec, cfg)
        actx = addon_context(ctx, cfg, nodes)
        problems = spec.check(actx)
        missing = [o for o in _objects(spec, actx) if not manifests.exists(actx.api(), o)]
        if not problems and not missing:
            log.info("addon %s: healthy", name)
            continue
        ui.step(f"Repairing addon {name!r} ({'; '.join(problems) or 'manifests missing'}) ...", "Enabling Addons")
        _install(ctx, spec, actx)


def _record(ctx: Context, name: str, data: dict[str, Any]) -> None:
    import json

    from minisand.fsutil import atomic_write_text

    atomic_write_text(ctx.home.profile_dir(ctx.profile) / f"addon-{name}.json", json.dumps(data, indent=2) + "\n")
