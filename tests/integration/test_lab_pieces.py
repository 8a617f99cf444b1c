"""The lab's optional pieces under a real containerd, pulled through mirrors as a node pulls them: Headlamp serves its
UI on 4466, the distribution registry image serves /v2/ and stores a pushed image, the e2e test images do what the
conformance specs ask of them (agnhost's netexec answering curl, busybox keeping dashed env names, sysctl, ip,
nonewprivs' setuid nnp), minikube's storage-provisioner runs; e2e.test lists the images and specs the subset needs.

Pulls go through containerd's mirror config in a network namespace this test made (the lab relayed into it as a
VM's guestfwd would); `?ns=<upstream>` in the lab registry's log proves which upstream each pull stood in for."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.lab import Lab, LabEndpoints, e2etest, extras, registry
from e2e.lab.builder import BuildManifest
from minisand.cruntime.pull import Crictl, pull_image
from tests.integration.helpers.containerd import ContainerdHost
from tests.integration.helpers.labpods import CN, Pods, crictl, served_for
from tests.integration.helpers.netns import NetNS

pytestmark = [pytest.mark.root, pytest.mark.lab_pieces, pytest.mark.timeout(5400)]
HEADLAMP = "ghcr.io/headlamp-k8s/headlamp:v0.45.0"
REGISTRY = f"docker.io/library/registry:{extras.DISTRIBUTION_VERSION.lstrip('v')}"
E2E = "registry.k8s.io/e2e-test-images"
AGNHOST = f"{E2E}/agnhost:{extras.AGNHOST_TAG}"
BUSYBOX = f"{E2E}/busybox:{extras.E2E_BUSYBOX_TAG}"
NONEWPRIVS = f"{E2E}/nonewprivs:{extras.NONEWPRIVS_TAG}"
PROVISIONER = "gcr.io/k8s-minikube/storage-provisioner:v5"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(run_dir=tmp_path_factory.mktemp("lab"), pieces=extras.PIECES)
    lab.start()
    yield lab
    assert lab.stop() == []


@pytest.fixture(scope="module")
def manifest(lab: Lab) -> BuildManifest:
    return lab.manifest()


def pull(host: ContainerdHost, ref: str) -> None:
    pull_image(host.runner, ref, crictl=Crictl(str(host.crictl_bin), host.socket), timeout=600)


def http_get(netns: NetNS, url: str) -> tuple[int, str]:
    """GET url from inside the namespace: (status, body)."""
    probe = ("import sys, urllib.request, urllib.error\n"
             "try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=20); code, body = r.status, r.read()\n"
             "except urllib.error.HTTPError as e:\n    code, body = e.code, e.read()\n"
             "print(code); sys.stdout.write(body.decode(errors='replace'))\n")
    out = netns.run(sys.executable, "-c", probe, url, timeout=60)
    status, _, body = out.stdout.partition("\n")
    return int(status), body


def test_every_piece_is_served_at_every_repository_and_tag(lab: Lab, manifest: BuildManifest) -> None:
    assert manifest.pieces == extras.PIECES
    pieces = [i for i in manifest.images if i.upstream.split(":")[0].rsplit("/", 1)[-1] in
              ("registry", "headlamp", "agnhost", "busybox", "nonewprivs", "storage-provisioner")
              and not i.upstream.startswith("docker.io/library/busybox")]
    assert len(pieces) == 6, [i.upstream for i in pieces]
    assert lab.endpoints is not None
    for image in pieces:
        for repo in image.repositories:
            for tag in image.tags:
                assert registry.remote_digest(lab.endpoints.registry, repo, tag) == image.digest, (repo, tag)


def test_pieces_are_pulled_through_their_upstreams_mirrors(lab: Lab, ctd: ContainerdHost,
                                                           inside: LabEndpoints) -> None:
    wanted = [HEADLAMP, REGISTRY, "docker.io/library/registry:3", AGNHOST, f"{E2E}/agnhost:2.55", BUSYBOX,
              NONEWPRIVS, PROVISIONER]
    assert set(wanted) <= set(inside.images)
    for ref in wanted:
        pull(ctd, ref)
    k8s = "registry.k8s.io"
    for repo, upstream in (("headlamp-k8s/headlamp", "ghcr.io"), ("library/registry", "docker.io"),
                           ("e2e-test-images/agnhost", k8s), ("e2e-test-images/busybox", k8s),
                           ("e2e-test-images/nonewprivs", k8s), ("k8s-minikube/storage-provisioner", "gcr.io")):
        assert served_for(lab, repo, upstream), (repo, upstream)
    pull(ctd, f"{CN}/google_containers/headlamp:v0.45.0")  # the Aliyun-style name, should a preset map it
    assert served_for(lab, "google_containers/headlamp", CN)


def test_headlamp_serves_its_ui_on_4466(pods: Pods, netns: NetNS) -> None:
    ctr = pods.run("headlamp", HEADLAMP)  # the image's own entrypoint, user and HOME; no cluster to talk to
    netns.wait_port("127.0.0.1", 4466, timeout=120)
    status, page = http_get(netns, "http://127.0.0.1:4466/")
    assert status == 200 and "<title>Headlamp</title>" in page, page[:500]
    status, config = http_get(netns, "http://127.0.0.1:4466/config")
    assert status == 200 and "clusters" in json.loads(config), config[:500]
    ident = pods.exec(ctr, "id")
    assert ident.returncode == 0 and "uid=100(headlamp) gid=101(headlamp)" in ident.stdout, ident
    listing = pods.exec(ctr, "ls", "/headlamp")
    assert listing.stdout.split() == ["frontend", "headlamp-server", "plugins", "static-plugins"], listing


def test_registry_image_serves_v2_and_stores_a_push(pods: Pods, netns: NetNS, manifest: BuildManifest) -> None:
    ctr = pods.run("registry", REGISTRY)
    netns.wait_port("127.0.0.1", 5000, timeout=60)
    status, body = http_get(netns, "http://127.0.0.1:5000/v2/")
    assert (status, body.strip()) == (200, "{}")
    pause = next(i for i in manifest.images if i.name == "pause")
    netns.run("skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{pause.layout}:{pause.tag}",
              "docker://127.0.0.1:5000/lab/pause:pushed", timeout=120)
    status, body = http_get(netns, "http://127.0.0.1:5000/v2/_catalog")
    assert status == 200 and json.loads(body)["repositories"] == ["lab/pause"]
    stored = pods.exec(ctr, "ls", "/var/lib/registry/docker/registry/v2/repositories/lab/pause/_manifests/tags")
    assert stored.stdout.split() == ["pushed"], stored
    version = pods.exec(ctr, "registry", "--version")
    assert extras.DISTRIBUTION_VERSION in version.stdout, version


def test_agnhost_pauses_by_default_and_netexec_answers_curl(pods: Pods, netns: NetNS) -> None:
    paused = pods.run("agnhost-pause", AGNHOST)
    tools = pods.exec(paused, "sh", "-c", "curl --version && nsenter --version && /agnhost-2 --help >/dev/null")
    assert tools.returncode == 0 and "curl" in tools.stdout and "nsenter" in tools.stdout, tools
    spec = json.loads(crictl(pods.host, "inspect", "-o", "json", paused))["info"]["runtimeSpec"]
    assert spec["process"]["args"] == ["/agnhost", "pause"]  # the image's entrypoint and default argument
    pods.run("netexec", AGNHOST, args=["netexec", "--http-port=8080"])
    netns.wait_port("127.0.0.1", 8080, timeout=60)
    echo = pods.exec(paused, "curl", "-sS", "http://127.0.0.1:8080/echo?msg=poststart")  # as lifecycle hooks do
    assert echo.returncode == 0 and echo.stdout.strip() == "poststart", echo


def test_e2e_busybox_keeps_dashed_env_names_and_has_the_specs_tools(pods: Pods, netns: NetNS) -> None:
    script = "env; sysctl -n kernel.ostype; /bin/true && ! /bin/false && echo true-false-ok"
    ctr = pods.run("bb-env", BUSYBOX, ["sh", "-c", script], env={"p-data-1": "value-1", "CONFIG_DATA_1": "value-1"})
    code, logs = pods.wait_exit(ctr)
    assert code == 0, logs
    for line in ("p-data-1=value-1", "CONFIG_DATA_1=value-1", "Linux", "true-false-ok"):
        assert line in logs.splitlines(), (line, logs)
    ctr = pods.run("bb-ip", BUSYBOX, ["sh", "-c", "ip link add lab-br0 type bridge && ip -o link show lab-br0"],
                   privileged=True)
    code, logs = pods.wait_exit(ctr)
    assert code == 0 and "lab-br0" in logs, logs
    host_has_dummy = netns.run("ip", "link", "add", "probe-dummy", "type", "dummy", check=False).returncode == 0
    ctr = pods.run("bb-dummy", BUSYBOX, ["sh", "-c", "ip link add lab-dummy0 type dummy 2>&1"], privileged=True)
    code, logs = pods.wait_exit(ctr)
    if host_has_dummy:
        assert code == 0, logs
    else:  # this host's kernel has no dummy driver: busybox's ip parsed the request and the kernel refused it
        assert "RTNETLINK answers: Operation not supported" in logs, logs


@pytest.mark.parametrize(("no_new_privs", "expect"), [(False, "Effective uid: 0"), (True, "Effective uid: 1000")])
def test_nonewprivs_nnp_is_setuid_root(pods: Pods, no_new_privs: bool, expect: str) -> None:
    ctr = pods.run(f"nnp-{int(no_new_privs)}", NONEWPRIVS, user=1000, no_new_privs=no_new_privs)
    code, logs = pods.wait_exit(ctr)
    assert code == 0 and expect in logs, logs


def test_storage_provisioner_runs(pods: Pods) -> None:
    """The image's CMD starts minikube's provisioner, which (outside a cluster) stops for want of its API server."""
    ctr = pods.run("provisioner", PROVISIONER)
    code, logs = pods.wait_exit(ctr)
    assert code != 0 and "in-cluster configuration" in logs, (code, logs)
    ctr = pods.run("provisioner-help", PROVISIONER, args=["--help"])
    code, logs = pods.wait_exit(ctr)
    assert "Usage of /storage-provisioner" in logs, (code, logs)


def test_e2e_test_lists_the_images_the_lab_serves(lab: Lab, manifest: BuildManifest, inside: LabEndpoints) -> None:
    binary = Path(manifest.e2e_test)
    assert binary.is_file() and inside.e2e_test == str(binary) and lab.e2e_test() == binary
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=120, check=True)
    assert version.stdout.strip() == manifest.kubernetes
    listed = set(e2etest.list_images(binary))
    subset = {AGNHOST, f"{E2E}/agnhost:2.55", BUSYBOX, NONEWPRIVS, f"registry.k8s.io/pause:{extras.E2E_PAUSE_TAG}"}
    assert subset <= listed, subset - listed
    assert subset <= set(inside.images), subset - set(inside.images)


SUBSET_SPECS = (
    "[sig-node] RuntimeClass should support RuntimeClasses API operations [Conformance]",
    "[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]",
    "[sig-node] Containers should be able to override the image's default command and arguments "
    "[NodeConformance] [Conformance]",
    "[sig-node] Container Lifecycle Hook when create a pod with lifecycle hook should execute poststart http hook "
    "properly [NodeConformance] [Conformance]",
    "[sig-node] ConfigMap should be consumable via the environment [NodeConformance] [Conformance]",
    "[sig-node] Sysctls [LinuxOnly] [NodeConformance] should support sysctls [Environment:NotInUserNS] "
    "[Conformance]",
    "[sig-node] Secrets should be consumable via the environment [NodeConformance] [Conformance]",
)


def list_specs(binary: str) -> list[str]:
    """`e2e.test --list-tests`: one "    <file>:<line>: <full spec name>" line per spec."""
    out = subprocess.run([binary, "--list-tests"], capture_output=True, text=True, timeout=300, check=True)
    return [line.strip().split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("    ")]


def test_e2e_test_lists_the_subsets_specs(manifest: BuildManifest) -> None:
    specs = list_specs(manifest.e2e_test)
    missing = [s for s in SUBSET_SPECS if s not in specs]
    assert not missing, missing
    sig_node_conformance = [s for s in specs if s.startswith("[sig-node]") and "[Conformance]" in s]
    assert len(sig_node_conformance) >= 100, len(sig_node_conformance)
