"""kubeadm on the node: configuration rendered from templates (kubeadm API v1beta4 for the supported minors),
init as explicit phases so the kubelet can be started by whatever manages services on that node, restart of an
existing cluster without re-init, recovery of an init that was interrupted, and join of worker nodes."""

from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from minisand.config.validate import parse_extra_config, version_tuple
from minisand.errors import ExitCode, MinisandError
from minisand.guestpaths import BIN_DIR, STATE_DIR
from minisand.runner.base import CommandRunner
from minisand.services import Services
from minisand.templating import render

log = logging.getLogger(__name__)

CONTROL_PLANE_HOST = "control-plane.minisand.internal"
APISERVER_PORT = 8443
POD_SUBNET = "10.244.0.0/16"
SERVICE_SUBNET = "10.96.0.0/12"
KUBEADM_YAML = PurePosixPath("/var/tmp/minisand/kubeadm.yaml")
INIT_DONE = STATE_DIR / "kubeadm-init.done"
JOIN_DONE = STATE_DIR / "kubeadm-join.done"
IGNORED_PREFLIGHT = ("NumCPU", "Mem", "Swap", "SystemVerification",
                     "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables", "Port-10250")
COMPONENT_FLAG = {"kubelet": "kubelet", "apiserver": "apiserver", "controller-manager": "controller_manager",
                  "scheduler": "scheduler", "etcd": "etcd"}


def new_token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(6)) + "." + \
        "".join(secrets.choice(alphabet) for _ in range(16))


@dataclass(frozen=True)
class KubeadmParams:
    kubernetes_version: str
    cluster_name: str
    node_name: str
    node_ip: str
    image_repository: str
    token: str
    cgroup_driver: str = "systemd"
    fail_cgroup_v1: bool = True
    cert_sans: tuple[str, ...] = ()
    extra_config: tuple[str, ...] = ()
    health_timeout: str = "15m0s"
    kubelet_config: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    control_plane_host: str = CONTROL_PLANE_HOST  # a name in the nodes' /etc/hosts, or an IP

    @property
    def control_plane_endpoint(self) -> str:
        return f"{self.control_plane_host}:{APISERVER_PORT}"


def check_api(version: str) -> str:
    major, minor, _ = version_tuple(version)
    if (major, minor) < (1, 31):
        raise MinisandError(f"Kubernetes {version} needs kubeadm API v1beta3, which this minisand does not render",
                            hint="use --kubernetes-version v1.33 or newer", code=ExitCode.BAD_INPUT)
    return "v1beta4"


def _args(extra: tuple[str, ...], component: str) -> list[dict[str, str]]:
    out = []
    for item in extra:
        comp, key, value = parse_extra_config(item)
        if COMPONENT_FLAG.get(comp) == component:
            out.append({"name": key, "value": value})
    return out


def render_init(p: KubeadmParams) -> str:
    check_api(p.kubernetes_version)
    sans = list(dict.fromkeys(["127.0.0.1", "localhost", p.node_ip, CONTROL_PLANE_HOST, p.control_plane_host,
                               *p.cert_sans]))
    return render(
        "kubeadm/v1beta4.yaml.j2", token=p.token, node_ip=p.node_ip, apiserver_port=APISERVER_PORT,
        node_name=p.node_name, kubelet_args=_args(p.extra_config, "kubelet"), health_timeout=p.health_timeout,
        cluster_name=p.cluster_name, kubernetes_version=p.kubernetes_version, image_repository=p.image_repository,
        control_plane_endpoint=p.control_plane_endpoint, pod_subnet=POD_SUBNET,
        service_subnet=SERVICE_SUBNET, etcd_args=_args(p.extra_config, "etcd"), cert_sans=sans,
        apiserver_args=_args(p.extra_config, "apiserver"),
        controller_manager_args=_args(p.extra_config, "controller_manager"),
        scheduler_args=_args(p.extra_config, "scheduler"), cgroup_driver=p.cgroup_driver,
        fail_cgroup_v1=p.fail_cgroup_v1, kubelet_config=list(p.kubelet_config))


def render_join(p: KubeadmParams, ca_cert_hash: str) -> str:
    return render("kubeadm/join-v1beta4.yaml.j2", control_plane_endpoint=p.control_plane_endpoint,
                  token=p.token, ca_cert_hash=ca_cert_hash, node_name=p.node_name, node_ip=p.node_ip,
                  health_timeout=p.health_timeout)


def render_kubelet_unit(version: str) -> str:
    return render("kubelet/kubelet.service.j2", kubernetes_version=version, bin_dir=str(BIN_DIR / version))


def render_hosts(node_name: str, node_ip: str, control_plane_ip: str) -> str:
    return (f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{node_ip}\t{node_name}\n"
            f"{control_plane_ip}\t{CONTROL_PLANE_HOST}\n")


class Kubeadm:
    """Runs kubeadm of one version on one node."""

    def __init__(self, runner: CommandRunner, services: Services, version: str) -> None:
        self.runner = runner
        self.services = services
        self.version = version
        self.bin = BIN_DIR / version

    def _env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

    def kubeadm(self, *args: str, timeout: float = 1800, check: bool = True) -> str:
        res = self.runner.run([str(self.bin / "kubeadm"), *args], sudo=True, env=self._env(), timeout=timeout,
                              check=False)
        if check and not res.ok:
            tail = " | ".join((res.err.strip() or res.out.strip()).splitlines()[-4:])
            raise MinisandError(f"kubeadm {args[0]} {args[1] if len(args) > 1 else ''} failed: {tail}".strip(),
                                hint="`minisand logs` shows the kubelet journal", code=ExitCode.KUBERNETES_ERROR)
        return res.out

    def exists(self, path: PurePosixPath) -> bool:
        return self.runner.run(["test", "-e", str(path)], sudo=True, check=False, timeout=30).ok

    def stop_stale_kubeadm(self) -> None:
        """A kubeadm left running by a minisand that was killed (its SSH session gone) is stopped first."""
        self.runner.run(["pkill", "-TERM", "-x", "kubeadm"], sudo=True, check=False, timeout=30)

    def reset(self) -> None:
        self.stop_stale_kubeadm()
        self.kubeadm("reset", "--force", "--cri-socket", "unix:///run/containerd/containerd.sock", timeout=600,
                     check=False)

    def _ignore(self) -> str:
        return "--ignore-preflight-errors=" + ",".join(IGNORED_PREFLIGHT)

    def init(self, config_yaml: str) -> None:
        """Phases up to kubelet-start, then the kubelet is started by the node's service manager, then the
        rest of init. Each earlier phase is idempotent, so a retried init picks up what exists."""
        self.runner.write_file(KUBEADM_YAML, config_yaml.encode(), mode=0o600)
        cfg = f"--config={KUBEADM_YAML}"
        self.kubeadm("init", "phase", "preflight", cfg, self._ignore())
        for phase in (("certs", "all"), ("kubeconfig", "all"), ("kubelet-start",)):
            self.kubeadm("init", "phase", *phase, cfg)
        self.services.daemon_reload()
        self.services.enable("kubelet")
        self.services.restart("kubelet")
        self.kubeadm("init", cfg, self._ignore(), "--skip-phases=preflight,certs,kubeconfig,kubelet-start",
                     "--skip-token-print")
        self.runner.write_file(INIT_DONE, f"{self.version}\n".encode())

    def join(self, config_yaml: str) -> None:
        self.runner.write_file(KUBEADM_YAML, config_yaml.encode(), mode=0o600)
        self.kubeadm("join", f"--config={KUBEADM_YAML}", self._ignore())
        self.runner.write_file(JOIN_DONE, f"{self.version}\n".encode())

    def join_token(self) -> tuple[str, str]:
        """(token, ca cert hash) for a worker, from the control plane."""
        out = self.kubeadm("token", "create", "--ttl", "1h", "--print-join-command", timeout=300)
        words = out.split()
        try:
            token = words[words.index("--token") + 1]
            ca_hash = words[words.index("--discovery-token-ca-cert-hash") + 1]
        except (ValueError, IndexError):
            raise MinisandError("kubeadm printed no join command", code=ExitCode.KUBERNETES_ERROR,
                                hint="`minisand logs`") from None
        return token, ca_hash
