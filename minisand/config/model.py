"""The user's intent for a cluster, as frozen dataclasses stored in profiles/<name>/config.json.

Machine facts a driver learns (ports, PIDs, IPs, pinned host keys) are not here: they live in the machine's
own state file (see minisand.drivers.state)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from minisand.errors import ExitCode, MinisandError

SCHEMA = 1
DEFAULT_KUBERNETES_VERSION = "v1.36.4"
DEFAULT_CPUS = 2
DEFAULT_MEMORY_MB = 4096
DEFAULT_DISK_MB = 20480
DEFAULT_WAIT = ("apiserver", "system_pods", "node_ready", "default_sa")
WAIT_COMPONENTS = ("apiserver", "system_pods", "node_ready", "default_sa", "apps_running")
DEFAULT_WAIT_TIMEOUT = 900.0


@dataclass(frozen=True)
class MirrorConfig:
    image_mirror_country: str | None = None
    image_repository: str | None = None
    registry_mirrors: tuple[str, ...] = ()  # "[REGISTRY=]URL", in the order given
    insecure_registries: tuple[str, ...] = ()  # "HOST[:PORT]"
    binary_mirror: str | None = None
    gvisor_mirror: str | None = None
    offline: bool = False  # only the configured mirrors: never fall back to upstream download sources


@dataclass(frozen=True)
class DriverOptions:
    qemu_accel: str = "auto"  # auto | kvm | tcg
    guest_egress: bool = True  # user-mode networking: may the guest reach beyond the host forwards?
    guest_forwards: tuple[str, ...] = ()  # "GUESTIP:PORT=HOSTIP:PORT" (qemu guestfwd)
    network: str = "default"  # kvm2: "default" (private libvirt network) | "user" (host forwards)
    libvirt_uri: str = "qemu:///system"
    ssh_ip: str | None = None
    ssh_user: str = "root"
    ssh_key: str | None = None
    ssh_port: int = 22


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    driver: str
    container_runtime: str = "containerd"
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    no_kubernetes: bool = False
    cpus: int = DEFAULT_CPUS
    memory_mb: int = DEFAULT_MEMORY_MB
    disk_mb: int = DEFAULT_DISK_MB
    nodes: int = 1
    wait: tuple[str, ...] = DEFAULT_WAIT
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT
    addons: tuple[str, ...] = ()
    extra_config: tuple[str, ...] = ()
    iso_url: str | None = None
    iso_checksum: str | None = None
    mirrors: MirrorConfig = field(default_factory=MirrorConfig)
    driver_options: DriverOptions = field(default_factory=DriverOptions)
    schema: int = SCHEMA

    def machine_names(self) -> list[str]:
        """Node machines: the first is named like the profile, the others <profile>-m02, -m03, ..."""
        return [self.name] + [f"{self.name}-m{i:02d}" for i in range(2, self.nodes + 1)]


T = TypeVar("T")


def to_dict(obj: object) -> dict[str, Any]:
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"{obj!r} is not a dataclass instance")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[f.name] = to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object")
        return from_dict(typing.cast(type[Any], tp), value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_coerce(item_tp, v, f"{where}[]") for v in value)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(non_none[0], value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (str, int, bool, float):
        if type(value) is not tp:
            raise ValueError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
        return value
    raise ValueError(f"{where}: unsupported type {tp!r}")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(typing.cast(Any, cls))}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown keys {sorted(unknown)}")
    for name in names & set(data):
        kwargs[name] = _coerce(hints[name], data[name], f"{where}.{name}" if where else name)
    return cls(**kwargs)


def cluster_from_dict(data: dict[str, Any], source: str) -> ClusterConfig:
    try:
        schema = data.get("schema", SCHEMA)
        if schema != SCHEMA:
            raise ValueError(f"schema {schema} is not {SCHEMA}")
        return from_dict(ClusterConfig, data)
    except (ValueError, TypeError) as exc:
        raise MinisandError(f"profile config {source} is unreadable: {exc}",
                            hint="fix the file or run `minisand delete` for this profile",
                            code=ExitCode.PROFILE_CORRUPT) from None
