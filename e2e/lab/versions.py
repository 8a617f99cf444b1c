"""What the lab builds: pinned upstream versions, and what kubeadm says it expects."""

from __future__ import annotations

import re
from dataclasses import dataclass

from e2e.lab.errors import LabError

DEFAULT_KUBERNETES = "v1.36.4"
DEFAULT_CRICTL = "v1.36.0"
# gvisor.dev/gvisor, the `go` branch: the newest pseudo-version on the proxy with a checksum-database entry that
# builds with the local Go toolchain. Its release name is the pseudo-version's date (yyyymmdd).
DEFAULT_GVISOR = "v0.0.0-20260905035102-160fafc42237"

K8S_BINARIES = ("kubelet", "kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                "kube-proxy")

_K8S_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_PSEUDO = re.compile(r"^v0\.0\.0-(\d{8})(\d{6})-([0-9a-f]{12})$")


@dataclass(frozen=True)
class Versions:
    kubernetes: str = DEFAULT_KUBERNETES
    crictl: str = DEFAULT_CRICTL
    gvisor: str = DEFAULT_GVISOR

    def __post_init__(self) -> None:
        k8s_parts(self.kubernetes)
        gvisor_release(self.gvisor)

    @property
    def gvisor_release(self) -> str:
        return gvisor_release(self.gvisor)


def k8s_parts(version: str) -> tuple[int, int, int]:
    m = _K8S_VERSION.match(version)
    if not m:
        raise LabError(f"{version!r} is not a Kubernetes version", "use e.g. v1.36.4")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def staging_version(version: str) -> str:
    """k8s.io/kubernetes vX.Y.Z publishes its staging modules as v0.Y.Z."""
    _, minor, patch = k8s_parts(version)
    return f"v0.{minor}.{patch}"


def gvisor_release(pseudo: str) -> str:
    m = _PSEUDO.match(pseudo)
    if not m:
        raise LabError(f"{pseudo!r} is not a Go pseudo-version", "use e.g. v0.0.0-20260905035102-160fafc42237")
    return m.group(1)


@dataclass(frozen=True)
class KubeadmImages:
    """The image references `kubeadm config images list` prints for one Kubernetes version."""

    refs: tuple[str, ...]

    def tag_of(self, name: str) -> str:
        for ref in self.refs:
            repo, _, tag = ref.rpartition(":")
            if repo.rsplit("/", 1)[-1] == name:
                return tag
        raise LabError(f"kubeadm lists no {name} image", f"kubeadm printed: {', '.join(self.refs)}")

    @property
    def etcd_version(self) -> str:
        """etcd:3.6.8-0 -> v3.6.8 (the Go module version)."""
        return "v" + self.tag_of("etcd").split("-", 1)[0]

    @property
    def coredns_version(self) -> str:
        return self.tag_of("coredns")

    @property
    def pause_tag(self) -> str:
        return self.tag_of("pause")


def parse_images_list(text: str) -> KubeadmImages:
    refs = tuple(line.strip() for line in text.splitlines() if line.strip() and ":" in line)
    if len(refs) < 7:
        raise LabError("kubeadm config images list printed too few images", text.strip()[-300:])
    return KubeadmImages(refs)
