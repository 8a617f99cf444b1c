"""What a running lab offers: URLs, registry address, versions, image references and suggested minisand flags."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from e2e.lab.builder import BuildManifest
from e2e.lab.layout import crictl_path, gvisor_dir, k8s_binary_path


@dataclass(frozen=True)
class LabEndpoints:
    binary_mirror: str  # http://127.0.0.1:P : dl.k8s.io's root (/release/<v>/bin/linux/amd64/<bin>)
    gvisor_mirror: str  # http://127.0.0.1:P/gvisor/releases : the bucket's base (release/<yyyymmdd>/x86_64/runsc)
    gvisor_release_url: str  # gvisor_mirror/release/<yyyymmdd>/x86_64
    crictl_url: str  # the crictl tarball (+ ".sha256")
    registry: str  # 127.0.0.1:R, plain HTTP
    image_repository: str  # registry.k8s.io-like root: <registry>
    cn_image_repository: str  # the Aliyun-like flat namespace: <registry>/google_containers
    kubernetes_version: str
    etcd_version: str
    coredns_version: str
    pause_version: str
    crictl_version: str
    gvisor_version: str  # the gvisor.dev/gvisor pseudo-version
    gvisor_release: str  # yyyymmdd
    images: dict[str, str] = field(default_factory=dict)  # upstream ref -> ref in the lab (upstream path)
    cn_images: dict[str, str] = field(default_factory=dict)  # upstream ref -> Aliyun-style google_containers ref
    e2e_test: str = ""  # path of the cached e2e.test (a host program, not served); "" when not built
    binary_access_log: str = ""
    registry_log: str = ""
    pids: dict[str, int] = field(default_factory=dict)

    def binary_url(self, binary: str) -> str:
        return self.binary_mirror + k8s_binary_path(self.kubernetes_version, binary)

    def gvisor_url(self, binary: str) -> str:
        return f"{self.gvisor_release_url}/{binary}"

    def rehost(self, http_address: str, registry_address: str) -> LabEndpoints:
        """The same endpoints as seen from elsewhere (e.g. a VM's guestfwd address such as 10.0.2.100:5000)."""
        http_old = self.binary_mirror.removeprefix("http://")

        def swap(text: str) -> str:
            return text.replace(http_old, http_address).replace(self.registry, registry_address)

        return replace(
            self, binary_mirror=swap(self.binary_mirror), gvisor_mirror=swap(self.gvisor_mirror),
            gvisor_release_url=swap(self.gvisor_release_url), crictl_url=swap(self.crictl_url),
            registry=registry_address, image_repository=swap(self.image_repository),
            cn_image_repository=swap(self.cn_image_repository),
            images={k: swap(v) for k, v in self.images.items()},
            cn_images={k: swap(v) for k, v in self.cn_images.items()})

    def minisand_flags(self, *, cn: bool = False) -> list[str]:
        """Suggested `minisand start` flags pointing every source at the lab (the product defines their meaning).

        cn=False: the lab stands in for registry.k8s.io and docker.io through --registry-mirror.
        cn=True: --image-mirror-country cn, the lab standing in for registry.cn-hangzhou.aliyuncs.com.
        """
        registry_url = f"http://{self.registry}"
        flags = [f"--kubernetes-version={self.kubernetes_version}", f"--binary-mirror={self.binary_mirror}",
                 f"--gvisor-mirror={self.gvisor_mirror}", "--offline", f"--insecure-registry={self.registry}"]
        if cn:
            flags += ["--image-mirror-country=cn",
                      f"--registry-mirror=registry.cn-hangzhou.aliyuncs.com={registry_url}"]
        else:
            flags += [f"--registry-mirror=registry.k8s.io={registry_url}"]
        flags += [f"--registry-mirror={host}={registry_url}" for host in self.other_registries()]
        return flags

    def other_registries(self) -> list[str]:
        """The upstream registries besides registry.k8s.io that the lab serves images of: docker.io always,
        ghcr.io (Headlamp) and gcr.io (minikube's storage-provisioner) when those pieces are built."""
        hosts = {ref.split("/", 1)[0] for ref in self.images} | {"docker.io"}
        return ["docker.io", *sorted(hosts - {"docker.io", "registry.k8s.io"})]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LabEndpoints:
        return cls(**data)  # type: ignore[arg-type]


def make_endpoints(manifest: BuildManifest, http_port: int, registry_port: int) -> LabEndpoints:
    http = f"http://127.0.0.1:{http_port}"
    registry = f"127.0.0.1:{registry_port}"
    images: dict[str, str] = {}
    cn_images: dict[str, str] = {}
    for entry in manifest.images:
        for ref, tag in zip(entry.upstream_refs(), entry.tags, strict=True):
            images[ref] = f"{registry}/{entry.repositories[0]}:{tag}"
            if len(entry.repositories) > 1:
                cn_images[ref] = f"{registry}/{entry.repositories[1]}:{tag}"
    return LabEndpoints(
        binary_mirror=http, gvisor_mirror=f"{http}/gvisor/releases",
        gvisor_release_url=http + gvisor_dir(manifest.gvisor_release),
        crictl_url=http + crictl_path(manifest.crictl), registry=registry, image_repository=registry,
        cn_image_repository=f"{registry}/google_containers", kubernetes_version=manifest.kubernetes,
        etcd_version=manifest.etcd, coredns_version=manifest.coredns, pause_version=manifest.pause,
        crictl_version=manifest.crictl, gvisor_version=manifest.gvisor, gvisor_release=manifest.gvisor_release,
        images=images, cn_images=cn_images, e2e_test=manifest.e2e_test)
