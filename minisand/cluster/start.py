"""`minisand start`: reconcile(driver → machines → runtime → Kubernetes → kubeconfig → addons).

Every step is idempotent, so a start after a failure, a kill -9 or a stop finishes the job."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from minisand import ui
from minisand.cluster import machine as machine_ops
from minisand.cluster.context import Context
from minisand.cluster.nodes import BootMedia, driver_for
from minisand.cluster.startconfig import Resolved, StartRequest, resolve
from minisand.cluster.timing import PhaseTimer
from minisand.config.model import ClusterConfig
from minisand.drivers.base import Driver, MachineState
from minisand.drivers.registry import DriverInfo, choose, lookup
from minisand.errors import bad_input
from minisand.runner.base import CommandRunner

log = logging.getLogger(__name__)


def resolve_request(ctx: Context, req: StartRequest) -> tuple[Resolved, str | None]:
    """Validates every flag (pure: nothing is probed or created for bad input)."""
    store = ctx.store
    existing = store.load(ctx.profile) if store.exists(ctx.profile) else None
    resolved = resolve(ctx.profile, req, existing, ctx.settings.load(), "qemu")  # qemu: until choose() picks
    explicit = resolved.config.driver if resolved.sources.get("driver") != "default" else None
    return resolved, explicit


def choose_driver(resolved: Resolved, explicit: str | None) -> tuple[DriverInfo, list[str]]:
    """Runs the drivers' health checks and picks one; refuses what the driver cannot do."""
    info, notes = choose(explicit)
    if info.name != resolved.config.driver:
        resolved.config = dataclasses.replace(resolved.config, driver=info.name)
    check_topology(resolved.config)
    return lookup(resolved.config.driver), notes


def check_topology(cfg: ClusterConfig) -> None:
    """More than one node needs machines on one network: kvm2's private network (or hyperkit's vmnet)."""
    shared_network = cfg.driver in ("kvm2", "hyperkit") and cfg.driver_options.network == "default"
    if cfg.nodes > 1 and not shared_network:
        raise bad_input(f"--nodes {cfg.nodes} needs machines that share a network; the {cfg.driver} driver"
                        + (" with --network=user" if cfg.driver == "kvm2" else "") + " gives each node its own",
                        "use --driver=kvm2 (its default private network), or --nodes=1",
                        reason="MULTINODE_UNSUPPORTED")


def plan(ctx: Context, req: StartRequest) -> tuple[Resolved, DriverInfo, list[str]]:
    resolved, explicit = resolve_request(ctx, req)
    info, notes = choose_driver(resolved, explicit)
    return resolved, info, notes


def boot_media(ctx: Context, cfg: ClusterConfig) -> BootMedia:
    from minisand.images.sources import iso_urls
    from minisand.iso.acquire import acquire_iso, default_iso_urls, extract_boot_files

    defaults: list[str] = []
    if not cfg.mirrors.offline:
        for url in (*iso_urls(default_iso_urls()[0], cfg.mirrors), *default_iso_urls()):
            if url not in defaults:
                defaults.append(url)
    ui.step("Checking the guest ISO ...", "Guest ISO")
    iso = acquire_iso(ctx.home, cfg.iso_url, cfg.iso_checksum, default_urls=defaults,
                      progress=lambda label, total: ui.Progress(label, total))
    kernel, initrd = extract_boot_files(iso, ctx.home.iso_cache / "boot")
    return BootMedia(iso=iso, kernel=kernel, initrd=initrd)


def node_image(ctx: Context, cfg: ClusterConfig, timer: PhaseTimer) -> Path | None:
    from minisand.cluster import nodeimage

    if not nodeimage.needed(ctx, cfg):
        return None
    ui.step(f"Preparing the node's disk (Kubernetes {cfg.kubernetes_version} binaries and images) ...")
    return nodeimage.prepare(ctx, cfg, timer)


def run(ctx: Context, req: StartRequest) -> ClusterConfig:
    resolved, explicit = resolve_request(ctx, req)
    for w in resolved.warnings:
        ui.warn(w)
    ctx.attach_log()
    timer = PhaseTimer()
    with ctx.store.lock(ctx.profile):
        info, notes = choose_driver(resolved, explicit)
        cfg = resolved.config
        from minisand import __version__

        ui.step(f"minisand v{__version__}, profile {ctx.profile!r}", "Initial Setup")
        ui.step(f"Using the {info.name} driver" + (" (the best healthy one)" if explicit is None else ""),
                "Selecting Driver")
        for note in notes:
            log.info("driver skipped: %s", note)
        fresh = not ctx.store.exists(ctx.profile)
        ctx.home.ensure()
        ctx.store.save(cfg)
        try:
            runners, resumed = _machines(ctx, cfg, info, timer)
        except BaseException:
            if fresh:
                _forget_if_nothing_created(ctx, cfg)
            raise
        try:
            from minisand.cluster import converged, provision

            if resumed and converged.matches(ctx, cfg):
                provision.after_resume(ctx, cfg, runners, timer)
            else:
                converged.clear(ctx, cfg.name)
                _cluster(ctx, cfg, runners, timer)
            converged.mark(ctx, cfg)
        finally:
            for r in runners.values():
                r.close()
            timer.save(ctx.home.profile_dir(cfg.name) / "last-start.json")
    return cfg


def _machines(ctx: Context, cfg: ClusterConfig, info: DriverInfo,
              timer: PhaseTimer) -> tuple[dict[str, CommandRunner], bool]:
    """A runner per machine, and whether every machine was resumed from a saved state."""
    media = None
    if info.is_vm:
        with timer.phase("iso"):
            media = boot_media(ctx, cfg)
        media = dataclasses.replace(media, data_image=node_image(ctx, cfg, timer))
    runners: dict[str, CommandRunner] = {}
    all_resumed = True
    for name in cfg.machine_names():
        drv = driver_for(ctx, cfg, name, media, with_key=True)
        state = drv.state()
        verb = "Restarting existing" if state.value != "Nonexistent" else "Creating"
        ui.step(f"{verb} {info.name} machine {name!r} (CPUs={cfg.cpus}, Memory={cfg.memory_mb}MB, "
                f"Disk={cfg.disk_mb}MB) ...", "Starting Node")
        _warn_if_resources_wait(drv, state)
        with timer.phase("boot"):
            runners[name], resumed = machine_ops.start_machine(drv)
        all_resumed = all_resumed and resumed
        machine_ops.notice_accel(drv)
    return runners, all_resumed


def _warn_if_resources_wait(drv: Driver, state: MachineState) -> None:
    """CPUs or memory changed on a running machine: stored in the profile, applied at the next cold boot."""
    from minisand.cluster.suspend import resources_changed

    changed = resources_changed(drv) if state in (MachineState.RUNNING, MachineState.PAUSED) else None
    if changed:
        ui.warn(f"machine {drv.spec.machine!r} keeps its resources until it boots again ({changed} stored): "
                "they apply after `minisand stop` (which then powers it off instead of saving it) and "
                "`minisand start`")


def _cluster(ctx: Context, cfg: ClusterConfig, runners: dict[str, CommandRunner], timer: PhaseTimer) -> None:
    from minisand.cluster import provision

    provision.run(ctx, cfg, runners, timer)


def _forget_if_nothing_created(ctx: Context, cfg: ClusterConfig) -> None:
    """A first start that failed before any machine existed leaves no profile behind."""
    if not any(ctx.home.machine_dir(m).exists() for m in cfg.machine_names()):
        ctx.store.remove(cfg.name)
