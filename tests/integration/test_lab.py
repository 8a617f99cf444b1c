"""The offline lab against its own servers: binary mirror layout, checksums and Range requests; the registry at
its three layouts (registry.k8s.io, the Aliyun cn namespace, docker.io); stamped versions; and that the lab stops
every process it started. Traffic goes to 127.0.0.1 only.

The first run builds the lab (tens of minutes cold, cached by version under ~/.cache/minisand-lab)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from e2e.lab import Lab, LabEndpoints
from e2e.lab.builder import BuildManifest
from e2e.lab.layout import GVISOR_BINARIES
from e2e.lab.versions import K8S_BINARIES
from minisand import procs

pytestmark = [pytest.mark.root, pytest.mark.timeout(1800)]
OCI_ACCEPT = ", ".join(["application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json"])
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(run_dir=tmp_path_factory.mktemp("lab"))
    lab.start()
    pids = lab.pids
    yield lab
    assert lab.stop() == []
    for name, pid in pids.items():
        assert not procs.alive(pid), f"{name} (pid {pid}) still runs after Lab.stop()"


@pytest.fixture(scope="module")
def ep(lab: Lab) -> LabEndpoints:
    assert lab.endpoints is not None
    return lab.endpoints


@pytest.fixture(scope="module")
def manifest(lab: Lab) -> BuildManifest:
    return lab.manifest()


def sha(data_iter: Iterator[bytes], algo: str) -> str:
    h = hashlib.new(algo)
    for chunk in data_iter:
        h.update(chunk)
    return h.hexdigest()


def test_kubernetes_binaries_match_their_sha256(ep: LabEndpoints, manifest: BuildManifest) -> None:
    for name in K8S_BINARIES:
        url = ep.binary_url(name)
        expected = requests.get(url + ".sha256", timeout=10)
        assert expected.status_code == 200
        assert len(expected.text) == 64 and all(c in "0123456789abcdef" for c in expected.text)
        with requests.get(url, stream=True, timeout=60) as resp:
            assert resp.status_code == 200
            assert int(resp.headers["Content-Length"]) == (Path(manifest.kubernetes_bin) / name).stat().st_size
            assert sha(resp.iter_content(1 << 20), "sha256") == expected.text, name


def test_gvisor_bucket_layout_with_sha512(ep: LabEndpoints) -> None:
    assert ep.gvisor_release_url.endswith(f"/gvisor/releases/release/{ep.gvisor_release}/x86_64")
    for name in GVISOR_BINARIES:
        line = requests.get(ep.gvisor_url(name) + ".sha512", timeout=10).text
        digest, filename = line.split()
        assert filename == name
        with requests.get(ep.gvisor_url(name), stream=True, timeout=60) as resp:
            assert resp.status_code == 200
            assert sha(resp.iter_content(1 << 20), "sha512") == digest


def test_stable_txt_and_unknown_paths(ep: LabEndpoints) -> None:
    assert requests.get(f"{ep.binary_mirror}/release/stable.txt", timeout=10).text == ep.kubernetes_version
    assert requests.get(f"{ep.binary_mirror}/release/v9.9.9/bin/linux/amd64/kubelet", timeout=10).status_code == 404
    assert requests.get(f"{ep.binary_mirror}/release/../../etc/passwd", timeout=10).status_code == 404


def test_crictl_tarball(ep: LabEndpoints) -> None:
    data = requests.get(ep.crictl_url, timeout=60).content
    assert hashlib.sha256(data).hexdigest() == requests.get(ep.crictl_url + ".sha256", timeout=10).text
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["crictl"]


def test_range_requests_resume_a_download(ep: LabEndpoints, manifest: BuildManifest) -> None:
    url = ep.binary_url("kubectl")
    local = (Path(manifest.kubernetes_bin) / "kubectl").read_bytes()
    part = requests.get(url, headers={"Range": "bytes=1000-1999"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(local)}"
    assert part.content == local[1000:2000]
    half = len(local) // 2
    first = requests.get(url, headers={"Range": f"bytes=0-{half - 1}"}, timeout=60).content
    rest = requests.get(url, headers={"Range": f"bytes={half}-"}, timeout=60)
    assert rest.status_code == 206
    assert hashlib.sha256(first + rest.content).hexdigest() == hashlib.sha256(local).hexdigest()
    tail = requests.get(url, headers={"Range": "bytes=-16"}, timeout=10)
    assert tail.content == local[-16:]
    beyond = requests.get(url, headers={"Range": f"bytes={len(local)}-"}, timeout=10)
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(local)}"


def test_access_log_records_what_was_fetched(lab: Lab, ep: LabEndpoints) -> None:
    url = ep.binary_url("kubeadm") + ".sha256"
    requests.get(url, timeout=10)
    requests.get(url, headers={"Range": "bytes=0-9"}, timeout=10)
    path = url.removeprefix(ep.binary_mirror)
    records = [r for r in lab.binary_requests() if r.path == path]
    assert [(r.method, r.status, r.bytes, r.range) for r in records[-2:]] == \
        [("GET", 200, 64, None), ("GET", 206, 10, "bytes=0-9")]


def test_injected_cut_then_resume(lab: Lab, ep: LabEndpoints, manifest: BuildManifest) -> None:
    url = ep.binary_url("kube-scheduler")
    path = url.removeprefix(ep.binary_mirror)
    local = (Path(manifest.kubernetes_bin) / "kube-scheduler").read_bytes()
    lab.inject_fault(path, cut_after=1 << 20, times=1)
    got = b""
    with requests.get(url, stream=True, timeout=60) as resp, pytest.raises(requests.exceptions.RequestException):
        for chunk in resp.iter_content(1 << 16):
            got += chunk
    assert 0 < len(got) < len(local)
    rest = requests.get(url, headers={"Range": f"bytes={len(got)}-"}, timeout=60)
    assert rest.status_code == 206 and got + rest.content == local
    faults = [r.fault for r in lab.binary_requests() if r.path == path]
    assert faults[-2:] == ["cut", None]


def test_injected_wrong_checksum_and_error_status(lab: Lab, ep: LabEndpoints, manifest: BuildManifest) -> None:
    url = ep.binary_url("kubelet")
    path = url.removeprefix(ep.binary_mirror)
    real = (Path(manifest.kubernetes_bin) / "kubelet.sha256").read_text()
    lab.inject_fault(path + ".sha256", body="0" * 64, times=1)
    assert requests.get(url + ".sha256", timeout=10).text == "0" * 64
    assert requests.get(url + ".sha256", timeout=10).text == real
    lab.inject_fault(path, status=503, times=2)
    assert [requests.head(url, timeout=10).status_code for _ in range(3)] == [503, 503, 200]
    lab.clear_faults()


def test_registry_serves_every_image_at_every_layout(ep: LabEndpoints, manifest: BuildManifest) -> None:
    repos = {repo for image in manifest.images for repo in image.repositories}
    assert {"kube-apiserver", "coredns/coredns", "etcd", "pause", "google_containers/kube-apiserver",
            "google_containers/coredns", "library/nginx", "library/busybox"} <= repos
    for image in manifest.images:
        for repo in image.repositories:
            resp = requests.get(f"http://{ep.registry}/v2/{repo}/manifests/{image.tag}",
                                headers={"Accept": OCI_ACCEPT}, timeout=10)
            assert resp.status_code == 200, (repo, image.tag)
            assert resp.headers["Docker-Content-Digest"] == image.digest
            config_digest = resp.json()["config"]["digest"]
            config = requests.get(f"http://{ep.registry}/v2/{repo}/blobs/{config_digest}", timeout=10).json()
            assert (config["os"], config["architecture"]) == ("linux", "amd64")


@pytest.mark.parametrize("ref", ["kube-apiserver:{k8s}", "coredns/coredns:{coredns}", "etcd:{etcd}-0",
                                 "google_containers/coredns:{coredns}", "google_containers/pause:{pause}",
                                 "library/nginx:latest", "library/busybox:1.35.0"])
def test_skopeo_inspect(ep: LabEndpoints, ref: str) -> None:
    ref = ref.format(k8s=ep.kubernetes_version, coredns=ep.coredns_version, etcd=ep.etcd_version.lstrip("v"),
                     pause=ep.pause_version)
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ep.registry}/{ref}"],
                         capture_output=True, text=True, timeout=60, check=True)
    info = json.loads(out.stdout)
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert ref.rsplit(":", 1)[0] in info["Name"]


def test_image_entrypoints(ep: LabEndpoints) -> None:
    def config(repo: str, tag: str) -> dict[str, object]:
        out = subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false",
                              f"docker://{ep.registry}/{repo}:{tag}"], capture_output=True, text=True, timeout=60,
                             check=True)
        cfg: dict[str, object] = json.loads(out.stdout)["config"]
        return cfg

    assert config("pause", ep.pause_version)["Entrypoint"] == ["/pause"]
    assert config("coredns/coredns", ep.coredns_version)["Entrypoint"] == ["/coredns"]
    assert config("kube-apiserver", ep.kubernetes_version)["Entrypoint"] == ["/usr/local/bin/kube-apiserver"]
    nginx = config("library/nginx", "latest")
    assert nginx["Cmd"] == ["nginx", "-g", "daemon off;"] and "80/tcp" in nginx["ExposedPorts"]  # type: ignore[operator]


def test_mirror_pulls_are_attributed_by_ns(lab: Lab, ep: LabEndpoints) -> None:
    resp = requests.get(f"http://{ep.registry}/v2/library/busybox/manifests/1.35.0?ns=docker.io",
                        headers={"Accept": OCI_ACCEPT}, timeout=10)
    assert resp.status_code == 200
    records = [r for r in lab.registry_requests() if r.ns == "docker.io"]
    assert records and records[-1].repository == "library/busybox" and records[-1].status == 200
    assert records[-1].kind == "manifests" and records[-1].reference == "1.35.0"


def test_stamped_versions(manifest: BuildManifest) -> None:
    k8s = Path(manifest.kubernetes_bin)

    def run(*argv: str) -> str:
        return subprocess.run(list(argv), capture_output=True, text=True, check=True, timeout=60).stdout

    assert run(str(k8s / "kubelet"), "--version").strip() == f"Kubernetes {manifest.kubernetes}"
    assert run(str(k8s / "kubeadm"), "version", "-o", "short").strip() == manifest.kubernetes
    assert f"Client Version: {manifest.kubernetes}" in run(str(k8s / "kubectl"), "version", "--client")
    assert f"crictl version {manifest.crictl}" in run(str(Path(manifest.crictl_bin) / "crictl"), "--version")
    assert f"release-{manifest.gvisor_release}" in run(str(Path(manifest.gvisor_bin) / "runsc"), "--version")


def test_the_gvisor_build_sandboxes(manifest: BuildManifest, tmp_path: Path) -> None:
    """runsc (systrap, no KVM) runs a program under gVisor's kernel; the shim binary starts and names itself.

    Through containerd the shim cannot start on this host: it lowers its own oom_score_adj to -999, which root
    here may not do (no CAP_SYS_RESOURCE). Guests have the capability; the gVisor e2e demo covers that path."""
    gvisor = Path(manifest.gvisor_bin)
    host_kernel = os.uname().release
    out = subprocess.run([str(gvisor / "runsc"), "--network=none", "--platform=systrap", f"--root={tmp_path}",
                          "do", "/bin/uname", "-r"], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() and out.stdout.strip() != host_kernel, out.stdout
    shim = subprocess.run([str(gvisor / "containerd-shim-runsc-v1"), "-v"], capture_output=True, text=True,
                          timeout=30, check=True)
    assert "containerd-shim-runsc-v1" in shim.stdout


def test_image_layers_hold_the_programs(ep: LabEndpoints, manifest: BuildManifest) -> None:
    """The pause and nginx images' layers contain what their entrypoints and `kubectl exec` need."""
    by_name = {i.name: i for i in manifest.images}
    for name, must in (("pause", {"pause"}),
                       ("nginx", {"usr/sbin/nginx", "usr/bin/busybox", "usr/bin/uname", "usr/bin/sh",
                                  "usr/bin/wget", "etc/nginx/nginx.conf", "usr/share/nginx/html/index.html"})):
        image = by_name[name]
        repo = image.repositories[0]
        man = requests.get(f"http://{ep.registry}/v2/{repo}/manifests/{image.tag}",
                           headers={"Accept": OCI_ACCEPT}, timeout=10).json()
        names: set[str] = set()
        for layer in man["layers"]:
            blob = requests.get(f"http://{ep.registry}/v2/{repo}/blobs/{layer['digest']}", timeout=60).content
            with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
                names |= {n.lstrip("./") for n in tar.getnames()}
        assert must <= names, must - names


def test_second_lab_reuses_registry_and_stops_cleanly(tmp_path: Path) -> None:
    """Population is idempotent (nothing pushed again) and stop() leaves no process listening."""
    second = Lab(run_dir=tmp_path / "second")
    ep = second.start()
    try:
        pids = second.pids
        assert set(pids) == {"binserver", "registry"} and all(procs.alive(p) for p in pids.values())
        pushes = [r for r in second.registry_requests() if r.method in ("PUT", "POST", "PATCH")]
        assert pushes == []
    finally:
        assert second.stop() == []
    for pid in pids.values():
        assert not procs.alive(pid)
    for address in (ep.binary_mirror.removeprefix("http://"), ep.registry):
        with pytest.raises(ConnectionRefusedError):  # nothing listens any more (TIME_WAIT may linger)
            socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])), timeout=2).close()


def test_cli_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    run = [sys.executable, "-m", "e2e.lab"]
    up = subprocess.run([*run, "up", "--state", str(state)], capture_output=True, text=True, env=env,
                        timeout=600, check=False)
    try:
        assert up.returncode == 0, up.stderr
        endpoints = json.loads(up.stdout)
        assert "--binary-mirror=" + endpoints["binary_mirror"] in up.stderr
        status = subprocess.run([*run, "status", "--state", str(state)], capture_output=True, text=True,
                                env=env, timeout=60, check=False)
        assert status.returncode == 0 and json.loads(status.stdout)["running"] is True
        assert requests.get(endpoints["binary_mirror"] + "/release/stable.txt", timeout=10).status_code == 200
        pids = json.loads(state.read_text())["pids"]
    finally:
        down = subprocess.run([*run, "down", "--state", str(state)], capture_output=True, text=True, env=env,
                              timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert not state.exists()
    for pid in pids.values():
        assert not procs.alive(int(pid))
