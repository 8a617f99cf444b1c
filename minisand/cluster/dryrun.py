"""`minisand start --dry-run`: the plan — driver, image/binary/ISO sources, and every file that would be written
on the node with its full content — without creating or contacting anything."""

from __future__ import annotations

import json
from typing import Any

from minisand.cluster.context import Context
from minisand.cluster.start import plan
from minisand.cluster.startconfig import StartRequest
from minisand.config.model import ClusterConfig, to_dict

TOKEN_PLACEHOLDER = "<generated at start>"  # noqa: S105 - not a secret: shown in the plan
ASSUMED_GUEST_IP = "10.0.2.15"  # qemu user-mode networking always gives the guest this address


def _node_ip(cfg: ClusterConfig) -> str:
    if cfg.driver == "qemu" or cfg.driver_options.network == "user":
        return ASSUMED_GUEST_IP
    if cfg.driver == "ssh" and cfg.driver_options.ssh_ip:
        return cfg.driver_options.ssh_ip
    return "<node IP, known after boot>"


def _files(cfg: ClusterConfig, repository: str) -> dict[str, str]:
    from minisand.addons.registry import runtime_handlers
    from minisand.bootstrap import cni, kubeadm
    from minisand.cruntime.config import ContainerdSettings, runc_handler
    from minisand.cruntime.plan import build_plan
    from minisand.images.kubeadm import pause_image

    settings = ContainerdSettings(sandbox_image=str(pause_image(cfg.kubernetes_version, repository)),
                                  handlers=(runc_handler("systemd"), *runtime_handlers(cfg)))
    files = {str(p): t for p, t in build_plan(settings, cfg.mirrors, config_version=3).files().items()}
    if cfg.no_kubernetes:
        return files
    ip = _node_ip(cfg)
    host_machine = cfg.driver in ("none", "ssh")  # as cluster/kubernetes.py: the machine's IP, its /etc/hosts kept
    params = kubeadm.KubeadmParams(
        kubernetes_version=cfg.kubernetes_version, cluster_name=cfg.name, node_name=cfg.name, node_ip=ip,
        image_repository=repository, token=TOKEN_PLACEHOLDER, extra_config=cfg.extra_config,
        health_timeout="20m0s", control_plane_host=ip if host_machine else kubeadm.CONTROL_PLANE_HOST)
    if not host_machine:
        files["/etc/hosts"] = kubeadm.render_hosts(cfg.name, ip, ip)
    files[str(kubeadm.KUBEADM_YAML)] = kubeadm.render_init(params)
    files["/etc/systemd/system/kubelet.service"] = kubeadm.render_kubelet_unit(
        cfg.kubernetes_version, vm=cfg.driver not in ("none", "ssh"))
    files[str(cni.CONFLIST)] = cni.render_bridge(cni.node_pod_cidr(kubeadm.POD_SUBNET, 0))
    if "gvisor" in cfg.addons:
        from minisand.addons import gvisor

        files[str(gvisor.RUNSC_TOML)] = gvisor.runsc_toml()
    return files


def build(ctx: Context, req: StartRequest) -> dict[str, Any]:
    from minisand.bootstrap.binaries import NODE_BINARIES, host_arch
    from minisand.images.kubeadm import control_plane_images
    from minisand.images.sources import binary_sources, source_candidates

    resolved, info, notes = plan(ctx, req)
    cfg = resolved.config
    sources = source_candidates(cfg.mirrors)
    repository = sources.repository_candidates[0]
    data: dict[str, Any] = {
        "profile": ctx.profile, "driver": info.name, "driverNotes": notes,
        "warnings": resolved.warnings,
        "options": resolved.options(),
        "config": to_dict(cfg), "sources": sources.to_dict(),
        "imageRepository": {"candidates": list(sources.repository_candidates),
                            "probe": "pause image pulled in the guest through containerd's mirrors"
                            if len(sources.repository_candidates) > 1 else "none (single candidate)"},
        "files": _files(cfg, repository),
    }
    if not cfg.no_kubernetes:
        data["images"] = [str(i) for i in control_plane_images(cfg.kubernetes_version, repository)]
        data["binaries"] = {n: [s.url for s in binary_sources(n, cfg.kubernetes_version, host_arch(), cfg.mirrors)]
                            for n in NODE_BINARIES}
    return data


def render(data: dict[str, Any], output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=True)
    lines = [f"Profile: {data['profile']}", f"Driver: {data['driver']}"]
    lines += [f"  (skipped {n})" for n in data["driverNotes"]]
    lines += [f"Warning: {w}" for w in data["warnings"]]
    for name, opt in data["options"].items():
        lines.append(f"--{name}: {opt['text'] or '(none)'} ({opt['source']})")
    repo = data["imageRepository"]
    lines.append(f"Image repository candidates: {', '.join(repo['candidates'])} (probe: {repo['probe']})")
    for name, urls in data.get("binaries", {}).items():
        lines.append(f"{name}: {' -> '.join(urls)}")
    for host, endpoints in data["sources"]["registry_hosts"].items():
        lines.append(f"Registry {host}: {' -> '.join(endpoints)}")
    for img in data.get("images", []):
        lines.append(f"Image: {img}")
    for path, content in data["files"].items():
        lines.append(f"--- {path}")
        lines.append(content.rstrip("\n"))
    return "\n".join(lines)
