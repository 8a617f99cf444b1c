"""Global defaults set with `minisand config set KEY VALUE` (MINISAND_HOME/config.json), like minikube's
config. Each key is validated with the same rules as the start flag of the same name."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from minisand.config import validate as v
from minisand.errors import ExitCode, MinisandError, bad_input
from minisand.fsutil import atomic_write_text
from minisand.paths import Home


def _bool(value: str) -> str:
    low = value.strip().lower()
    if low in ("true", "yes", "1", "on"):
        return "true"
    if low in ("false", "no", "0", "off"):
        return "false"
    raise bad_input(f"{value!r} is not a boolean", "use true or false")


def _choice(*options: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in options:
            raise bad_input(f"{value!r} is not one of {', '.join(options)}", f"use {options[0]}")
        return value
    return check


def _int_range(lo: int, hi: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        try:
            n = int(value)
        except ValueError:
            raise bad_input(f"{value!r} is not a number", f"use a number between {lo} and {hi}") from None
        if not lo <= n <= hi:
            raise bad_input(f"{n} is out of range ({lo}..{hi})", f"use a number between {lo} and {hi}")
        return str(n)
    return check


def _keep(fn: Callable[[str], object]) -> Callable[[str], str]:
    def check(value: str) -> str:
        fn(value)
        return value
    return check


@dataclass(frozen=True)
class Key:
    name: str
    check: Callable[[str], str]
    description: str
    repeatable: bool = False


KEYS: dict[str, Key] = {k.name: k for k in (
    Key("driver", lambda s: s, "default VM driver (checked when `start` uses it)"),
    Key("container-runtime", _choice("containerd"), "container runtime (containerd only)"),
    Key("kubernetes-version", v.parse_kubernetes_version, "Kubernetes version, e.g. v1.36.4"),
    Key("cpus", _keep(v.parse_cpus), "vCPUs per node"),
    Key("memory", _keep(v.parse_memory), "memory per node, e.g. 4g"),
    Key("disk-size", _keep(v.parse_disk), "data disk size per node, e.g. 20g"),
    Key("iso-url", lambda s: v.check_url(s, "iso-url", ("http", "https", "file")), "guest ISO URL"),
    Key("image-mirror-country", lambda s: s.strip().lower(), "mirror preset country code (cn)"),
    Key("image-repository", lambda s: s.rstrip("/"), "control-plane image repository"),
    Key("registry-mirror", lambda s: s, "[REGISTRY=]URL registry mirror", repeatable=True),
    Key("insecure-registry", lambda s: v.check_host_port(s, "insecure-registry"), "HOST[:PORT]",
        repeatable=True),
    Key("binary-mirror", lambda s: v.check_url(s, "binary-mirror", ("http", "https", "file")),
        "base URL laid out like dl.k8s.io"),
    Key("gvisor-mirror", lambda s: v.check_url(s, "gvisor-mirror", ("http", "https", "file")),
        "base URL laid out like gVisor's release bucket"),
    Key("offline", _bool, "use only the configured mirrors, never upstream download sources"),
    Key("nodes", _int_range(1, v.MAX_NODES), "number of nodes"),
    Key("wait", lambda s: s, "components to wait for (comma-separated, all, none)"),
    Key("wait-timeout", _int_range(10, 7200), "seconds to wait for components"),
    Key("qemu-accel", _choice("auto", "kvm", "tcg"), "qemu/kvm2 accelerator"),
    Key("guest-egress", _bool, "user-mode networking: allow the guest to reach the outside"),
    Key("network", _choice("default", "user"), "kvm2 network mode"),
    Key("libvirt-uri", lambda s: s, "libvirt connection URI"),
)}


def _key(name: str) -> Key:
    if name not in KEYS:
        raise MinisandError(f"unknown config key {name!r}", hint=f"keys: {', '.join(sorted(KEYS))}",
                            code=ExitCode.BAD_INPUT)
    return KEYS[name]


class Settings:
    def __init__(self, home: Home) -> None:
        self.path = home.settings

    def load(self) -> dict[str, str | list[str]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise MinisandError(f"{self.path} is not valid JSON: {exc.msg}",
                                hint=f"fix or remove {self.path}", code=ExitCode.PROFILE_CORRUPT) from None
        if not isinstance(data, dict):
            raise MinisandError(f"{self.path} is not a JSON object", hint=f"remove {self.path}",
                                code=ExitCode.PROFILE_CORRUPT)
        return data

    def _save(self, data: dict[str, str | list[str]]) -> None:
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)

    def set(self, name: str, value: str) -> None:
        key = _key(name)
        checked = key.check(value)
        data = self.load()
        if key.repeatable:
            data[name] = [c.strip() for c in checked.split(",") if c.strip()]
        else:
            data[name] = checked
        self._save(data)

    def get(self, name: str) -> str | list[str] | None:
        _key(name)
        return self.load().get(name)

    def unset(self, name: str) -> None:
        _key(name)
        data = self.load()
        data.pop(name, None)
        self._save(data)
