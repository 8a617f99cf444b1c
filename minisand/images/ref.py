"""Image references with Docker's normalisation rules (distribution/reference's ParseNormalizedNamed):

    nginx                      -> docker.io/library/nginx:latest
    user/app:1.0               -> docker.io/user/app:1.0
    localhost:5000/app         -> localhost:5000/app:latest
    registry.k8s.io/pause@sha256:...   (a digest alone gets no :latest)

Pure functions; a malformed reference raises MinisandError(BAD_INPUT)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from minisand.errors import bad_input

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_HOST = re.compile(
    r"^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)"
    r"(?::[0-9]{1,5})?$")


def canonical_registry(host: str) -> str:
    """docker.io for every alias of Docker Hub; other hosts unchanged."""
    return DOCKER_HUB if host.lower() in DOCKER_HUB_ALIASES else host


@dataclass(frozen=True, order=True)
class ImageRef:
    registry: str  # "docker.io", "registry.k8s.io", "localhost:5000"
    repository: str  # "library/nginx", "coredns/coredns", "pause"
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def basename(self) -> str:
        return self.repository.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _check_tag(tag: str, text: str) -> str:
    if not _TAG.match(tag):
        raise bad_input(f"image {text!r} has an invalid tag {tag!r}",
                        "a tag is up to 128 letters, digits, '_', '.' or '-', e.g. nginx:1.27")
    return tag


def _split_digest(text: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    rest, digest = text.rsplit("@", 1)
    if not _DIGEST.match(digest):
        raise bad_input(f"image {text!r} has an invalid digest {digest!r}",
                        "a digest looks like sha256:<64 hex digits>")
    return rest, digest


def _split_tag(rest: str, text: str) -> tuple[str, str | None]:
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:  # a ':' after the last '/' is a tag, not a port
        return rest[:colon], _check_tag(rest[colon + 1:], text)
    return rest, None


def _split_registry(name: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return canonical_registry(first), remainder
    return DOCKER_HUB, name


def parse_image(text: str) -> ImageRef:
    """Parses and normalises an image reference the way docker/containerd/kubelet do."""
    raw = text.strip()
    if not raw or any(c.isspace() for c in raw) or "://" in raw:
        raise bad_input(f"image {text!r} is not an image reference",
                        "use NAME[:TAG][@DIGEST], e.g. nginx:1.27 or registry.k8s.io/pause:3.10")
    rest, digest = _split_digest(raw)
    name, tag = _split_tag(rest, raw)
    registry, repository = _split_registry(name)
    if not _HOST.match(registry):
        raise bad_input(f"image {text!r} has an invalid registry host {registry!r}",
                        "use HOST[:PORT]/NAME, e.g. localhost:5000/app")
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"{OFFICIAL_NAMESPACE}/{repository}"
    for component in repository.split("/"):
        if not _COMPONENT.match(component):
            raise bad_input(f"image {text!r} has an invalid name component {component!r}",
                            "image names are lowercase letters, digits and single '.', '_', '__' or '-'")
    if len(registry) + 1 + len(repository) > 255:
        raise bad_input(f"image {text!r} has a name longer than 255 characters", "use a shorter name")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)
