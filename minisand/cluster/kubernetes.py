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
from minisand.guestpaths import STATE_DIR
from minisand.images.kubeadm import control_plane_images

if TYPE_CHECKING:
    from minisand.cluster.provision import Node

log = logging.getLogger(__name__)

ADMIN_CONF = PurePosixPath("/etc/kubernetes/admin.conf")
KUBELET_RESOLV = STATE_DIR / "kubelet-resolv.conf"
SLIRP_DNS = "10.0.2.3"  # qemu user-mode networking's resolver
# A constant script: the resolv.conf kubeadm would hand the kubelet (systemd-resolved's upstream file, else /etc's)
_RESOLV = "cat /run/systemd/resolve/resolv.conf 2>/dev/null || cat /etc/resolv.conf 2>/dev/null || true"
VERSION_FILE = STATE_DIR / "kubernetes-version"


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


def _kubelet_resolv(node: Node) -> tuple[tuple[str, str], ...]:
    """Pods with dnsPolicy Default (CoreDNS) get the kubelet's resolv.conf, and CoreDNS will not start without a
    nameserver in it. A guest on qemu's restricted user network learns none by DHCP: give it slirp's resolver
    (it answers when egress is allowed, and harmlessly times out when not). Hosts the user brought (none, ssh)
    keep their own resolver configuration."""
    if node.driver.name in ("none", "ssh"):
        return ()
    text = node.runner.run(["sh", "-c", _RESOLV], check=False, timeout=30).out
    servers = [ln.split()[1] for ln in text.splitlines() if ln.startswith("nameserver") and len(ln.split()) > 1]
    if any(not s.startswith("127.") for s in servers):
        return ()
    node.runner.write_file(KUBELET_RESOLV, f"nameserver {SLIRP_DNS}\n".encode())
    return (("resolvConf", str(KUBELET_RESOLV)),)


def _params(cfg: ClusterConfig, node: Node, repository: str, token: str,
            control_plane_host: str) -> kubeadm.KubeadmParams:
    rec = _record(node)
    sans = tuple(x for x in (rec.apiserver_host, rec.node_ip) if x)
    return kubeadm.KubeadmParams(
        kubernetes_version=cfg.kubernetes_version, cluster_name=cfg.name, node_name=node.machine,
        node_ip=node.facts.ip, image_repository=repository, token=token, cgroup_driver=node.facts.cgroup_driver,
        fail_cgroup_v1=node.facts.cgroup_v2, cert_sans=sans, extra_config=cfg.extra_config,
        health_timeout="20m0s", control_plane_host=control_plane_host, kubelet_config=_kubelet_resolv(node))


def _prepare_node(cfg: ClusterConfig, node: Node, cp_ip: str) -> None:
    """Files every node needs before kubeadm: /etc/hosts (VMs), the kubelet unit, the CNI config, the version."""
    r = node.runner
    if node.driver.name not in ("none", "ssh"):
        r.write_file(PurePosixPath("/etc/hosts"), kubeadm.render_hosts(node.machine, node.facts.ip, cp_ip).encode())
    if node.facts.systemd:
        unit = PurePosixPath("/etc/systemd/system/kubelet.service")
        text = kubeadm.render_kubelet_unit(cfg.kubernetes_version).encode()
        current = r.run(["cat", str(unit)], sudo=True, check=False, timeout=30).stdout
        if current != text:
            r.write_file(unit, text)
            node.services.daemon_reload()
    index = cfg.machine_names().index(node.machine)
    conflist = cni.render_bridge(cni.node_pod_cidr(kubeadm.POD_SUBNET, index)).encode()
    if r.run(["cat", str(cni.CONFLIST)], sudo=True, check=False, timeout=30).stdout != conflist:
        r.write_file(cni.CONFLIST, conflist)
    r.write_file(VERSION_FILE, f"{cfg.kubernetes_version}\n".encode())
    r.run(["modprobe", "-a", "overlay", "br_netfilter"], sudo=True, check=False, timeout=60)
    r.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1",
           "net.bridge.bridge-nf-call-ip6tables=1"], sudo=True, check=False, timeout=60)


def bootstrap(ctx: Context, cfg: ClusterConfig, nodes: list[Node], repository: str, timer: PhaseTimer) -> None:
    cp = nodes[0]
    with timer.phase("binaries"):
        ui.step(f"Preparing Kubernetes {cfg.kubernetes_version} ...")
        bins = binaries.ensure_host_binaries(ctx.home, cfg.kubernetes_version, cfg.mirrors)
        timer.count("downloaded_bytes", sum(b.downloaded_bytes for b in bins.values()))
        for node in nodes:
            timer.count("copied_bytes", binaries.install_in_guest(node.runner, cfg.kubernetes_version, bins))
    refs = [str(i) for i in control_plane_images(cfg.kubernetes_version, repository)]
    tar = preload.tarball(ctx.home, cfg.kubernetes_version, repository, binaries.host_arch())
    with timer.phase("preload"):
        if any(preload.missing(n.runner, refs) for n in nodes):
            timer.count("downloaded_bytes", preload.ensure(tar, refs, cfg.mirrors, cfg.driver_options.guest_forwards,
                                                           binaries.host_arch()))
            for node in nodes:
                timer.count("preload_bytes", preload.restore(node.runner, tar, refs))
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
            ui.step(f"Waiting for: {', '.join(cfg.wait)} (up to {cfg.wait_timeout:.0f}s) ...")
        wait.wait_for(admin, cfg.wait, cfg.wait_timeout)


def _control_plane(cfg: ClusterConfig, cp: Node, repository: str) -> None:
    k = kubeadm.Kubeadm(cp.runner, cp.services, cfg.kubernetes_version)
    if k.exists(kubeadm.INIT_DONE) and k.exists(ADMIN_CONF):
        ui.step("Restarting the existing control plane ...")
        if not cp.services.is_active("kubelet"):
            cp.services.enable("kubelet")
            cp.services.start("kubelet")
        return
    if k.exists(ADMIN_CONF) or k.exists(PurePosixPath("/etc/kubernetes/manifests/kube-apiserver.yaml")):
        ui.info("an earlier kubeadm init did not finish: resetting the node first")
        k.reset()
    else:
        k.stop_stale_kubeadm()
    ui.step("Booting up the control plane (kubeadm init) ...")
    config = kubeadm.render_init(_params(cfg, cp, repository, kubeadm.new_token(), _control_plane_host(cp)))
    k.init(config)


def _worker(cfg: ClusterConfig, cp: Node, worker: Node, repository: str) -> None:
    k = kubeadm.Kubeadm(worker.runner, worker.services, cfg.kubernetes_version)
    if k.exists(kubeadm.JOIN_DONE) and k.exists(PurePosixPath("/etc/kubernetes/kubelet.conf")):
        if not worker.services.is_active("kubelet"):
            worker.services.start("kubelet")
        return
    if k.exists(PurePosixPath("/etc/kubernetes/kubelet.conf")):
        k.reset()
    ui.step(f"Joining node {worker.machine!r} ...")
    token, ca_hash = kubeadm.Kubeadm(cp.runner, cp.services, cfg.kubernetes_version).join_token()
    params = _params(cfg, worker, repository, token, _control_plane_host(cp))
    k.join(kubeadm.render_join(params, ca_hash))


def _fetch_kubeconfig(ctx: Context, cfg: ClusterConfig, cp: Node) -> dict[str, Any]:
    admin = cp.runner.read_file(ADMIN_CONF).decode()
    data = kubeconfig.for_profile(admin, cfg.name, server_url(cp))
    ca = data["clusters"][0]["cluster"].get("certificate-authority-data", "")
    atomic_write_text(ctx.home.profile_dir(cfg.name) / "ca.crt", base64.b64decode(ca).decode(), mode=0o644)
    atomic_write_text(ctx.home.profile_dir(cfg.name) / "kubeconfig.json", json.dumps(data), mode=0o600)
    path = kubeconfig.merge(data, cfg.name)
    log.info("kubeconfig context %s written to %s", cfg.name, path)
    return data
