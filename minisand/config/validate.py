"""Validation of user input, up front, before anything is created. Pure functions; each raises a
MinisandError(BAD_INPUT) whose message names the flag and whose hint shows a valid example."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from minisand import paths
from minisand.errors import bad_input

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_FACTOR_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}

MIN_MEMORY_MB = 1024
MAX_MEMORY_MB = 1024 * 1024  # 1 TiB per node: anything above is a typo (the host check refuses less than that)
MIN_DISK_MB = 4096
MAX_DISK_MB = 16 * 1024 * 1024  # 16 TiB per node
MAX_CPUS = 64
CPUS_MAX = 0  # `--cpus max`: the host's CPU count (capped at MAX_CPUS), filled in when the host is known
MAX_NODES = 16
MAX_WAIT_TIMEOUT = 24 * 3600.0  # seconds


@dataclass(frozen=True)
class HostResources:
    """What this host has, for `--cpus max` and the VM drivers' resource checks (tests pass fixed values)."""

    cpus: int
    memory_mb: int

    @classmethod
    def probe(cls) -> HostResources:
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
        except (ValueError, OSError):
            memory = 0  # unknown: no memory check
        return cls(cpus=os.cpu_count() or 1, memory_mb=int(memory))


def parse_size_mb(value: str, flag: str) -> int:
    """'4g', '4096mb', '4096' (MiB), '1.5G', '20000MB' -> MiB."""
    m = _SIZE.match(value)
    if not m:
        raise bad_input(f"{flag} {value!r} is not a size", f"use a size such as {flag}=4g or {flag}=4096mb")
    number, unit = float(m.group(1)), m.group(2).lower()
    mb = int(number * _FACTOR_MB[unit])
    if mb <= 0:
        raise bad_input(f"{flag} {value!r} must be positive", f"use a size such as {flag}=4g")
    return mb


def parse_memory(value: str) -> int:
    mb = parse_size_mb(value, "--memory")
    if mb < MIN_MEMORY_MB:
        raise bad_input(f"--memory {value!r} is {mb} MiB, below the minimum of {MIN_MEMORY_MB} MiB",
                        "a Kubernetes node needs at least --memory=2g")
    if mb > MAX_MEMORY_MB:
        raise bad_input(f"--memory {value!r} is {mb} MiB, above minisand's limit of 1 TiB per node",
                        "use --memory=4g")
    return mb


def parse_disk(value: str) -> int:
    mb = parse_size_mb(value, "--disk-size")
    if mb < MIN_DISK_MB:
        raise bad_input(f"--disk-size {value!r} is {mb} MiB, below the minimum of {MIN_DISK_MB} MiB",
                        "use --disk-size=20g")
    if mb > MAX_DISK_MB:
        raise bad_input(f"--disk-size {value!r} is {mb} MiB, above minisand's limit of 16 TiB per node",
                        "use --disk-size=20g")
    return mb


def parse_cpus(value: str) -> int:
    """A count in 1..MAX_CPUS, or CPUS_MAX for 'max' (see max_cpus)."""
    if value.strip().lower() == "max":
        return CPUS_MAX
    n = parse_int(value, "--cpus", 1, MAX_CPUS, "use --cpus=2 or --cpus=max")
    return n


def max_cpus(host: HostResources) -> int:
    """What `--cpus max` means on this host: all its CPUs, but never more than MAX_CPUS."""
    return max(1, min(host.cpus, MAX_CPUS))


def parse_int(value: str, flag: str, lo: int, hi: int, hint: str = "") -> int:
    text = value.strip()
    if not re.fullmatch(r"[+-]?\d{1,12}", text):
        raise bad_input(f"{flag} {value!r} is not a whole number", hint or f"use a number between {lo} and {hi}")
    n = int(text)
    if not lo <= n <= hi:
        raise bad_input(f"{flag} {n} is out of range ({lo}..{hi})", hint or f"use a number between {lo} and {hi}")
    return n


def parse_nodes(value: str) -> int:
    return parse_int(value, "--nodes", 1, MAX_NODES, "use --nodes=1")


def parse_port(value: str, flag: str) -> int:
    """A TCP port, 1..65535 (0 is refused: it would mean "any" to some tools and "default" to others)."""
    return parse_int(value, flag, 1, 65535, f"ports are 1..65535, e.g. {flag}=22")


def parse_bool(value: str, flag: str) -> bool:
    low = value.strip().lower()
    if low in ("true", "yes", "1", "on"):
        return True
    if low in ("false", "no", "0", "off"):
        return False
    raise bad_input(f"{flag} {value!r} is not a boolean", "use true or false")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_DURATION_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: str, flag: str, maximum: float = MAX_WAIT_TIMEOUT) -> float:
    """Seconds from '900', '90s', '15m', '1h30m' or '2.5m': positive, finite and at most `maximum`."""
    text = value.strip().lower()
    hint = f"use a duration such as {flag}=15m, 90s or 1h (at most {maximum / 3600:g}h)"
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        secs = float(text)
    elif text and _DURATION_PART.sub("", text) == "":
        secs = sum(float(n) * _DURATION_UNIT[u] for n, u in _DURATION_PART.findall(text))
    else:
        raise bad_input(f"{flag} {value!r} is not a duration", hint)
    if not math.isfinite(secs) or secs <= 0:
        raise bad_input(f"{flag} {value!r} must be a positive duration", hint)
    if secs > maximum:
        raise bad_input(f"{flag} {value!r} is longer than {maximum / 3600:g}h", hint)
    return secs


def check_url(value: str, flag: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    try:
        parts = urlsplit(value)
        parts.hostname  # noqa: B018 (parses the host: a bracketed IPv6 address that is not one raises here)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for http://[::1
        raise bad_input(f"{flag} {value!r} is not a URL ({exc})", f"use {flag}=https://mirror.example.com/...") \
            from None
    if parts.scheme not in schemes:
        raise bad_input(f"{flag} {value!r} is not a URL with scheme {'/'.join(schemes)}",
                        f"use {flag}=https://mirror.example.com/...")
    if parts.scheme != "file" and not parts.hostname:
        raise bad_input(f"{flag} {value!r} has no host", f"use {flag}=https://mirror.example.com/...")
    if parts.scheme == "file" and (not parts.path or parts.netloc not in ("", "localhost")):
        raise bad_input(f"{flag} {value!r} is not a local file:// URL", f"use {flag}=file:///path/to/file")
    try:
        port = parts.port
    except ValueError:
        raise bad_input(f"{flag} {value!r} has an invalid port", f"use {flag}=https://host:5000") from None
    if port == 0:
        raise bad_input(f"{flag} {value!r} has port 0", f"ports are 1..65535, e.g. {flag}=https://host:5000")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise bad_input(f"{flag} {value!r} contains whitespace or control characters",
                        "quote nothing inside the URL")
    return value.rstrip("/") if parts.scheme != "file" else value


_HOSTPORT = re.compile(
    r"^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*)(?::(\d{1,5}))?$")


def check_host_port(value: str, flag: str) -> str:
    """HOST[:PORT] with no scheme and no path (a registry host as containerd names it)."""
    if "://" in value:
        raise bad_input(f"{flag} {value!r} must not have a scheme",
                        f"name the registry as HOST[:PORT], e.g. {flag}={value.split('://', 1)[1].split('/')[0]}")
    m = _HOSTPORT.match(value)
    if not m:
        raise bad_input(f"{flag} {value!r} is not HOST[:PORT]", f"use {flag}=registry.local:5000")
    if m.group(1) and not 0 < int(m.group(1)) < 65536:
        raise bad_input(f"{flag} {value!r} has an invalid port", f"use {flag}=registry.local:5000")
    return value


_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def parse_kubernetes_version(value: str) -> str:
    m = _VERSION.match(value.strip())
    if not m:
        raise bad_input(f"--kubernetes-version {value!r} is not a version", "use --kubernetes-version=v1.36.4")
    return f"v{m.group(1)}.{m.group(2)}.{m.group(3)}"


def version_tuple(version: str) -> tuple[int, int, int]:
    m = _VERSION.match(version)
    if not m:
        raise bad_input(f"{version!r} is not a version", "use v1.36.4")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def check_profile_name(name: str) -> str:
    return paths.check_profile_name(name)
