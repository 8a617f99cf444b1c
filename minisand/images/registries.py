"""--registry-mirror [REGISTRY=]URL and --insecure-registry HOST[:PORT] as containerd registry hosts
(/etc/containerd/certs.d/<registry>/hosts.toml). Pure: parse and validate every entry first (one-line errors with
hints), then build RegistryHosts data that minisand.cruntime renders with templates/containerd/hosts.toml.j2.

Rules:
- no REGISTRY means docker.io; Docker Hub aliases (index.docker.io, registry-1.docker.io) mean docker.io;
- mirrors are tried in the order given, then the upstream registry (the hosts.toml `server`) as the fallback;
- a mirror URL with a path (https://host/google_containers or https://host/v2/google_containers) becomes
  [host."https://host/v2/google_containers"] with override_path = true; https://host and https://host/v2 get no path;
- an http:// mirror is used as plain HTTP; --insecure-registry HOST makes HOST's own endpoint try HTTPS without
  certificate verification first, then plain HTTP, and turns on skip_verify for https:// mirrors on that HOST only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from minisand.config.validate import check_host_port, check_url
from minisand.errors import bad_input
from minisand.images.ref import DOCKER_HUB, canonical_registry

_CIDR = re.compile(r"^[0-9.]+/\d{1,2}$|^[0-9a-fA-F:]+/\d{1,3}$")
MIRROR_FLAG = "--registry-mirror"
INSECURE_FLAG = "--insecure-registry"
PULL = ("pull", "resolve")
PULL_PUSH = ("pull", "resolve", "push")


@dataclass(frozen=True)
class MirrorSpec:
    registry: str  # the upstream registry it mirrors, e.g. docker.io, registry.k8s.io, quay.io
    url: str  # normalised: scheme://host[:port][/v2/prefix]
    override_path: bool

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc


@dataclass(frozen=True)
class HostEntry:
    url: str
    capabilities: tuple[str, ...] = PULL
    skip_verify: bool = False
    override_path: bool = False


@dataclass(frozen=True)
class RegistryHosts:
    """One certs.d/<registry>/hosts.toml: hosts tried in order, then server."""

    registry: str
    server: str
    hosts: tuple[HostEntry, ...]
    server_skip_verify: bool = False

    def endpoints(self) -> list[str]:
        return [h.url for h in self.hosts] + [self.server]


def upstream_server(registry: str) -> str:
    return "https://registry-1.docker.io" if registry == DOCKER_HUB else f"https://{registry}"


def _split_spec(text: str) -> tuple[str | None, str]:
    head, sep, tail = text.partition("=")
    if sep and "://" not in head:
        return head.strip(), tail.strip()
    return None, text.strip()


def _normalise_path(path: str) -> tuple[str, bool]:
    path = path.rstrip("/")
    if path in ("", "/v2"):
        return "", False
    if not path.startswith("/v2/"):
        path = "/v2" + path
    return path, True


def parse_registry_mirror(text: str) -> MirrorSpec:
    """One --registry-mirror value: [REGISTRY=]URL."""
    registry, url = _split_spec(text)
    if registry is not None:
        if not registry:
            raise bad_input(f"{MIRROR_FLAG} {text!r} names no registry before '='",
                            f"use {MIRROR_FLAG}=docker.io=https://mirror.example.com")
        registry = canonical_registry(check_host_port(registry, f"{MIRROR_FLAG} registry"))
    checked = check_url(url, MIRROR_FLAG)
    parts = urlsplit(checked)
    if parts.query or parts.fragment:
        raise bad_input(f"{MIRROR_FLAG} {text!r} has a query or fragment",
                        f"use a plain base URL, e.g. {MIRROR_FLAG}=https://mirror.example.com")
    if parts.username or parts.password:
        raise bad_input(f"{MIRROR_FLAG} {text!r} carries credentials in the URL",
                        "credentials in flags end up in the profile and logs: configure registry auth instead")
    path, override = _normalise_path(parts.path)
    return MirrorSpec(registry=registry or DOCKER_HUB, url=f"{parts.scheme}://{parts.netloc}{path}",
                      override_path=override)


def parse_insecure_registry(text: str) -> str:
    """One --insecure-registry value: HOST[:PORT], no scheme, no path."""
    value = text.strip()
    if _CIDR.match(value):
        raise bad_input(f"{INSECURE_FLAG} {text!r} is a CIDR range, which containerd cannot match",
                        f"name each registry as HOST[:PORT], e.g. {INSECURE_FLAG}=10.0.0.5:5000")
    if "/" in value and "://" not in value:
        raise bad_input(f"{INSECURE_FLAG} {text!r} must not have a path",
                        f"name the registry as HOST[:PORT], e.g. {INSECURE_FLAG}={value.split('/')[0]}")
    return canonical_registry(check_host_port(value, INSECURE_FLAG))


def _check_mirror_conflicts(specs: Sequence[MirrorSpec]) -> None:
    seen: dict[tuple[str, str], MirrorSpec] = {}
    for spec in specs:
        parts = urlsplit(spec.url)
        key = (spec.registry, f"{parts.netloc}{parts.path}")
        if key in seen:
            what = "given twice" if seen[key].url == spec.url else "given with both http:// and https://"
            raise bad_input(f"{MIRROR_FLAG} {spec.url} for {spec.registry} is {what}",
                            "give each mirror once, with the scheme it serves")
        seen[key] = spec
        if spec.url == upstream_server(spec.registry) or parts.netloc == spec.registry:
            raise bad_input(f"{MIRROR_FLAG} {spec.url} is {spec.registry} itself, not a mirror of it",
                            f"for plain HTTP to {spec.registry} use {INSECURE_FLAG}={spec.registry}")


def parse_all(registry_mirrors: Sequence[str], insecure_registries: Sequence[str]
              ) -> tuple[list[MirrorSpec], list[str]]:
    """Validates every flag value (raising on the first bad one) before anything is built."""
    specs = [parse_registry_mirror(m) for m in registry_mirrors]
    _check_mirror_conflicts(specs)
    insecure: list[str] = []
    for raw in insecure_registries:
        host = parse_insecure_registry(raw)
        if host in insecure:
            raise bad_input(f"{INSECURE_FLAG} {host} is given twice", "give each registry once")
        insecure.append(host)
    return specs, insecure


def _mirror_entry(spec: MirrorSpec, insecure: Sequence[str]) -> HostEntry:
    https_insecure = spec.url.startswith("https://") and spec.netloc in insecure
    return HostEntry(url=spec.url, capabilities=PULL, skip_verify=https_insecure,
                     override_path=spec.override_path)


def registry_hosts(registry_mirrors: Sequence[str], insecure_registries: Sequence[str]) -> list[RegistryHosts]:
    """Every certs.d entry the flags call for, sorted by registry name."""
    specs, insecure = parse_all(registry_mirrors, insecure_registries)
    registries = sorted({s.registry for s in specs} | set(insecure))
    out: list[RegistryHosts] = []
    for registry in registries:
        hosts = [_mirror_entry(s, insecure) for s in specs if s.registry == registry]
        if registry in insecure:
            # HTTPS without verification first, then plain HTTP as the server (Docker's insecure-registry order).
            hosts.append(HostEntry(url=f"https://{registry}", capabilities=PULL_PUSH, skip_verify=True))
            out.append(RegistryHosts(registry=registry, server=f"http://{registry}", hosts=tuple(hosts)))
        else:
            out.append(RegistryHosts(registry=registry, server=upstream_server(registry), hosts=tuple(hosts)))
    return out


def render_hosts_toml(hosts: RegistryHosts) -> str:
    """certs.d/<registry>/hosts.toml text (templates/containerd/hosts.toml.j2)."""
    import tomllib

    from minisand.templating import render

    text = render("containerd/hosts.toml.j2", registry=hosts.registry, server=hosts.server,
                  server_skip_verify=hosts.server_skip_verify, hosts=hosts.hosts)
    tomllib.loads(text)  # a template bug must never reach a guest
    return text
