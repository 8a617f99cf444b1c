"""--registry-mirror / --insecure-registry: parsing, validation and hosts.toml rendering.
Golden files: tests/unit/golden/registry-hosts/ (MINISAND_UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import tomllib

import pytest

from minisand.errors import ExitCode, MinisandError
from minisand.images.registries import (
    parse_insecure_registry,
    parse_registry_mirror,
    registry_hosts,
    render_hosts_toml,
)
from tests.unit.golden import assert_golden

ALIYUN = "https://registry.cn-hangzhou.aliyuncs.com"

COMBINATIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "single-mirror-default-registry": (("https://mirror.example.com",), ()),
    "two-mirrors-in-order": (("http://127.0.0.1:5001", "http://127.0.0.1:5002"), ()),
    "named-registry-path-prefix": ((f"registry.k8s.io={ALIYUN}/google_containers",), ()),
    "named-registry-v2-path-prefix": ((f"registry.k8s.io={ALIYUN}/v2/google_containers",), ()),
    "several-registries": (("docker.io=https://hub-mirror.example.com", "quay.io=https://quay-mirror.example:8443",
                            "registry.k8s.io=http://10.0.2.100:5000"), ()),
    "insecure-only": ((), ("registry.local:5000",)),
    "insecure-with-https-mirror-on-it": (("docker.io=https://registry.local:5000", "https://other.example"),
                                         ("registry.local:5000",)),
}


def rendered(mirrors: tuple[str, ...], insecure: tuple[str, ...]) -> str:
    parts = []
    for hosts in registry_hosts(mirrors, insecure):
        parts.append(f"### certs.d/{hosts.registry}/hosts.toml\n{render_hosts_toml(hosts)}")
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(COMBINATIONS))
def test_hosts_toml_golden(name: str) -> None:
    mirrors, insecure = COMBINATIONS[name]
    assert_golden("registry-hosts", f"{name}.toml", rendered(mirrors, insecure))


def test_mirrors_keep_order_and_upstream_is_the_last_fallback() -> None:
    (hosts,) = registry_hosts(["http://127.0.0.1:5001", "http://127.0.0.1:5002"], [])
    text = render_hosts_toml(hosts)
    data = tomllib.loads(text)
    assert data["server"] == "https://registry-1.docker.io"
    assert list(data["host"]) == ["http://127.0.0.1:5001", "http://127.0.0.1:5002"]  # TOML keeps table order
    assert hosts.endpoints() == ["http://127.0.0.1:5001", "http://127.0.0.1:5002", "https://registry-1.docker.io"]
    assert all(h["capabilities"] == ["pull", "resolve"] for h in data["host"].values())


@pytest.mark.parametrize(("text", "registry", "url", "override"), [
    ("https://mirror.example.com", "docker.io", "https://mirror.example.com", False),
    ("https://mirror.example.com/", "docker.io", "https://mirror.example.com", False),
    ("https://mirror.example.com/v2", "docker.io", "https://mirror.example.com", False),
    ("http://127.0.0.1:5000", "docker.io", "http://127.0.0.1:5000", False),
    ("index.docker.io=https://m.example", "docker.io", "https://m.example", False),
    ("registry.k8s.io=https://h.example/google_containers", "registry.k8s.io",
     "https://h.example/v2/google_containers", True),
    ("registry.k8s.io=https://h.example/v2/google_containers/", "registry.k8s.io",
     "https://h.example/v2/google_containers", True),
    ("localhost:5000=http://127.0.0.1:5001/a/b", "localhost:5000", "http://127.0.0.1:5001/v2/a/b", True),
])
def test_parse_registry_mirror(text: str, registry: str, url: str, override: bool) -> None:
    spec = parse_registry_mirror(text)
    assert (spec.registry, spec.url, spec.override_path) == (registry, url, override)


@pytest.mark.parametrize(("mirrors", "insecure", "fragment"), [
    (("mirror.example.com",), (), "is not a URL"),
    (("ftp://mirror.example.com",), (), "is not a URL"),
    (("https://",), (), "has no host"),
    (("https://mirror.example.com:99999",), (), "invalid port"),
    (("https://user:secret@mirror.example.com",), (), "credentials"),
    (("https://mirror.example.com/?a=b",), (), "query"),
    (("=https://mirror.example.com",), (), "names no registry"),
    (("bad host=https://mirror.example.com",), (), "HOST[:PORT]"),
    (("https://m.example", "https://m.example/"), (), "given twice"),
    (("http://m.example", "https://m.example"), (), "both http:// and https://"),
    (("registry.local:5000=http://registry.local:5000",), (), "itself"),
    (("docker.io=https://registry-1.docker.io",), (), "itself"),
    ((), ("https://registry.local:5000",), "must not have a scheme"),
    ((), ("registry.local:5000/path",), "must not have a path"),
    ((), ("registry.local:0",), "invalid port"),
    ((), ("registry.local", "registry.local"), "given twice"),
    ((), ("10.0.0.0/8",), "CIDR range"),
])
def test_bad_flags_fail_before_anything_is_built(mirrors: tuple[str, ...], insecure: tuple[str, ...],
                                                  fragment: str) -> None:
    with pytest.raises(MinisandError) as err:
        registry_hosts(mirrors, insecure)
    assert err.value.code == ExitCode.BAD_INPUT
    assert fragment in err.value.message
    assert err.value.hint and "\n" not in err.value.one_line()


def test_insecure_scheme_error_hints_the_bare_host() -> None:
    with pytest.raises(MinisandError) as err:
        parse_insecure_registry("http://registry.local:5000")
    assert "--insecure-registry=registry.local:5000" in err.value.hint
    assert parse_insecure_registry(" registry.local:5000 ") == "registry.local:5000"


def test_insecure_applies_only_to_the_named_host() -> None:
    by_registry = {h.registry: h for h in registry_hosts(
        ["docker.io=https://registry.local:5000", "https://other.example"], ["registry.local:5000"])}
    docker = by_registry["docker.io"]
    assert [h.skip_verify for h in docker.hosts] == [True, False]
    assert docker.server == "https://registry-1.docker.io"
    local = by_registry["registry.local:5000"]
    assert local.server == "http://registry.local:5000"
    assert [(h.url, h.skip_verify) for h in local.hosts] == [("https://registry.local:5000", True)]
