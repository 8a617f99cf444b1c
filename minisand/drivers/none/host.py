"""Service control for the none driver on hosts without systemd: containerd and kubelet as supervised
background processes, and the clean-up that leaves the host as it was (kubeadm reset, pod shims, CNI bridge)."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
from pathlib import Path

from minisand import guest, procs
from minisand.guest import BIN_DIR, CNI_CONF_DIR, STATE_DIR
from minisand.runner.base import CommandRunner
from minisand.services import ProcessDef, ProcessServices, Services

CONTAINERD_SOCK = Path(str(guest.CONTAINERD_SOCK))
VERSION_FILE = Path(str(STATE_DIR)) / "kubernetes-version"


def _containerd_argv() -> list[str]:
    return [shutil.which("containerd") or "containerd", "--config", "/etc/containerd/config.toml"]


def _kubelet_argv() -> list[str]:
    version = VERSION_FILE.read_text().strip()
    flags: list[str] = []
    env = Path("/var/lib/kubelet/kubeadm-flags.env")
    if env.exists():
        for line in env.read_text().splitlines():
            if line.startswith("KUBELET_KUBEADM_ARGS="):
                flags = shlex.split(line.split("=", 1)[1].strip().strip('"'))
    return [str(Path(str(BIN_DIR)) / version / "kubelet"),
            "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
            "--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml", *flags]


def _containerd_ready() -> bool:
    import socket

    if not CONTAINERD_SOCK.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(CONTAINERD_SOCK))
        except OSError:
            return False
    return True


def process_services(state_dir: Path) -> ProcessServices:
    return ProcessServices(state_dir / "services", [], {
        "containerd": ProcessDef(argv=_containerd_argv, ready=_containerd_ready),
        "kubelet": ProcessDef(argv=_kubelet_argv),
    })


def stop_node(services: Services, runner: CommandRunner | None = None) -> None:
    """kubelet first (so it restarts nothing), then every pod through CRI, then containerd; shims that outlive
    it are stopped last."""
    services.stop("kubelet")
    if runner is not None and _containerd_ready():
        endpoint = f"unix://{CONTAINERD_SOCK}"
        pods = runner.run(["crictl", "--runtime-endpoint", endpoint, "pods", "-q"], check=False, timeout=60)
        ids = pods.out.split()
        if ids:  # stopped and removed: their network namespaces go too; the kubelet recreates them at start
            runner.run(["crictl", "--runtime-endpoint", endpoint, "stopp", *ids], check=False, timeout=300)
            runner.run(["crictl", "--runtime-endpoint", endpoint, "rmp", "--force", *ids], check=False, timeout=300)
    services.stop("containerd")
    _kill_shims()


def _kill_shims() -> None:
    """containerd's shims outlive containerd by design; on stop they go too (their containers with them)."""
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        argv = procs.cmdline(int(pid_dir.name))
        if argv and Path(argv[0]).name.startswith("containerd-shim") and "k8s.io" in argv:
            procs.kill(int(pid_dir.name), Path(argv[0]).name, grace=5)


def _unmount_under(root: Path) -> None:
    """Pod volume mounts (tmpfs, projected tokens) under root, deepest first."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return
    for target in sorted((m for m in mounts if m == str(root) or m.startswith(f"{root}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False, timeout=30)


def reset_node(runner: CommandRunner, services: Services) -> None:
    version = VERSION_FILE.read_text().strip() if VERSION_FILE.exists() else ""
    kubeadm = Path(str(BIN_DIR)) / version / "kubeadm"
    services.stop("kubelet")
    if version and kubeadm.exists():
        if not _containerd_ready() and Path("/etc/containerd/config.toml").exists():
            services.start("containerd")  # kubeadm reset removes the cluster's containers through CRI
        runner.run([str(kubeadm), "reset", "--force", "--cri-socket", f"unix://{CONTAINERD_SOCK}"], check=False,
                   timeout=600)
    stop_node(services, runner)
    _unmount_under(Path("/var/lib/kubelet"))
    for d in ("/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd"):  # what kubeadm reset may leave
        shutil.rmtree(d, ignore_errors=True)
    runner.run(["ip", "link", "delete", "cni0"], check=False, timeout=30)
    for path in (Path(str(CNI_CONF_DIR)) / "1-minisand-bridge.conflist", Path("/var/lib/cni/networks/minisand"),
                 Path("/var/log/pods"), Path("/var/log/containers")):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(Path(str(STATE_DIR)), ignore_errors=True)
