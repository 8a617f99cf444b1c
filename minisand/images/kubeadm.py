"""The control-plane image list kubeadm computes for a Kubernetes version and an image repository.

Mirrors kubeadm's cmd/kubeadm/app/images/images.go (GetControlPlaneImages):
    kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy   at the Kubernetes version
    coredns                                                                <repo>/coredns/coredns for registry.k8s.io,
                                                                           <repo>/coredns for any other repository
    pause, etcd                                                            at the versions that kubeadm release pins
The pins per minor are data (KUBEADM_PINS), each with where it came from. For v1.36 the whole list is checked
against recorded `kubeadm config images list` output of a real kubeadm (tests/unit/fixtures/kubeadm-images/)."""

from __future__ import annotations

from dataclasses import dataclass

from minisand.errors import bad_input
from minisand.images.presets import DEFAULT_IMAGE_REPOSITORY
from minisand.images.ref import ImageRef, parse_image

CONTROL_PLANE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")


@dataclass(frozen=True)
class KubeadmPins:
    coredns: str
    etcd: str
    pause: str
    source: str  # where these values were read


KUBEADM_PINS: dict[tuple[int, int], KubeadmPins] = {
    (1, 33): KubeadmPins(
        coredns="v1.12.0", etcd="3.5.24-0", pause="3.10",
        source="etcd: SupportedEtcdVersion[33]=3.5.24-0 in a release-1.34 copy of kubeadm's constants.go found "
               "with the search tool (v1.33.0 itself pinned 3.5.21-0); coredns/pause: kubeadm v1.33 CoreDNSVersion, "
               "PauseVersion; not re-read from a 1.33 tree: confirm with `kubeadm config images list`"),
    (1, 34): KubeadmPins(
        coredns="v1.12.1", etcd="3.6.5-0", pause="3.10.1",
        source="etcd: SupportedEtcdVersion[34]=3.6.5-0 in the same release-1.34 copy (v1.34.0 pinned 3.6.4-0); "
               "coredns/pause: kubeadm v1.34 CoreDNSVersion, PauseVersion; confirm with `kubeadm config images list`"),
    (1, 35): KubeadmPins(
        coredns="v1.13.1", etcd="3.6.6-0", pause="3.10.1",
        source="kubeadm v1.35.8 constants.go as quoted by a public test fixture found with the search tool "
               "(DefaultEtcdVersion 3.6.6-0, CoreDNSVersion v1.13.1, PauseVersion 3.10.1)"),
    (1, 36): KubeadmPins(
        coredns="v1.14.2", etcd="3.6.8-0", pause="3.10.2",
        source="k8s.io/kubernetes@v1.36.4 cmd/kubeadm/app/constants/constants.go, read from the module zip: "
               "CoreDNSVersion v1.14.2, PauseVersion 3.10.2, SupportedEtcdVersion[36]=3.6.8-0; the whole list "
               "checked against `kubeadm config images list` of a kubeadm v1.36.4 binary (tests/unit/fixtures)"),
    (1, 37): KubeadmPins(
        coredns="v1.14.2", etcd="3.6.8-0", pause="3.10.2",
        source="provisional: kubeadm 1.37's constants.go was not readable here; these are v1.36.4's values, "
               "which is also what kubeadm's EtcdSupportedVersion falls back to for an unlisted newer minor"),
}


def supported_minors() -> list[str]:
    return [f"v{major}.{minor}" for (major, minor) in sorted(KUBEADM_PINS)]


def _minor(version: str) -> tuple[int, int]:
    parts = version.lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise bad_input(f"{version!r} is not a Kubernetes version", "use a version such as v1.36.4") from None


def pins_for(version: str) -> KubeadmPins:
    try:
        return KUBEADM_PINS[_minor(version)]
    except KeyError:
        raise bad_input(f"Kubernetes {version} is not supported by this minisand",
                        f"supported minors: {', '.join(supported_minors())}") from None


def _image(repository: str, name: str, tag: str) -> ImageRef:
    return parse_image(f"{repository.rstrip('/')}/{name}:{tag}")


def image_tag(version: str) -> str:
    """kubeadm's KubernetesVersionToImageTag: '+' is not allowed in a tag."""
    return version.replace("+", "_")


def coredns_image(version: str, repository: str = DEFAULT_IMAGE_REPOSITORY) -> ImageRef:
    """kubeadm keeps coredns/coredns only in the default repository; any other repository is flat."""
    path = "coredns/coredns" if repository.rstrip("/") == DEFAULT_IMAGE_REPOSITORY else "coredns"
    return _image(repository, path, pins_for(version).coredns)


def pause_image(version: str, repository: str = DEFAULT_IMAGE_REPOSITORY) -> ImageRef:
    return _image(repository, "pause", pins_for(version).pause)


def etcd_image(version: str, repository: str = DEFAULT_IMAGE_REPOSITORY) -> ImageRef:
    return _image(repository, "etcd", pins_for(version).etcd)


def control_plane_images(version: str, repository: str = DEFAULT_IMAGE_REPOSITORY) -> list[ImageRef]:
    """The images `kubeadm config images list --kubernetes-version V --image-repository R` prints, in its order."""
    tag = image_tag(version)
    images = [_image(repository, component, tag) for component in CONTROL_PLANE_COMPONENTS]
    images += [coredns_image(version, repository), pause_image(version, repository),
               etcd_image(version, repository)]
    return images

