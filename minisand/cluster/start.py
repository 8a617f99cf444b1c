"""`minisand start`: reconcile(driver → machines → runtime → Kubernetes → kubeconfig → addons).

Every step is idempotent, so a start after a failure, a kill -9 or a stop finishes the job."""

from __future__ import annotations

import dataclasses
import logging

from minisand import ui
from minisand.cluster import machine as machine_ops
from minisand.cluster.context import Context
from minisand.cluster.nodes import BootMedia, driver_for
from minisand.cluster.startconfig import Resolved, StartRequest, resolve
from minisand.cluster.timing import PhaseTimer
from minisand.config.model import ClusterConfig
from minisand.drivers.registry import DriverInfo, choose, lookup
from minisand.errors import bad_input
from minisand.runner.base import CommandRunner

log = logging.getLogger(__name__)


def resolve_request(ctx: Context, req: StartRequest) -> tuple[Resolved, str | None]:
    """Validates every flag (pure: nothing is probed or created for bad input)."""
    store = ctx.store
    existing = store.load(ctx.profile) if store.exists(ctx.profile) else None
    settings = ctx.settings.load()
    explicit = req.driver or (existing.driver if existing else None) or settings.get("driver")
    if isinstance(explicit, list):
        explicit = None
    return resolve(ctx.profile, req, existing, settings, explicit or "qemu"), explicit


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
    ui.step("Checking the guest ISO ...")
    iso = acquire_iso(ctx.home, cfg.iso_url, cfg.iso_checksum, default_urls=defaults,
                      progress=lambda label, total: ui.Progress(label, total))
    kernel, initrd = extract_boot_files(iso, ctx.home.iso_cache / "boot")
    return BootMedia(iso=iso, kernel=kernel, initrd=initrd)


def run(ctx: Context, req: StartRequest) -> ClusterConfig:
    resolved, explicit = resolve_request(ctx, req)
    for w in resolved.warnings:
        ui.warn(w)
    ctx.attach_log()
    timer = PhaseTimer()
    with ctx.store.lock(ctx.profile):
        info, notes = choose_driver(resolved, explicit)
        cfg = resolved.config
        for note in notes:
            log.info("driver skipped: %s", note)
        fresh = not ctx.store.exists(ctx.profile)
        ctx.store.save(cfg)
        try:
            runners = _machines(ctx, cfg, info, timer)
        except BaseException:
            if fresh:
                _forget_if_nothing_created(ctx, cfg)
            raise
        try:
            _cluster(ctx, cfg, runners, timer)
        finally:
            for r in runners.values():
                r.close()
            timer.save(ctx.home.profile_dir(cfg.name) / "last-start.json")
    return cfg


def _machines(ctx: Context, cfg: ClusterConfig, info: DriverInfo,
              timer: PhaseTimer) -> dict[str, CommandRunner]:
    media = None
    if info.is_vm:
        with timer.phase("iso"):
            media = boot_media(ctx, cfg)
    runners: dict[str, CommandRunner] = {}
    for name in cfg.machine_names():
        drv = driver_for(ctx, cfg, name, media, with_key=True)
        state = drv.state()
        verb = "Restarting existing" if state.value != "Nonexistent" else "Creating"
        ui.step(f"{verb} {info.name} machine {name!r} (CPUs={cfg.cpus}, Memory={cfg.memory_mb}MB, "
                f"Disk={cfg.disk_mb}MB) ...")
        with timer.phase("boot"):
            runners[name] = machine_ops.bring_up(drv)
        machine_ops.notice_accel(drv)
    return runners


def _cluster(ctx: Context, cfg: ClusterConfig, runners: dict[str, CommandRunner], timer: PhaseTimer) -> None:
    from minisand.cluster import provision

    provision.run(ctx, cfg, runners, timer)


def _forget_if_nothing_created(ctx: Context, cfg: ClusterConfig) -> None:
    """A first start that failed before any machine existed leaves no profile behind."""
    if not any(ctx.home.machine_dir(m).exists() for m in cfg.machine_names()):
        ctx.store.remove(cfg.name)
