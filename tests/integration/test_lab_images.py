"""The lab's images under a real containerd, pulled through mirrors exactly as a node would pull them.

A network namespace made by this test holds containerd (configured by minisand's own ContainerdSettings /
build_plan / apply) and a forwarder to the lab's loopback registry (Lab.expose_in_netns, the equivalent of
qemu's guestfwd). Pulls of registry.k8s.io, the Aliyun cn namespace and docker.io images are served by the lab,
proven by `?ns=<upstream>` in its access log; then the images run: nginx serves its page and `uname -r` works
in it, kube-proxy's iptables programs real nf_tables rules, and every control-plane binary starts."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.lab import Lab, LabEndpoints, debs
from minisand.config.model import MirrorConfig
from minisand.cruntime.apply import apply
from minisand.cruntime.plan import build_plan
from minisand.cruntime.pull import Crictl, pull_image
from tests.integration.helpers import tools
from tests.integration.helpers.containerd import ContainerdHost, short_workdir
from tests.integration.helpers.netns import NetNS, network_namespace

pytestmark = [pytest.mark.root, pytest.mark.timeout(5400)]
CN = "registry.cn-hangzhou.aliyuncs.com"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(run_dir=tmp_path_factory.mktemp("lab"))
    lab.start()
    yield lab
    assert lab.stop() == []


@pytest.fixture(scope="module")
def netns() -> Iterator[NetNS]:
    with network_namespace("msd-lab") as ns:
        yield ns


@pytest.fixture(scope="module")
def inside(lab: Lab, netns: NetNS) -> LabEndpoints:
    """The lab as containerd sees it from inside the namespace."""
    return lab.expose_in_netns(netns.path)


@pytest.fixture(scope="module")
def ctd(netns: NetNS, inside: LabEndpoints, lab: Lab) -> Iterator[ContainerdHost]:
    # runc from the host's own Debian release: forky's needs a newer glibc than this Debian 12 host has.
    runc = debs.host_tool(lab.cache, "runc", "usr/sbin/runc")
    host = ContainerdHost(netns=netns, workdir=short_workdir(), bin_dir=tools.containerd_bin().parent,
                          runc=runc, crictl_bin=Path(lab.manifest().crictl_bin) / "crictl")
    try:
        settings = host.settings(sandbox_image=f"registry.k8s.io/pause:{inside.pause_version}")
        host.install(build_plan(settings, config_file=host.config_file))
        url = f"http://{inside.registry}"
        mirrors = MirrorConfig(registry_mirrors=(f"registry.k8s.io={url}", f"{CN}={url}", url))
        apply(host.runner, build_plan(settings, mirrors, config_file=host.config_file), restart=host.restart,
              tools=host.tools, ready_timeout=20)
        yield host
    finally:
        host.cleanup()


def crictl(host: ContainerdHost, *args: str, timeout: float = 120) -> str:
    """crictl inside the namespace: exec and logs stream from containerd's server on the namespace's loopback."""
    out = subprocess.run(host.netns.argv(*host.crictl.argv(*args)), capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert out.returncode == 0, f"crictl {' '.join(args)}: {out.stderr.strip()}"
    return out.stdout


def served_for(lab: Lab, repository: str, upstream: str) -> bool:
    return any(r.repository == repository and r.kind == "manifests" and r.ns == upstream and r.status == 200
               for r in lab.registry_requests())


def test_pulls_through_mirrors_are_served_by_the_lab(lab: Lab, ctd: ContainerdHost, inside: LabEndpoints) -> None:
    for upstream_ref in inside.images:
        pull_image(ctd.runner, upstream_ref, crictl=Crictl(str(ctd.crictl_bin), ctd.socket), timeout=600)
    for repo in ("kube-apiserver", "kube-proxy", "etcd", "coredns/coredns", "pause"):
        assert served_for(lab, repo, "registry.k8s.io"), repo
    for repo in ("library/nginx", "library/busybox"):
        assert served_for(lab, repo, "docker.io"), repo
    cn_ref = f"{CN}/google_containers/kube-scheduler:{inside.kubernetes_version}"
    pull_image(ctd.runner, cn_ref, crictl=Crictl(str(ctd.crictl_bin), ctd.socket), timeout=600)
    assert served_for(lab, "google_containers/kube-scheduler", CN)


class Pods:
    """Host-network pods (the test's namespace is the node's network) run through CRI with crictl."""

    def __init__(self, host: ContainerdHost, workdir: Path) -> None:
        self.host = host
        self.workdir = workdir
        self.pods: list[str] = []

    def pod(self, name: str, privileged: bool = False, runtime: str = "") -> tuple[str, Path]:
        """A pod sandbox; runtime names a containerd runtime handler (empty: the default, runc)."""
        config = {"metadata": {"name": name, "namespace": "lab", "uid": f"{name}-uid", "attempt": 0},
                  "hostname": "", "log_directory": str(self.workdir / "logs" / name),
                  "linux": {"security_context": {"namespace_options": {"network": 2}, "privileged": privileged}}}
        path = self.workdir / f"{name}-pod.json"
        path.write_text(json.dumps(config))
        pod_id = crictl(self.host, "runp", *(["--runtime", runtime] if runtime else []), str(path)).strip()
        self.pods.append(pod_id)
        return pod_id, path

    def run(self, name: str, image: str, command: list[str] | None = None, privileged: bool = False,
            runtime: str = "") -> str:
        pod_id, pod_config = self.pod(name, privileged, runtime)
        config: dict[str, object] = {"metadata": {"name": name}, "image": {"image": image},
                                     "log_path": f"{name}.log",
                                     "linux": {"security_context": {"privileged": privileged}}}
        if command:
            config["command"] = command
        path = self.workdir / f"{name}-ctr.json"
        path.write_text(json.dumps(config))
        ctr_id = crictl(self.host, "create", pod_id, str(path), str(pod_config)).strip()
        crictl(self.host, "start", ctr_id)
        return ctr_id

    def wait_exit(self, ctr_id: str, timeout: float = 120) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = json.loads(crictl(self.host, "inspect", "-o", "json", ctr_id))["status"]
            if status["state"] == "CONTAINER_EXITED":
                return int(status["exitCode"]), crictl(self.host, "logs", ctr_id)
            time.sleep(0.3)
        raise AssertionError(f"container {ctr_id} still runs after {timeout:.0f}s")

    def cleanup(self) -> None:
        for pod_id in self.pods:
            subprocess.run(self.host.crictl.argv("stopp", pod_id), capture_output=True, timeout=60, check=False)
            subprocess.run(self.host.crictl.argv("rmp", "-f", pod_id), capture_output=True, timeout=60, check=False)


@pytest.fixture()
def pods(ctd: ContainerdHost, tmp_path: Path) -> Iterator[Pods]:
    p = Pods(ctd, tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


def test_nginx_serves_and_execs(pods: Pods, netns: NetNS, inside: LabEndpoints) -> None:
    ctr = pods.run("web", "docker.io/library/nginx:latest")
    netns.wait_port("127.0.0.1", 80, timeout=60)
    page = crictl(pods.host, "exec", ctr, "wget", "-qO-", "http://127.0.0.1/")
    assert "Welcome to nginx!" in page
    kernel = crictl(pods.host, "exec", ctr, "uname", "-r").strip()
    assert kernel == subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout.strip()


def test_kube_proxy_image_programs_nf_tables(pods: Pods, netns: NetNS, inside: LabEndpoints) -> None:
    image = f"registry.k8s.io/kube-proxy:{inside.kubernetes_version}"
    ctr = pods.run("ipt-add", image, ["/usr/sbin/iptables", "-t", "nat", "-N", "KUBE-LAB-TEST"], privileged=True)
    code, logs = pods.wait_exit(ctr)
    assert code == 0, logs
    ctr = pods.run("ipt-save", image, ["/usr/sbin/iptables-save", "-t", "nat"], privileged=True)
    code, logs = pods.wait_exit(ctr)
    assert code == 0 and ":KUBE-LAB-TEST" in logs and "nf_tables" in logs, logs
    ctr = pods.run("conntrack", image, ["/usr/sbin/conntrack", "-L"], privileged=True)
    code, logs = pods.wait_exit(ctr)
    assert code == 0, logs
    seen_by_host = netns.run("iptables-nft-save", "-t", "nat")  # the host's own tools see the kernel's rules
    assert ":KUBE-LAB-TEST" in seen_by_host.stdout


@pytest.mark.parametrize(("component", "command", "expect"), [
    ("kube-apiserver", ["kube-apiserver", "--version"], "Kubernetes {k8s}"),
    ("kube-controller-manager", ["kube-controller-manager", "--version"], "Kubernetes {k8s}"),
    ("kube-scheduler", ["kube-scheduler", "--version"], "Kubernetes {k8s}"),
    ("kube-proxy", ["kube-proxy", "--version"], "Kubernetes {k8s}"),
    ("etcd", ["etcd", "--version"], "etcd Version: {etcd}"),
    ("coredns/coredns", ["/coredns", "-version"], "CoreDNS-{coredns}"),
])
def test_control_plane_images_run(pods: Pods, inside: LabEndpoints, component: str, command: list[str],
                                  expect: str) -> None:
    tag = {"etcd": f"{inside.etcd_version.lstrip('v')}-0", "coredns/coredns": inside.coredns_version}.get(
        component, inside.kubernetes_version)
    ctr = pods.run(component.replace("/", "-"), f"registry.k8s.io/{component}:{tag}", command)
    code, logs = pods.wait_exit(ctr)
    wanted = expect.format(k8s=inside.kubernetes_version, etcd=inside.etcd_version.lstrip("v"),
                           coredns=inside.coredns_version.lstrip("v"))
    assert code == 0 and wanted in logs, logs

