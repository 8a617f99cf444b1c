"""Where every image, binary, ISO and gVisor download comes from, resolved from the profile's MirrorConfig.

Pure functions. The orchestrator calls validate_mirrors() when flags are parsed (before anything is created),
source_candidates() for `--dry-run`/`config view`, choose_repository() with a probe that runs in the guest, and
rewrite_image() for every control-plane and addon image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from minisand.config.model import MirrorConfig
from minisand.config.validate import check_url
from minisand.errors import MinisandError, bad_input
from minisand.images.presets import DEFAULT_BINARY_BASE, DEFAULT_IMAGE_REPOSITORY, MirrorPreset, preset_for
from minisand.images.ref import ImageRef, parse_image
from minisand.images.registries import RegistryHosts, registry_hosts

DEFAULT_GVISOR_BASE = "https://storage.googleapis.com/gvisor/releases"
# Images published under these registries live flat in a Kubernetes mirror repository such as Aliyun's
# google_containers (registry.k8s.io/coredns/coredns -> <repo>/coredns), the same rule kubeadm applies to CoreDNS.
KUBERNETES_REGISTRIES = frozenset({"registry.k8s.io", "k8s.gcr.io"})
# Images published elsewhere that such mirror repositories carry flat as well, by their last path component, as
# minikube's deploy/addons/aliyun_mirror.json lists them (ghcr.io/headlamp-k8s/headlamp -> <repo>/headlamp).
# Addons try the moved name first and the upstream name after it (image_candidates).
MIRRORED_FLAT = frozenset({"ghcr.io/headlamp-k8s/headlamp"})
ARCHES = ("amd64", "arm64")


@dataclass(frozen=True)
class ImageMirrors:
    """The resolved image side: the chosen control-plane repository (after probing)."""

    repository: str = DEFAULT_IMAGE_REPOSITORY

    @property
    def is_default(self) -> bool:
        return self.repository.rstrip("/") == DEFAULT_IMAGE_REPOSITORY


@dataclass(frozen=True)
class BinarySource:
    url: str
    checksum_url: str  # the .sha256 beside it, as dl.k8s.io lays it out


@dataclass(frozen=True)
class SourceCandidates:
    """Everything the mirror flags resolve to before any probe: shown by --dry-run and `config view`."""

    country: str
    repository_candidates: tuple[str, ...]
    repository_explicit: bool  # --image-repository given: no probe, no fallback
    binary_bases: tuple[str, ...]
    iso_bases: tuple[str, ...]
    gvisor_bases: tuple[str, ...]
    registry_hosts: tuple[RegistryHosts, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {
            "country": self.country,
            "image_repository_candidates": list(self.repository_candidates),
            "image_repository_explicit": self.repository_explicit,
            "binary_bases": list(self.binary_bases),
            "iso_bases": list(self.iso_bases),
            "gvisor_bases": list(self.gvisor_bases),
            "registry_hosts": {h.registry: h.endpoints() for h in self.registry_hosts},
        }


def _dedupe(items: Sequence[str | None]) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        if item and item not in out:
            out.append(item)
    return tuple(out)


def check_image_repository(value: str) -> str:
    """--image-repository HOST[:PORT][/PATH] (no scheme, no tag)."""
    repo = value.strip().rstrip("/")
    if "://" in repo:
        raise bad_input(f"--image-repository {value!r} must not have a scheme",
                        f"use --image-repository={repo.split('://', 1)[1]}")
    if not repo or "@" in repo or any(c.isspace() for c in repo):
        raise bad_input(f"--image-repository {value!r} is not a repository",
                        f"use HOST[/PATH], e.g. --image-repository={DEFAULT_IMAGE_REPOSITORY}")
    try:
        parse_image(f"{repo}/pause:probe")
    except MinisandError:
        raise bad_input(f"--image-repository {value!r} has an invalid host or path",
                        "path components are lowercase letters, digits, '.', '_' or '-'") from None
    return repo


def validate_mirrors(mirrors: MirrorConfig) -> SourceCandidates:
    """Checks every mirror flag; raises MinisandError(BAD_INPUT) on the first bad one. Changes nothing."""
    return source_candidates(mirrors)


def source_candidates(mirrors: MirrorConfig) -> SourceCandidates:
    preset: MirrorPreset = preset_for(mirrors.image_mirror_country)
    explicit = mirrors.image_repository is not None and mirrors.image_repository.strip() != ""
    repos = (check_image_repository(mirrors.image_repository or ""),) if explicit else preset.image_repositories
    # Binaries and gVisor are downloaded on the host, which reads file:// as well as http(s)://.
    local = ("http", "https", "file")
    binary = check_url(mirrors.binary_mirror, "--binary-mirror", local) if mirrors.binary_mirror else None
    gvisor = check_url(mirrors.gvisor_mirror, "--gvisor-mirror", local) if mirrors.gvisor_mirror else None
    hosts = registry_hosts(mirrors.registry_mirrors, mirrors.insecure_registries)
    return SourceCandidates(
        country=preset.country,
        repository_candidates=tuple(repos),
        repository_explicit=explicit,
        binary_bases=_dedupe([binary, preset.binary_base, DEFAULT_BINARY_BASE]),
        iso_bases=_dedupe([preset.iso_base]),
        gvisor_bases=_dedupe([gvisor, preset.gvisor_base, DEFAULT_GVISOR_BASE]),
        registry_hosts=tuple(hosts),
    )


def choose_repository(candidates: Sequence[str], probe: Callable[[str], bool]) -> tuple[str, str | None]:
    """Like minikube: the first candidate whose pause image answers the probe; when none answers, the first
    candidate with a warning. A single candidate is returned without probing."""
    if not candidates:
        raise bad_input("no image repository candidates", "pass --image-repository or --image-mirror-country")
    if len(candidates) == 1:
        return candidates[0], None
    for candidate in candidates:
        if probe(candidate):
            return candidate, None
    return candidates[0], (f"none of the image repositories answered ({', '.join(candidates)}); "
                           f"using {candidates[0]}")


def rewrite_image(ref: ImageRef | str, mirrors: ImageMirrors) -> ImageRef:
    """An image as the guest should pull it. Images from Kubernetes' registries (and the few in MIRRORED_FLAT) move
    into the chosen repository, flat (last path component), like kubeadm does for CoreDNS; everything else keeps
    its name and is redirected at pull time by containerd's registry hosts (--registry-mirror)."""
    image = parse_image(ref) if isinstance(ref, str) else ref
    if mirrors.is_default or (image.registry not in KUBERNETES_REGISTRIES and image.name not in MIRRORED_FLAT):
        return image
    repo = mirrors.repository.rstrip("/")
    moved = parse_image(f"{repo}/{image.basename}:{image.tag or 'latest'}")
    return ImageRef(registry=moved.registry, repository=moved.repository, tag=image.tag, digest=image.digest)


def image_candidates(ref: ImageRef | str, repositories: Sequence[str]) -> list[ImageRef]:
    """An addon image as each repository candidate names it, then its upstream name (pulled through containerd's
    registry hosts), without repeats: the first that a node can pull is the one to run."""
    upstream = parse_image(ref) if isinstance(ref, str) else ref
    out: list[ImageRef] = []
    for image in [*(rewrite_image(upstream, ImageMirrors(r)) for r in repositories), upstream]:
        if image not in out:
            out.append(image)
    return out


def binary_url(base: str, version: str, arch: str, name: str) -> str:
    """dl.k8s.io's layout: <base>/release/<version>/bin/linux/<arch>/<name>."""
    return f"{base.rstrip('/')}/release/{version}/bin/linux/{arch}/{name}"


def binary_sources(name: str, version: str, arch: str, mirrors: MirrorConfig) -> list[BinarySource]:
    """Ordered sources for kubelet/kubeadm/kubectl: --binary-mirror, then the country preset, then dl.k8s.io."""
    if arch not in ARCHES:
        raise bad_input(f"architecture {arch!r} is not supported", f"supported: {', '.join(ARCHES)}")
    out = []
    for base in source_candidates(mirrors).binary_bases:
        url = binary_url(base, version, arch, name)
        out.append(BinarySource(url=url, checksum_url=f"{url}.sha256"))
    return out


def iso_urls(default_url: str, mirrors: MirrorConfig) -> list[str]:
    """The ISO by the same file name from the country's ISO folder first, then its default location."""
    file_name = default_url.rstrip("/").rsplit("/", 1)[-1]
    bases = source_candidates(mirrors).iso_bases
    return list(_dedupe([*(f"{b.rstrip('/')}/{file_name}" for b in bases), default_url]))


def mirror_advice(mirrors: MirrorConfig) -> list[str]:
    """Warnings about flag combinations that are valid but will not do what the user probably wants."""
    notes: list[str] = []
    candidates = source_candidates(mirrors)
    flat_k8s_mirror = any(h.registry in KUBERNETES_REGISTRIES and any(e.override_path for e in h.hosts)
                          for h in candidates.registry_hosts)
    if flat_k8s_mirror and candidates.repository_candidates == (DEFAULT_IMAGE_REPOSITORY,):
        notes.append("a path-prefixed mirror for registry.k8s.io serves flat names, but kubeadm pulls "
                     "registry.k8s.io/coredns/coredns: also pass --image-repository=<that mirror's HOST/PATH> "
                     "(or --image-mirror-country=cn) so nested names are rewritten")
    return notes
