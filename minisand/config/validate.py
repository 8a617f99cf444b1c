"""Validation of user input, up front, before anything is created. Pure functions; each raises a
MinisandError(BAD_INPUT) whose message names the flag and whose hint shows a valid example."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from minisand.errors import bad_input

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_FACTOR_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}

MIN_MEMORY_MB = 1024
MIN_DISK_MB = 4096
MAX_CPUS = 64
MAX_NODES = 16


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
    return mb


def parse_disk(value: str) -> int:
    mb = parse_size_mb(value, "--disk-size")
    if mb < MIN_DISK_MB:
        raise bad_input(f"--disk-size {value!r} is {mb} MiB, below the minimum of {MIN_DISK_MB} MiB",
                        "use --disk-size=20g")
    return mb


def parse_cpus(value: str) -> int:
    if value.strip().lower() == "max":
        return os.cpu_count() or 1
    try:
        n = int(value)
    except ValueError:
        raise bad_input(f"--cpus {value!r} is not a number", "use --cpus=2 or --cpus=max") from None
    if n < 1 or n > MAX_CPUS:
        raise bad_input(f"--cpus {n} is out of range (1..{MAX_CPUS})", "use --cpus=2")
    return n


def check_nodes(n: int) -> int:
    if n < 1 or n > MAX_NODES:
        raise bad_input(f"--nodes {n} is out of range (1..{MAX_NODES})", "use --nodes=1")
    return n


def check_url(value: str, flag: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise bad_input(f"{flag} {value!r} is not a URL with scheme {'/'.join(schemes)}",
                        f"use {flag}=https://mirror.example.com/...")
    if parts.scheme != "file" and not parts.hostname:
        raise bad_input(f"{flag} {value!r} has no host", f"use {flag}=https://mirror.example.com/...")
    if parts.scheme == "file" and not parts.path:
        raise bad_input(f"{flag} {value!r} has no path", f"use {flag}=file:///path/to/file")
    try:
        _ = parts.port
    except ValueError:
        raise bad_input(f"{flag} {value!r} has an invalid port", f"use {flag}=https://host:5000") from None
    if any(c.isspace() for c in value):
        raise bad_input(f"{flag} {value!r} contains whitespace", "quote nothing inside the URL")
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


_PROFILE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,40}[a-z0-9])?$")


def check_profile_name(name: str) -> str:
    if not _PROFILE.match(name):
        raise bad_input(f"profile name {name!r} is invalid",
                        "use lowercase letters, digits and '-', starting and ending with a letter or digit")
    return name


_COMPONENTS = ("kubelet", "apiserver", "controller-manager", "scheduler", "etcd", "kube-proxy", "kubeadm")


def parse_extra_config(value: str) -> tuple[str, str, str]:
    """component.key=value (minikube's --extra-config)."""
    m = re.match(r"^([a-z-]+)\.([A-Za-z0-9-]+)=(.*)$", value)
    if not m or m.group(1) not in _COMPONENTS:
        raise bad_input(f"--extra-config {value!r} is not component.key=value",
                        f"components: {', '.join(_COMPONENTS)}; e.g. --extra-config kubelet.max-pods=50")
    return m.group(1), m.group(2), m.group(3)
