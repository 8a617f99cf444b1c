"""Kubernetes on the nodes: binaries, preload, kubeadm init (or restart, or recovery), kubeconfig, workers, wait."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from minisand import ui
from minisand.bootstrap import binaries, cni, kubeadm, kubeconfig, preload, wait
from minisand.cluster import podnet
from minisand.cluster.context import Context
from minisand.cluster.timing import PhaseTimer
from minisand.config.model import ClusterConfig
from minisand.drivers.base import MachineRecord
from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text
from minisand.guest import STATE_DIR
from minisand.images.kubeadm import control_plane_images
from minisand.runner.base import CommandRunner

if TYPE_CHECKING:
    from minisand.node import Node

log = logging.getLogger(__name__)

ADMIN_CONF = PurePosixPath("/etc/kubernetes/admin.conf")
KUBELET_CONF = PurePosixPath("/etc/kubernetes/kubelet.conf")
APISERVER_MANIFEST = PurePosixPath("/etc/kubernetes/manifests/kube-apiserver.yaml")
KUBELET_RESOLV = STATE_DIR / "kubelet-resolv.conf"
SLIRP_DNS = "10.0.2.3"  # qemu user-mode networking's resolver
VERSION_FILE = STATE_DIR / "kubernetes-version"
KUBELET_UNIT = PurePosixPath("/etc/systemd/system/kubelet.service")
# what an earlier start got done on a node: looked up with its facts (minisand.nodefacts), in one command
STATE_PATHS = (kubeadm.INIT_DONE, kubeadm.JOIN_DONE, ADMIN_CONF, KUBELET_CONF, APISERVER_MANIFEST)


def facts_paths(cfg: ClusterConfig) -> tuple[tuple[PurePosixPath, ...], tuple[PurePosixPath, ...]]:
    """(the paths whose existence a node's facts tell: minisand's state files and the binaries; the small files
    read with them: what a node image put on the disk, the binaries' checksums)."""
    from minisand.guest import NODE_IMAGE_MARKER
    from minisand.runner.bundle import SUMS_NAME

    bin_dir = binaries.guest_bin_dir(cfg.kubernetes_version)
    return ((*STATE_PATHS, *(bin_dir / n for n in binaries.NODE_BINARIES)),
            (NODE_IMAGE_MARKER, bin_dir / SUMS_NAME))
# A constant script: the modules and sysctls a node needs (the ISO has them already; a host may not)
_KERNEL = ("modprobe -a overlay br_netfilter; sysctl -q -w net.ipv4.ip_forward=1 "
           "net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1; true")


def _record(node: Node) -> MachineRecord:
    rec = node.driver.record()
    if rec is None:
        raise MinisandError(f"machine {node.machine} has no state", code=ExitCode.DRIVER_ERROR,
                            hint="`minisand delete` and start again")
    return rec


def server_url(node: Node) -> str:
    rec = _record(node)
    return f"https://{rec.apiserver_host}:{rec.apiserver_port}"


def _control_plane_host(node: Node) -> str:
    """VMs resolve control-plane.minisand.internal through the /etc/hosts minisand writes (so the address may
    change between boots); the none and ssh drivers leave the machine's /etc/hosts alone and use the IP."""
    return node.facts.ip if node.driver.name in ("none", "ssh") else kubeadm.CONTROL_PLANE_HOST


def _kubelet_resolv(node: Node) -> tuple[tuple[str, str], tuple[tuple[str, str], ...]] | None:
    """Pods with dnsPolicy Default (CoreDNS) get the kubelet's resolv.conf, and CoreDNS will not start without a
    nameserver in it. A guest on qemu's restricted user network learns none by DHCP: give it slirp's resolver
    (it answers when egress is allowed, and harmlessly times out when not). Hosts the user brought (none, ssh)
    keep their own resolver configuration. Returns (the file to write, the kubelet setting), or None."""
    if node.driver.name in ("none", "ssh"):
        return None
    text = node.facts.resolv
    servers = [ln.split()[1] for ln in text.splitlines() if ln.startswith("nameserver") and len(ln.split()) > 1]
    if any(not s.startswith("127.") for s in servers):
        return None
    return (str(KUBELET_RESOLV), f"nameserver {SLIRP_DNS}\n"), (("resolvConf", str(KUBELET_RESOLV)),)


def _resolv_setting(node: Node) -> tuple[tuple[str, str], ...]:
    resolv = _kubelet_resolv(node)
    return resolv[1] if resolv else ()


def _params(cfg: ClusterConfig, node: Node, repository: str, token: str,
            control_plane_host: str) -> kubeadm.KubeadmParams:
    rec = _record(node)
    sans = tuple(x for x in (rec.apiserver_host, rec.node_ip) if x)
    return kubeadm.KubeadmParams(
        kubernetes_version=cfg.kubernetes_version, cluster_name=cfg.name, node_name=node.machine,
        node_ip=node.facts.ip, image_repository=repository, token=token, cgroup_driver=node.facts.cgroup_driver,
        fail_cgroup_v1=node.facts.cgroup_v2, cert_sans=sans, extra_config=cfg.extra_config,
        health_timeout="20m0s", control_plane_host=control_plane_host, kubelet_config=_resolv_setting(node))


def _prepare_node(cfg: ClusterConfig, node: Node, cp_ip: str) -> None:
    """Files every node needs before kubeadm: /etc/hosts (VMs), the kubelet unit, the CNI config, the version,
    the kubelet's resolv.conf (qemu guests): read in one command, the changed ones written in one more."""
    from minisand.runner.files import FileSpec, sync_files

    r = node.runner
    files: dict[PurePosixPath, FileSpec] = {}
    vm = node.driver.name not in ("none", "ssh")
    if vm:
        hosts = FileSpec(kubeadm.render_hosts(node.machine, node.facts.ip, cp_ip).encode())
        files[PurePosixPath("/etc/hosts")] = hosts
        files[kubeadm.HOSTS_COPY] = hosts
    if node.facts.systemd:
        files[KUBELET_UNIT] = FileSpec(kubeadm.render_kubelet_unit(cfg.kubernetes_version, vm).encode())
    index = cfg.machine_names().index(node.machine)
    files[cni.CONFLIST] = FileSpec(cni.render_bridge(cni.node_pod_cidr(kubeadm.POD_SUBNET, index)).encode())
    files[VERSION_FILE] = FileSpec(f"{cfg.kubernetes_version}\n".encode())
    resolv = _kubelet_resolv(node)
    if resolv is not None:
        files[PurePosixPath(resolv[0][0])] = FileSpec(resolv[0][1].encode())
    if KUBELET_UNIT in sync_files(r, files):
        node.services.daemon_reload()
    r.run(["sh", "-c", _KERNEL], sudo=True, check=False, timeout=60)


def bootstrap(ctx: Context, cfg: ClusterConfig, nodes: list[Node], repository: str, timer: PhaseTimer) -> None:
    cp = nodes[0]
    with timer.phase("binaries"):
        ui.step(f"Preparing Kubernetes {cfg.kubernetes_version} ...", "Preparing Kubernetes")
        bins = binaries.ensure_host_binaries(ctx.home, cfg.kubernetes_version, cfg.mirrors)
        timer.count("downloaded_bytes", sum(b.downloaded_bytes for b in bins.values()))
        for node in nodes:
            timer.count("copied_bytes", binaries.install_in_guest(node.runner, cfg.kubernetes_version, bins,
                                                                  have=_known_sums(cfg, node)))
    refs = [str(i) for i in control_plane_images(cfg.kubernetes_version, repository)]
    tar = preload.tarball(ctx.home, cfg.kubernetes_version, repository, binaries.host_arch())
    with timer.phase("preload"):
        lacking = {n.machine: _lacking_images(n, refs, repository) for n in nodes}
        if any(lacking.values()):
            timer.count("downloaded_bytes", preload.ensure(tar, refs, cfg.mirrors, cfg.driver_options.guest_forwards,
                                                           binaries.host_arch()))
            for node in nodes:
                if lacking[node.machine]:
                    timer.count("preload_bytes", preload.restore(node.runner, tar, lacking[node.machine]))
    cp_ip = cp.facts.ip
    for node in nodes:
        _prepare_node(cfg, node, cp_ip)
    with timer.phase("kubeadm"):
        _control_plane(cfg, cp, repository)
        admin = _fetch_kubeconfig(ctx, cfg, cp)
        for worker in nodes[1:]:
            _worker(cfg, cp, worker, repository)
        if len(nodes) > 1:
            podnet.configure(nodes, wait.api_client(admin))
    with timer.phase("wait"):
        if cfg.wait:
            ui.step(f"Waiting for: {', '.join(cfg.wait)} (up to {cfg.wait_timeout:.0f}s) ...", "Verifying Kubernetes")
        wait.wait_for(admin, cfg.wait, cfg.wait_timeout)


def _known_sums(cfg: ClusterConfig, node: Node) -> dict[str, str] | None:
    """The binaries' checksum list as read with the node's facts (None: ask the node)."""
    from minisand.runner.bundle import SUMS_NAME, parse_sums

    bin_dir = binaries.guest_bin_dir(cfg.kubernetes_version)
    text = node.facts.file(bin_dir / SUMS_NAME)
    if text is None:
        return None
    return {n: d for n, d in parse_sums(text).items() if node.facts.exists(bin_dir / n)}


def _lacking_images(node: Node, refs: list[str], repository: str) -> list[str]:
    """The control-plane images the node lacks: none when its node image says it holds them all (kubeadm would
    still pull one that went missing), else what containerd lists."""
    from minisand.bootstrap.nodeimage import marker_refs
    from minisand.guest import NODE_IMAGE_MARKER

    if set(refs) <= marker_refs(node.facts.file(NODE_IMAGE_MARKER), repository):
        return []
    return preload.missing(node.runner, refs)


def _control_plane(cfg: ClusterConfig, cp: Node, repository: str) -> None:
    k = kubeadm.Kubeadm(cp.runner, cp.services, cfg.kubernetes_version, kubeadm.ignored_preflight(cfg.extra_config))
    done = cp.facts.exists  # (looked up with the node's facts, at the start of this start)
    if done(kubeadm.INIT_DONE) and done(ADMIN_CONF):
        ui.step("Restarting the existing control plane ...", "Control Plane")
        if not _kubelet_active(cp):
            cp.services.enable("kubelet")
            cp.services.start("kubelet")
        return
    if done(ADMIN_CONF) or done(APISERVER_MANIFEST):
        ui.info("an earlier kubeadm init did not finish: resetting the node first")
        k.reset()
    else:
        k.stop_stale_kubeadm()
    ui.step("Booting up the control plane (kubeadm init) ...", "Control Plane")
    config = kubeadm.render_init(_params(cfg, cp, repository, kubeadm.new_token(), _control_plane_host(cp)))
    with ui.waiting("kubeadm init"):
        k.init(config)


def _kubelet_active(node: Node) -> bool:
    if node.facts.active is not None:
        return "kubelet" in node.facts.active
    return node.services.is_active("kubelet")


def _worker(cfg: ClusterConfig, cp: Node, worker: Node, repository: str) -> None:
    k = kubeadm.Kubeadm(worker.runner, worker.services, cfg.kubernetes_version,
                        kubeadm.ignored_preflight(cfg.extra_config))
    done = worker.facts.exists
    if done(kubeadm.JOIN_DONE) and done(KUBELET_CONF):
        if not _kubelet_active(worker):
            worker.services.start("kubelet")
        return
    if done(KUBELET_CONF):
        k.reset()
    ui.step(f"Joining node {worker.machine!r} ...", "Joining Nodes")
    token, ca_hash = kubeadm.Kubeadm(cp.runner, cp.services, cfg.kubernetes_version).join_token()
    params = _params(cfg, worker, repository, token, _control_plane_host(cp))
    k.join(kubeadm.render_join(params, ca_hash))


def _fetch_kubeconfig(ctx: Context, cfg: ClusterConfig, cp: Node) -> dict[str, Any]:
    return _write_kubeconfig(ctx, cfg, cp.runner.read_file(ADMIN_CONF).decode(), server_url(cp))


def after_resume(ctx: Context, cfg: ClusterConfig, cp_runner: CommandRunner, cp_record: MachineRecord,
                 timer: PhaseTimer) -> None:
    """A control plane resumed from its saved state is the one that was saved: the kubeconfig is refreshed (the API
    server's host port may have moved) and `--wait` waits; nothing on the node is reconciled."""
    server = f"https://{cp_record.apiserver_host}:{cp_record.apiserver_port}"
    with timer.phase("wait"):
        admin = _stored_kubeconfig(ctx, cfg, server) or _write_kubeconfig(
            ctx, cfg, cp_runner.read_file(ADMIN_CONF).decode(), server)
        if cfg.wait:
            ui.step(f"Waiting for: {', '.join(cfg.wait)} (up to {cfg.wait_timeout:.0f}s) ...")
        wait.wait_for(admin, cfg.wait, cfg.wait_timeout)


def _stored_kubeconfig(ctx: Context, cfg: ClusterConfig, server: str) -> dict[str, Any] | None:
    """The profile's kubeconfig when it still points at server (merged into the user's kubeconfig again)."""
    try:
        data: dict[str, Any] = json.loads((ctx.home.profile_dir(cfg.name) / "kubeconfig.json").read_text())
        if data["clusters"][0]["cluster"]["server"] != server:
            return None
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    kubeconfig.merge(data, cfg.name)
    return data


def _write_kubeconfig(ctx: Context, cfg: ClusterConfig, admin: str, server: str) -> dict[str, Any]:
    data = kubeconfig.for_profile(admin, cfg.name, server)
    ca = data["clusters"][0]["cluster"].get("certificate-authority-data", "")
    atomic_write_text(ctx.home.profile_dir(cfg.name) / "ca.crt", base64.b64decode(ca).decode(), mode=0o644)
    atomic_write_text(ctx.home.profile_dir(cfg.name) / "kubeconfig.json", json.dumps(data), mode=0o600)
    path = kubeconfig.merge(data, cfg.name)
    log.info("kubeconfig context %s written to %s", cfg.name, path)
    return data
