"""kubeadm on the node: configuration rendered from templates (kubeadm API v1beta4 for the supported minors),
init as explicit phases so the kubelet can be started by whatever manages services on that node, restart of an
existing cluster without re-init, recovery of an init that was interrupted, and join of worker nodes."""

from __future__ import annotations

import logging
import secrets
import string
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from minisand.config.extraconfig import component_args, kube_proxy_settings, preflight_ignores
from minisand.config.validate import version_tuple
from minisand.errors import ExitCode, MinisandError
from minisand.guest import BIN_DIR, CRI_SOCKET, STATE_DIR
from minisand.runner.base import CommandRunner
from minisand.services import Services
from minisand.templating import render

log = logging.getLogger(__name__)

CONTROL_PLANE_HOST = "control-plane.minisand.internal"
APISERVER_PORT = 8443
POD_SUBNET = "10.244.0.0/16"
SERVICE_SUBNET = "10.96.0.0/12"
KUBEADM_YAML = PurePosixPath("/var/tmp/minisand/kubeadm.yaml")
ETCD_DATA_DIR = PurePosixPath("/var/lib/etcd")  # kubeadm reset keeps it when no etcd manifest names it
INIT_DONE = STATE_DIR / "kubeadm-init.done"
JOIN_DONE = STATE_DIR / "kubeadm-join.done"
EARLY_PHASES = ("preflight", "certs", "kubeconfig", "kubelet-start")  # run one by one before the kubelet starts
# system:masters, written by the kubeconfig phase: admin.conf's group gets its ClusterRoleBinding only later in init
SUPER_ADMIN_KUBECONFIG = PurePosixPath("/etc/kubernetes/super-admin.conf")
# The kubelet's cap on crash-loop back-off (KubeletCrashLoopBackOffMax, beta and on by default from v1.35; the
# kubelet refuses the field where the gate is off). After a cold boot under emulation the apiserver takes minutes to
# report healthy, and the controller-manager gives up after 10 s and exits each time: with the default 5-minute cap its
# back-off, not the apiserver, decided when the cluster answered again.
CRASH_LOOP_MAX = "20s"
CRASH_LOOP_MAX_SINCE = (1, 35)
IGNORED_PREFLIGHT = ("NumCPU", "Mem", "Swap", "SystemVerification",
                     "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables", "Port-10250")


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
    return [{"name": key, "value": value} for key, value in component_args(extra, component)]


def ignored_preflight(extra: tuple[str, ...]) -> tuple[str, ...]:
    """The preflight checks kubeadm skips: minisand's own plus `--extra-config kubeadm.ignore-preflight-errors`."""
    return preflight_ignores(extra, IGNORED_PREFLIGHT)


def render_init(p: KubeadmParams) -> str:
    check_api(p.kubernetes_version)
    sans = list(dict.fromkeys(["127.0.0.1", "localhost", p.node_ip, CONTROL_PLANE_HOST, p.control_plane_host,
                               *p.cert_sans]))
    proxy = kube_proxy_settings(p.extra_config)
    major, minor, _ = version_tuple(p.kubernetes_version)
    crash_loop_max = CRASH_LOOP_MAX if (major, minor) >= CRASH_LOOP_MAX_SINCE else ""
    return render(
        "kubeadm/v1beta4.yaml.j2", cri_socket=CRI_SOCKET, token=p.token, node_ip=p.node_ip,
        apiserver_port=APISERVER_PORT,
        node_name=p.node_name, kubelet_args=_args(p.extra_config, "kubelet"), health_timeout=p.health_timeout,
        ignore_preflight=ignored_preflight(p.extra_config),
        cluster_name=p.cluster_name, kubernetes_version=p.kubernetes_version, image_repository=p.image_repository,
        control_plane_endpoint=p.control_plane_endpoint, pod_subnet=POD_SUBNET,
        service_subnet=SERVICE_SUBNET, etcd_args=_args(p.extra_config, "etcd"), etcd_data_dir=str(ETCD_DATA_DIR),
        cert_sans=sans,
        apiserver_args=_args(p.extra_config, "apiserver"),
        controller_manager_args=_args(p.extra_config, "controller-manager"),
        scheduler_args=_args(p.extra_config, "scheduler"), cgroup_driver=p.cgroup_driver,
        fail_cgroup_v1=p.fail_cgroup_v1, kubelet_config=list(p.kubelet_config), crash_loop_max=crash_loop_max,
        kube_proxy_fields=list(proxy.fields), kube_proxy_sections=[(s, list(f)) for s, f in proxy.sections])


def render_join(p: KubeadmParams, ca_cert_hash: str) -> str:
    return render("kubeadm/join-v1beta4.yaml.j2", cri_socket=CRI_SOCKET,
                  control_plane_endpoint=p.control_plane_endpoint, token=p.token, ca_cert_hash=ca_cert_hash,
                  node_name=p.node_name, node_ip=p.node_ip,
                  health_timeout=p.health_timeout, kubelet_args=_args(p.extra_config, "kubelet"),
                  ignore_preflight=ignored_preflight(p.extra_config))


HOSTS_COPY = STATE_DIR / "etc-hosts"  # a VM's /etc/hosts, kept on the data disk


def render_kubelet_unit(version: str, vm: bool = True) -> str:
    """The kubelet's systemd unit; in a VM it first puts back the /etc/hosts that names the control plane."""
    return render("kubelet/kubelet.service.j2", kubernetes_version=version, bin_dir=str(BIN_DIR / version),
                  hosts_copy=str(HOSTS_COPY) if vm else "")


def render_hosts(node_name: str, node_ip: str, control_plane_ip: str) -> str:
    return (f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{node_ip}\t{node_name}\n"
            f"{control_plane_ip}\t{CONTROL_PLANE_HOST}\n")


class Kubeadm:
    """Runs kubeadm of one version on one node."""

    def __init__(self, runner: CommandRunner, services: Services, version: str,
                 ignore_preflight: tuple[str, ...] = IGNORED_PREFLIGHT) -> None:
        self.runner = runner
        self.services = services
        self.version = version
        self.bin = BIN_DIR / version
        self.ignore_preflight = ignore_preflight  # the same list as the rendered nodeRegistration's

    def _env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

    def kubeadm(self, *args: str, timeout: float = 1800, check: bool = True) -> str:
        res = self.runner.run([str(self.bin / "kubeadm"), *args], sudo=True, env=self._env(), timeout=timeout,
                              check=False)
        if args[0] in ("init", "join"):  # its phase lines (with their durations) go to the profile's log
            log.info("kubeadm %s (%.1fs):\n%s", " ".join(args[:3]), res.duration, res.out[-6000:])
        if check and not res.ok:
            tail = " | ".join((res.err.strip() or res.out.strip()).splitlines()[-4:])
            raise MinisandError(f"kubeadm {args[0]} {args[1] if len(args) > 1 else ''} failed: {tail}".strip(),
                                hint="`minisand logs` shows the kubelet journal", code=ExitCode.KUBERNETES_ERROR)
        return res.out

    def exists(self, path: PurePosixPath) -> bool:
        return self.runner.run(["test", "-e", str(path)], sudo=True, check=False, timeout=30).ok

    def stop_stale_kubeadm(self, grace: float = 15) -> None:
        """A kubeadm left running by a minisand that was killed (its SSH session gone) is stopped, and gone, before
        anything else touches the node: a kubeadm init still writing manifests races a reset or a new init."""
        if not self.runner.run(["pkill", "-TERM", "-x", "kubeadm"], sudo=True, check=False, timeout=30).ok:
            return  # none was running
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self.runner.run(["pgrep", "-x", "kubeadm"], check=False, timeout=30).ok:
                return
            time.sleep(0.5)
        log.warning("a stale kubeadm did not stop within %.0fs of SIGTERM: killing it", grace)
        self.runner.run(["pkill", "-KILL", "-x", "kubeadm"], sudo=True, check=False, timeout=30)

    def reset(self) -> None:
        """Undo a partial init or join. kubeadm reset removes etcd's data only when it finds etcd's manifest, which
        an init interrupted early has not written yet, so the data directory this module configures goes too."""
        self.stop_stale_kubeadm()
        self.kubeadm("reset", "--force", "--cri-socket", CRI_SOCKET, timeout=600,
                     check=False)
        self.runner.run(["rm", "-rf", "--", str(ETCD_DATA_DIR)], sudo=True, check=False, timeout=120)

    def _ignore(self) -> str:
        return "--ignore-preflight-errors=" + ",".join(self.ignore_preflight)

    def init(self, config_yaml: str) -> None:
        """The phases up to kubelet-start (the kubelet then runs under the node's service manager), then etcd and
        the API server alone until the API server answers, then the controller manager and the scheduler, then
        the rest of init. On a slow (emulated) node the API server's start-up is CPU-bound: with the other
        components retrying against it at the same time its own loopback TLS handshakes time out and it exits,
        again and again. Each phase is idempotent, so a retried init picks up what exists."""
        self.runner.write_file(KUBEADM_YAML, config_yaml.encode(), mode=0o600)
        cfg = f"--config={KUBEADM_YAML}"
        self.kubeadm("init", "phase", "preflight", cfg, self._ignore())
        for phase in (("certs", "all"), ("kubeconfig", "all"), ("kubelet-start",)):
            self.kubeadm("init", "phase", *phase, cfg)
        self.services.daemon_reload()
        self.services.enable("kubelet")
        self.services.restart("kubelet")
        self.kubeadm("init", "phase", "etcd", "local", cfg)
        self.kubeadm("init", "phase", "control-plane", "apiserver", cfg)
        self.wait_apiserver()
        for component in ("controller-manager", "scheduler"):
            self.kubeadm("init", "phase", "control-plane", component, cfg)
        self._init_with_retry(cfg, [*EARLY_PHASES, "etcd", "control-plane"])
        self.runner.write_file(INIT_DONE, f"{self.version}\n".encode())

    def wait_apiserver(self, timeout: float = 1200, interval: float = 3) -> None:
        """Until the local API server answers /livez, its etcd check aside (bounded; kubeadm's own wait reports
        what is wrong). Under emulation etcd answers the API server's 2 s health probe late for minutes while
        everything else is up, and etcd itself is no client of the components started next."""
        argv = [str(self.bin / "kubectl"), "--kubeconfig", str(SUPER_ADMIN_KUBECONFIG), "--request-timeout=30s",
                "get", "--raw", "/livez?exclude=etcd"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.runner.run(argv, sudo=True, check=False, timeout=60).ok:
                return
            time.sleep(interval)
        log.warning("the API server did not answer /livez within %.0fs; kubeadm init goes on", timeout)

    def _init_with_retry(self, cfg: str, skip: list[str]) -> None:
        """kubeadm init; when it fails once the control plane's files are in place (an API call that timed out
        on a slow, emulated or busy machine: kubeadm gives some requests 10 s), the phases after them run once
        more (each creates or updates what it makes)."""
        skip_arg = [f"--skip-phases={','.join(skip)}"] if skip else []
        try:
            self.kubeadm("init", cfg, self._ignore(), *skip_arg, "--skip-token-print")
        except MinisandError as exc:
            if not self.exists(PurePosixPath("/etc/kubernetes/manifests/kube-apiserver.yaml")):
                raise
            log.warning("kubeadm init failed after writing the control plane (%s); running its remaining phases "
                        "again", exc.message)
            done = [*skip, *EARLY_PHASES, "etcd", "control-plane"]
            self.kubeadm("init", cfg, self._ignore(), f"--skip-phases={','.join(dict.fromkeys(done))}",
                         "--skip-token-print")

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
