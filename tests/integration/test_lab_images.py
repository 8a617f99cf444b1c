"""The lab's images under a real containerd, pulled through mirrors exactly as a node would pull them.

A network namespace made by this test holds containerd (configured by minisand's own ContainerdSettings /
build_plan / apply) and a forwarder to the lab's loopback registry (Lab.expose_in_netns, the equivalent of
qemu's guestfwd). Pulls of registry.k8s.io, the Aliyun cn namespace and docker.io images are served by the lab,
proven by `?ns=<upstream>` in its access log; then the images run: nginx serves its page and `uname -r` works
in it, kube-proxy's iptables programs real nf_tables rules, and every control-plane binary starts."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from e2e.lab import Lab, LabEndpoints
from minisand.cruntime.pull import Crictl, pull_image
from tests.integration.helpers.containerd import ContainerdHost
from tests.integration.helpers.labpods import CN, Pods, crictl, served_for
from tests.integration.helpers.netns import NetNS

pytestmark = [pytest.mark.root, pytest.mark.timeout(5400)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    # the core lab only: test_lab_pieces.py runs the optional pieces' images
    lab = Lab(run_dir=tmp_path_factory.mktemp("lab"), pieces=())
    lab.start()
    yield lab
    assert lab.stop() == []


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

