from __future__ import annotations

import pytest

from minisand.config import validate as v
from minisand.errors import ExitCode, MinisandError


@pytest.mark.parametrize(("text", "mb"), [("4g", 4096), ("4096mb", 4096), ("4096", 4096), ("1.5G", 1536),
                                          ("2GiB", 2048), ("20000MB", 20000), ("1t", 1048576), ("512m", 512)])
def test_sizes(text: str, mb: int) -> None:
    assert v.parse_size_mb(text, "--memory") == mb


@pytest.mark.parametrize("text", ["lots", "", "4x", "-1g", "g4", "0"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(MinisandError) as exc:
        v.parse_size_mb(text, "--memory")
    assert exc.value.code == ExitCode.BAD_INPUT
    assert "--memory" in exc.value.message and exc.value.hint


def test_memory_minimum() -> None:
    with pytest.raises(MinisandError, match="below the minimum"):
        v.parse_memory("512m")


@pytest.mark.parametrize(("text", "n"), [("1", 1), ("2", 2), ("64", 64)])
def test_cpus(text: str, n: int) -> None:
    assert v.parse_cpus(text) == n


def test_cpus_max_is_the_hosts_count_within_the_cap() -> None:
    assert v.parse_cpus("max") == v.parse_cpus(" MAX ") == v.CPUS_MAX
    assert v.max_cpus(v.HostResources(cpus=2, memory_mb=1)) == 2
    assert v.max_cpus(v.HostResources(cpus=256, memory_mb=1)) == v.MAX_CPUS


@pytest.mark.parametrize("text", ["0", "-2", "65", "two", "1.5", "", "1e3", "99999999999999999999"])
def test_bad_cpus(text: str) -> None:
    with pytest.raises(MinisandError) as exc:
        v.parse_cpus(text)
    assert exc.value.code == ExitCode.BAD_INPUT


@pytest.mark.parametrize("url", ["https://mirror.example.com", "http://127.0.0.1:5000/v2/x", "https://h:443/"])
def test_urls(url: str) -> None:
    assert v.check_url(url, "--registry-mirror") == url.rstrip("/")


@pytest.mark.parametrize("url", ["mirror.example.com", "ftp://x", "https://", "http://h:99999", "https://a b"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(MinisandError):
        v.check_url(url, "--registry-mirror")


def test_file_urls_only_where_allowed() -> None:
    assert v.check_url("file:///tmp/x.iso", "--iso-url", ("http", "https", "file")) == "file:///tmp/x.iso"
    with pytest.raises(MinisandError):
        v.check_url("file:///tmp/x.iso", "--registry-mirror")


@pytest.mark.parametrize("hp", ["registry.local", "registry.local:5000", "10.0.2.100:5000", "[::1]:5000", "h"])
def test_host_port(hp: str) -> None:
    assert v.check_host_port(hp, "--insecure-registry") == hp


def test_host_port_with_scheme_gives_hint() -> None:
    with pytest.raises(MinisandError) as exc:
        v.check_host_port("http://registry.local:5000", "--insecure-registry")
    assert "scheme" in exc.value.message
    assert "registry.local:5000" in exc.value.hint


@pytest.mark.parametrize("hp", ["registry.local:0", "registry.local:70000", "bad host", "a/b"])
def test_bad_host_port(hp: str) -> None:
    with pytest.raises(MinisandError):
        v.check_host_port(hp, "--insecure-registry")


def test_versions() -> None:
    assert v.parse_kubernetes_version("1.36.4") == "v1.36.4"
    assert v.parse_kubernetes_version("v1.36.4") == "v1.36.4"
    for bad in ("1.36", "latest-ish", "v1.36.4-rc.0"):
        with pytest.raises(MinisandError):
            v.parse_kubernetes_version(bad)


def test_profile_names() -> None:
    assert v.check_profile_name("dev-1") == "dev-1"
    for bad in ("Dev", "-x", "x-", "a/b", "", "a" * 50):
        with pytest.raises(MinisandError):
            v.check_profile_name(bad)


@pytest.mark.parametrize(("fn", "text"), [(v.parse_memory, "99999999g"), (v.parse_memory, "1025g"),
                                         (v.parse_disk, "17t"), (v.parse_disk, "99999999999999999999g")])
def test_sizes_above_the_caps(fn: object, text: str) -> None:
    with pytest.raises(MinisandError, match="above minisand's limit") as exc:
        fn(text)  # type: ignore[operator]
    assert exc.value.code == ExitCode.BAD_INPUT and exc.value.hint


def test_sizes_at_the_caps() -> None:
    assert v.parse_memory("1t") == v.MAX_MEMORY_MB
    assert v.parse_disk("16t") == v.MAX_DISK_MB


@pytest.mark.parametrize(("text", "secs"), [("900", 900.0), ("15m", 900.0), ("90s", 90.0), ("1h30m", 5400.0),
                                            ("2.5m", 150.0), ("24h", 86400.0), (" 15M ", 900.0)])
def test_durations(text: str, secs: float) -> None:
    assert v.parse_duration(text, "--wait-timeout") == secs


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-5", "0", "0s", "", "15x", "m", "24h1s", "1e9", "25h",
                                  "99999999999999999999999", "1h-5m", "15 m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(MinisandError) as exc:
        v.parse_duration(text, "--wait-timeout")
    assert exc.value.code == ExitCode.BAD_INPUT and "--wait-timeout" in exc.value.message and exc.value.hint


@pytest.mark.parametrize(("text", "ok"), [("22", True), ("1", True), ("65535", True), ("0", False),
                                          ("65536", False), ("-1", False), ("ssh", False), ("", False)])
def test_ports(text: str, ok: bool) -> None:
    if ok:
        assert v.parse_port(text, "--ssh-port") == int(text)
        return
    with pytest.raises(MinisandError, match="--ssh-port"):
        v.parse_port(text, "--ssh-port")


@pytest.mark.parametrize("url", ["http://h:0/x", "https://h:0", "file://otherhost/x", "http://h/\x00"])
def test_bad_url_ports_and_hosts(url: str) -> None:
    with pytest.raises(MinisandError):
        v.check_url(url, "--binary-mirror", ("http", "https", "file"))
