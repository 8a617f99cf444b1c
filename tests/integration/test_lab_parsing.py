"""The lab's pure parts: URL layouts, Range parsing, registry access-log parsing, version arithmetic.
No network, no subprocess: these run in seconds and guard the contracts the lab's servers rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.lab.binserver import parse_range
from e2e.lab.errors import LabError
from e2e.lab.gomod import GoProgram, render_go_mod
from e2e.lab.layout import crictl_path, gvisor_dir, k8s_binary_path
from e2e.lab.programs import kubernetes, staging_modules
from e2e.lab.registry import parse_access_line
from e2e.lab.versions import gvisor_release, parse_images_list, staging_version

K8S_MOD_EXCERPT = """module k8s.io/kubernetes

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/cri-api => ./staging/src/k8s.io/cri-api
)

require k8s.io/utils v0.0.0-20260210185600-b8788abfbbc2
"""


def test_layouts_match_upstream_urls() -> None:
    assert k8s_binary_path("v1.36.4", "kubelet") == "/release/v1.36.4/bin/linux/amd64/kubelet"
    assert gvisor_dir("20260905") == "/gvisor/releases/release/20260905/x86_64"
    assert crictl_path("v1.36.0") == \
        "/kubernetes-sigs/cri-tools/releases/download/v1.36.0/crictl-v1.36.0-linux-amd64.tar.gz"


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 100, None),
    ("bytes=0-9", 100, (0, 9)),
    ("bytes=90-", 100, (90, 99)),
    ("bytes=-10", 100, (90, 99)),
    ("bytes=50-1000", 100, (50, 99)),
    ("bytes=100-", 100, "unsatisfiable"),
    ("bytes=20-10", 100, "unsatisfiable"),
    ("bytes=0-1,5-6", 100, None),  # multiple ranges: the whole entity
    ("items=0-1", 100, None),
])
def test_parse_range(header: str | None, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


def test_registry_access_line_with_mirror_namespace() -> None:
    line = ('127.0.0.1 - - [23/Nov/2026:16:50:00 +0000] "GET /v2/google_containers/kube-apiserver/manifests/'
            'v1.36.4?ns=registry.cn-hangzhou.aliyuncs.com HTTP/1.1" 200 1234 "" "containerd/v2.1.9"')
    rec = parse_access_line(line)
    assert rec is not None
    assert (rec.method, rec.status, rec.ns) == ("GET", 200, "registry.cn-hangzhou.aliyuncs.com")
    assert rec.repository == "google_containers/kube-apiserver"
    assert (rec.kind, rec.reference) == ("manifests", "v1.36.4")
    assert rec.path == "/v2/google_containers/kube-apiserver/manifests/v1.36.4"


def test_registry_application_lines_are_not_requests() -> None:
    assert parse_access_line('time="2026-11-23T16:50:00Z" level=info msg="listening on 127.0.0.1:5000"') is None
    rec = parse_access_line('127.0.0.1 - - [23/Nov/2026:16:50:00 +0000] "HEAD /v2/ HTTP/1.1" 401 0 "" "x"')
    assert rec is not None and rec.repository is None and rec.ns is None and rec.status == 401


def test_staging_modules_become_published_versions() -> None:
    assert staging_modules(K8S_MOD_EXCERPT) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/cri-api"]
    assert staging_version("v1.36.4") == "v0.36.4"
    prog = kubernetes("v1.36.4", K8S_MOD_EXCERPT, "", "2026-08-20T11:51:43Z")
    mod = render_go_mod(prog)
    assert "\tk8s.io/kubernetes v1.36.4\n" in mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.36.4\n" in mod
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.4" in prog.ldflags
    assert "-X k8s.io/client-go/pkg/version.gitMinor=36" in prog.ldflags
    assert len(prog.packages) == 7


def test_wrapper_without_requirements_renders() -> None:
    mod = render_go_mod(GoProgram(name="pause", requires=(), packages=(), main_source="package main"))
    assert mod.startswith("module minisand.lab/pause\n")


def test_kubeadm_image_list_gives_component_versions() -> None:
    text = "\n".join([
        "registry.k8s.io/kube-apiserver:v1.36.4", "registry.k8s.io/kube-controller-manager:v1.36.4",
        "registry.k8s.io/kube-scheduler:v1.36.4", "registry.k8s.io/kube-proxy:v1.36.4",
        "registry.k8s.io/coredns/coredns:v1.14.2", "registry.k8s.io/pause:3.10.2", "registry.k8s.io/etcd:3.6.8-0"])
    images = parse_images_list(text)
    assert (images.etcd_version, images.coredns_version, images.pause_tag) == ("v3.6.8", "v1.14.2", "3.10.2")
    with pytest.raises(LabError):
        parse_images_list("registry.k8s.io/pause:3.10.2")


def test_gvisor_release_is_the_pseudo_version_date() -> None:
    assert gvisor_release("v0.0.0-20260905035102-160fafc42237") == "20260905"
    with pytest.raises(LabError):
        gvisor_release("v1.0.0")


def test_build_step_failure_leaves_no_artifact(tmp_path: Path) -> None:
    from e2e.lab.cache import LabCache, build_step, is_complete

    cache = LabCache(tmp_path)
    dest = cache.artifact("thing", "v1")

    def failing(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        build_step(cache, "thing", dest, failing)
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".tmp-")] == []
    def succeeding(tmp: Path) -> None:
        (tmp / "ok").write_text("y")

    build_step(cache, "thing", dest, succeeding)
    assert is_complete(dest) and (dest / "ok").read_text() == "y"
    build_step(cache, "thing", dest, failing)  # complete: not rebuilt, so the failing build never runs
