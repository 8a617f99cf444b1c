"""Before a new VM is created: its data disk prepared on the host (minisand.bootstrap.nodeimage) with the
control-plane images unpacked and the Kubernetes binaries in place, for the repository the cluster will most
likely use (the one stored for this profile, else the first candidate). When the guest then picks another
repository, or there is no node image, the node imports the preload or pulls as before."""

from __future__ import annotations

import logging
from pathlib import Path

from minisand.bootstrap import binaries, preload
from minisand.bootstrap.nodeimage import NodeImageKey
from minisand.cluster.context import Context
from minisand.cluster.timing import PhaseTimer
from minisand.config.model import ClusterConfig
from minisand.drivers.base import MachineRecord

log = logging.getLogger(__name__)


def needed(ctx: Context, cfg: ClusterConfig) -> bool:
    """Only a machine that does not exist yet gets a new disk."""
    if cfg.no_kubernetes:
        return False
    return any(MachineRecord.load(ctx.home.machine_dir(m)) is None for m in cfg.machine_names())


def repository_guess(ctx: Context, cfg: ClusterConfig) -> str:
    from minisand.cluster.runtime import stored_repository
    from minisand.images.sources import source_candidates

    return stored_repository(ctx, cfg) or source_candidates(cfg.mirrors).repository_candidates[0]


def prepare(ctx: Context, cfg: ClusterConfig, timer: PhaseTimer) -> Path | None:
    """The node image for new machines of this cluster, or None (then they start with a blank disk)."""
    from minisand.bootstrap import nodeimage_build
    from minisand.images.kubeadm import control_plane_images

    if not needed(ctx, cfg):
        return None
    reason = nodeimage_build.unavailable()
    if reason is not None:
        log.info("no node image (%s): the node imports the preload itself", reason)
        return None
    host_containerd = nodeimage_build.host_containerd_version()
    assert host_containerd is not None
    arch = binaries.host_arch()
    repository = repository_guess(ctx, cfg)
    with timer.phase("binaries"):
        bins = binaries.ensure_host_binaries(ctx.home, cfg.kubernetes_version, cfg.mirrors, arch)
        timer.count("downloaded_bytes", sum(b.downloaded_bytes for b in bins.values()))
    refs = [str(i) for i in control_plane_images(cfg.kubernetes_version, repository)]
    key = NodeImageKey(kubernetes_version=cfg.kubernetes_version, repository=repository, arch=arch,
                       containerd_version=host_containerd, disk_mb=cfg.disk_mb, refs=tuple(refs),
                       binaries=tuple(sorted((n, b.sha256) for n, b in bins.items())),
                       files=first_start_files(cfg, repository))
    found = nodeimage_build.lookup(ctx.home, key)
    if found is not None:
        _settle_repository(ctx, cfg, repository)
        return found
    tar = preload.tarball(ctx.home, cfg.kubernetes_version, repository, arch)
    with timer.phase("preload"):
        timer.count("downloaded_bytes", preload.ensure(tar, refs, cfg.mirrors, cfg.driver_options.guest_forwards,
                                                       arch))
        if not preload.valid(tar):
            return None
    _settle_repository(ctx, cfg, repository)
    with timer.phase("node-image"):
        return nodeimage_build.ensure(ctx.home, key, tar, {n: b.path for n, b in bins.items()})


def first_start_files(cfg: ClusterConfig, repository: str) -> tuple[tuple[str, str], ...]:
    """The files the first start writes that depend only on the key: on the disk already, they are left alone
    (containerd starts with its config and is not restarted; the kubelet's unit needs no daemon-reload)."""
    from minisand.bootstrap.kubeadm import render_kubelet_unit
    from minisand.cluster.kubernetes import KUBELET_UNIT, VERSION_FILE
    from minisand.cluster.runtime import guest_config_text
    from minisand.guest import CONTAINERD_CONFIG

    return ((str(CONTAINERD_CONFIG), guest_config_text(cfg, repository)),
            (str(KUBELET_UNIT), render_kubelet_unit(cfg.kubernetes_version)),
            (str(VERSION_FILE), f"{cfg.kubernetes_version}\n"))


def _settle_repository(ctx: Context, cfg: ClusterConfig, repository: str) -> None:
    """The host pulled every control-plane image from repository through the node's mirrors (the preload): as
    good an answer as the guest's probe of its pause image, which is then skipped."""
    from minisand.cluster.runtime import store_repository, stored_repository

    if stored_repository(ctx, cfg) is None:
        store_repository(ctx, cfg, repository)
