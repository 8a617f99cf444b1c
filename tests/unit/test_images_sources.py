"""Mirror presets, repository choice, image rewriting, kubeadm's image list and binary/ISO sources.
Golden files: tests/unit/golden/images/ (MINISAND_UPDATE_GOLDEN=1 rewrites them); recorded output of a real kubeadm:
tests/unit/fixtures/kubeadm-images/."""

from __future__ import annotations

import pytest

from minisand.config.model import MirrorConfig
from minisand.errors import ExitCode, MinisandError
from minisand.images import kubeadm
from minisand.images.presets import ALIYUN_IMAGE_REPOSITORY, known_countries, preset_for
from minisand.images.ref import ImageRef, parse_image
from minisand.images.sources import (
    ImageMirrors,
    binary_sources,
    choose_repository,
    iso_urls,
    rewrite_image,
    source_candidates,
    validate_mirrors,
)
from tests.unit.golden import assert_golden, fixture

VERSION = "v1.36.4"
# Addon images of the kinds minisand's addons use: Kubernetes-registry ones (nested and flat) and others.
ADDON_IMAGES = ("registry.k8s.io/metrics-server/metrics-server:v0.7.2", "registry.k8s.io/pause:3.10.2",
                "k8s.gcr.io/echoserver:1.4", "docker.io/library/busybox:1.36", "nginx",
                "quay.io/kata-containers/kata-deploy:3.2.0",
                "registry.k8s.io/ingress-nginx/controller@sha256:" + "d" * 64)


def image_list(repository: str) -> str:
    mirrors = ImageMirrors(repository=repository)
    lines = [f"# kubeadm config images list --kubernetes-version {VERSION} --image-repository {repository}"]
    lines += [str(i) for i in kubeadm.control_plane_images(VERSION, repository)]
    lines += ["# addon images after rewrite_image()"]
    lines += [f"{a} -> {rewrite_image(a, mirrors)}" for a in ADDON_IMAGES]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("name", "mirrors"), [
    ("global", MirrorConfig()),
    ("cn", MirrorConfig(image_mirror_country="cn")),
    ("custom", MirrorConfig(image_repository="mirror.example.com:5000/k8s")),
])
def test_rewritten_image_lists_golden(name: str, mirrors: MirrorConfig) -> None:
    candidates = source_candidates(mirrors)
    repo, warning = choose_repository(candidates.repository_candidates, lambda r: True)
    assert warning is None
    assert_golden("images", f"{name}.txt", image_list(repo))


def test_kubeadm_coredns_is_nested_only_in_the_default_repository() -> None:
    assert str(kubeadm.coredns_image(VERSION)) == "registry.k8s.io/coredns/coredns:v1.14.2"
    assert str(kubeadm.coredns_image(VERSION, ALIYUN_IMAGE_REPOSITORY)) == f"{ALIYUN_IMAGE_REPOSITORY}/coredns:v1.14.2"
    assert str(kubeadm.coredns_image(VERSION, "registry.k8s.io/")) == "registry.k8s.io/coredns/coredns:v1.14.2"


@pytest.mark.parametrize("minor", sorted(kubeadm.KUBEADM_PINS))
def test_every_supported_minor_lists_seven_images_at_its_version(minor: tuple[int, int]) -> None:
    version = f"v{minor[0]}.{minor[1]}.3"
    images = kubeadm.control_plane_images(version, "example.com/k8s")
    names = [i.repository for i in images]
    assert names == ["k8s/kube-apiserver", "k8s/kube-controller-manager", "k8s/kube-scheduler", "k8s/kube-proxy",
                     "k8s/coredns", "k8s/pause", "k8s/etcd"]
    assert all(i.tag == version for i in images[:4])
    pins = kubeadm.KUBEADM_PINS[minor]
    assert [i.tag for i in images[4:]] == [pins.coredns, pins.pause, pins.etcd]


def test_kubeadm_pins_v1_36_match_kubeadm_v1_36_4() -> None:
    pins = kubeadm.pins_for("v1.36.4")
    assert (pins.coredns, pins.pause, pins.etcd) == ("v1.14.2", "3.10.2", "3.6.8-0")


def test_unsupported_minor_is_bad_input_listing_supported() -> None:
    with pytest.raises(MinisandError) as err:
        kubeadm.pins_for("v1.20.1")
    assert err.value.code == ExitCode.BAD_INPUT
    assert "v1.33" in err.value.hint and "v1.37" in err.value.hint


def test_image_tag_replaces_plus() -> None:
    assert kubeadm.image_tag("v1.36.4+k3s1") == "v1.36.4_k3s1"
    assert str(kubeadm.control_plane_images("v1.36.4+k3s1")[0]) == "registry.k8s.io/kube-apiserver:v1.36.4_k3s1"


def test_unknown_country_lists_the_known_ones() -> None:
    with pytest.raises(MinisandError) as err:
        preset_for("xx")
    assert err.value.code == ExitCode.BAD_INPUT
    for country in known_countries():
        assert country in err.value.hint
    assert preset_for(None).country == "global"
    assert preset_for(" CN ").country == "cn"
    assert preset_for("cn").gvisor_base is None  # no cn gVisor mirror exists: said, not invented


def test_choose_repository_takes_the_first_that_answers_in_order() -> None:
    asked: list[str] = []

    def probe(repo: str) -> bool:
        asked.append(repo)
        return repo == "b.example/k8s"

    assert choose_repository(["a.example/k8s", "b.example/k8s", "c.example/k8s"], probe) == ("b.example/k8s", None)
    assert asked == ["a.example/k8s", "b.example/k8s"]


def test_choose_repository_falls_back_to_the_first_with_a_warning() -> None:
    repo, warning = choose_repository(["a.example/k8s", "b.example/k8s"], lambda r: False)
    assert repo == "a.example/k8s"
    assert warning is not None and "a.example/k8s" in warning and "b.example/k8s" in warning


def test_choose_repository_does_not_probe_a_single_candidate() -> None:
    def probe(repo: str) -> bool:
        raise AssertionError("a single candidate must not be probed")

    assert choose_repository(["only.example/k8s"], probe) == ("only.example/k8s", None)
    with pytest.raises(MinisandError):
        choose_repository([], probe)


def test_rewrite_keeps_tags_digests_and_other_registries() -> None:
    cn = ImageMirrors(repository=ALIYUN_IMAGE_REPOSITORY)
    nested = rewrite_image("registry.k8s.io/ingress-nginx/controller@sha256:" + "e" * 64, cn)
    assert str(nested) == f"{ALIYUN_IMAGE_REPOSITORY}/controller@sha256:" + "e" * 64
    assert rewrite_image("quay.io/x/y:1", cn) == parse_image("quay.io/x/y:1")
    assert rewrite_image("registry.k8s.io/pause:3.10", ImageMirrors()) == parse_image("registry.k8s.io/pause:3.10")
    assert str(rewrite_image(parse_image("k8s.gcr.io/pause:3.2"), ImageMirrors("host:5000"))) == "host:5000/pause:3.2"


def test_binary_sources_order_mirror_then_country_then_dl_k8s_io() -> None:
    mirrors = MirrorConfig(image_mirror_country="cn", binary_mirror="http://127.0.0.1:8080/k8s/")
    urls = [s.url for s in binary_sources("kubeadm", VERSION, "amd64", mirrors)]
    assert urls == [
        "http://127.0.0.1:8080/k8s/release/v1.36.4/bin/linux/amd64/kubeadm",
        "https://kubernetes.oss-cn-hangzhou.aliyuncs.com/kubernetes-release/release/v1.36.4/bin/linux/amd64/kubeadm",
        "https://dl.k8s.io/release/v1.36.4/bin/linux/amd64/kubeadm",
    ]
    assert binary_sources("kubelet", VERSION, "arm64", MirrorConfig())[0].checksum_url == \
        "https://dl.k8s.io/release/v1.36.4/bin/linux/arm64/kubelet.sha256"
    same = MirrorConfig(binary_mirror="https://dl.k8s.io")
    assert len(binary_sources("kubectl", VERSION, "amd64", same)) == 1
    with pytest.raises(MinisandError):
        binary_sources("kubectl", VERSION, "s390x", MirrorConfig())


def test_iso_urls_prefer_the_country_folder() -> None:
    default = "https://example.org/minisand/releases/v0.1.0/minisand-v0.1.0-amd64.iso"
    assert iso_urls(default, MirrorConfig()) == [default]
    assert iso_urls(default, MirrorConfig(image_mirror_country="cn")) == [
        "https://kubernetes.oss-cn-hangzhou.aliyuncs.com/minisand/iso/minisand-v0.1.0-amd64.iso", default]


def test_source_candidates_summary() -> None:
    summary = source_candidates(MirrorConfig(
        image_mirror_country="cn", registry_mirrors=("http://127.0.0.1:5000",),
        gvisor_mirror="https://gvisor-mirror.example/releases")).to_dict()
    assert summary["image_repository_candidates"] == [ALIYUN_IMAGE_REPOSITORY, "registry.k8s.io"]
    assert summary["image_repository_explicit"] is False
    assert summary["registry_hosts"] == {"docker.io": ["http://127.0.0.1:5000", "https://registry-1.docker.io"]}
    assert summary["gvisor_bases"] == ["https://gvisor-mirror.example/releases",
                                       "https://storage.googleapis.com/gvisor/releases"]
    explicit = source_candidates(MirrorConfig(image_mirror_country="cn", image_repository="my.reg/k8s/"))
    assert explicit.repository_candidates == ("my.reg/k8s",) and explicit.repository_explicit


@pytest.mark.parametrize(("mirrors", "fragment"), [
    (MirrorConfig(image_mirror_country="mars"), "--image-mirror-country"),
    (MirrorConfig(image_repository="https://registry.example/k8s"), "must not have a scheme"),
    (MirrorConfig(image_repository="registry.example/K8S"), "invalid host or path"),
    (MirrorConfig(binary_mirror="ftp://mirror.example/k8s"), "--binary-mirror"),
    (MirrorConfig(gvisor_mirror="not a url"), "--gvisor-mirror"),
    (MirrorConfig(registry_mirrors=("https://",)), "--registry-mirror"),
    (MirrorConfig(insecure_registries=("http://registry.local:5000",)), "must not have a scheme"),
])
def test_validate_mirrors_rejects_bad_input_with_one_line(mirrors: MirrorConfig, fragment: str) -> None:
    with pytest.raises(MinisandError) as err:
        validate_mirrors(mirrors)
    assert err.value.code == ExitCode.BAD_INPUT
    assert fragment in err.value.message
    assert err.value.hint and "\n" not in err.value.one_line()


def recorded_images(name: str) -> list[ImageRef]:
    """`kubeadm config images list` output recorded in fixtures/: comment lines (#) and klog lines skipped."""
    lines = [ln.strip() for ln in fixture(f"kubeadm-images/{name}").splitlines()]
    return [parse_image(ln) for ln in lines if ln and not ln.startswith("#") and " " not in ln]


@pytest.mark.parametrize(("recorded", "repository"), [
    ("v1.36.4-registry.k8s.io.txt", "registry.k8s.io"),
    ("v1.36.4-registry.cn-hangzhou.aliyuncs.com_google_containers.txt", ALIYUN_IMAGE_REPOSITORY),
    ("v1.36.4-mirror.example.com_5000_k8s.txt", "mirror.example.com:5000/k8s"),
])
def test_image_list_equals_real_kubeadm_output(recorded: str, repository: str) -> None:
    """Recorded output of the real kubeadm v1.36.4 binary for the default, cn and a custom repository: our list
    must be identical, order included."""
    theirs = recorded_images(recorded)
    assert len(theirs) == 7 and all(str(i).startswith(repository + "/") for i in theirs)
    assert kubeadm.control_plane_images("v1.36.4", repository) == theirs


def test_advice_for_a_flat_kubernetes_mirror_without_a_repository() -> None:
    from minisand.images.sources import mirror_advice

    flat = ("registry.k8s.io=https://registry.cn-hangzhou.aliyuncs.com/google_containers",)
    (note,) = mirror_advice(MirrorConfig(registry_mirrors=flat))
    assert "coredns/coredns" in note and "--image-repository" in note
    assert mirror_advice(MirrorConfig(registry_mirrors=flat, image_mirror_country="cn")) == []
    assert mirror_advice(MirrorConfig(registry_mirrors=("registry.k8s.io=https://m.example",))) == []
