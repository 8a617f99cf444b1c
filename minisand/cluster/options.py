"""The one table of `minisand start` options. Everything else comes from it:

- the `start` flags (minisand/cli/start.py builds the typer parameters from OPTIONS),
- `minisand config set/get/unset/view` (the options with `settable`, parsed by the same function as the flag),
- where each value lands in the stored profile (`target`: a ClusterConfig field, `mirrors.<field>` or
  `driver_options.<field>`), and what happens when it differs on an existing cluster (`on_existing`),
- the resolved values `start --dry-run` shows (minisand/cluster/startconfig.py),
- the README's `start` flags table, which tests/unit/test_options.py checks against this table.

A parser takes one raw value and returns what goes into ClusterConfig, or raises MinisandError(BAD_INPUT) with a
one-line message naming the flag and a hint. Parsers are pure; the modules they need are imported when they run,
so `minisand --help` stays fast. Cross-option rules (the ssh driver needs an address, the host's CPUs and memory)
are in startconfig.resolve."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from minisand.config import validate as v
from minisand.config.model import WAIT_COMPONENTS, ClusterConfig, DriverOptions, MirrorConfig
from minisand.errors import MinisandError, bad_input

Kind = Literal["value", "list", "switch"]
OnExisting = Literal["change", "keep", "refuse"]


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    return str(value)


@dataclass(frozen=True)
class Option:
    name: str  # the flag without "--"; also the `config set` key when settable
    parse: Callable[[str], Any]  # one raw value -> what goes into the profile (raises BAD_INPUT)
    target: str  # "cpus", "mirrors.binary_mirror", "driver_options.ssh_port", ...
    help: str
    metavar: str = "TEXT"
    kind: Kind = "value"  # value: one value; list: repeatable; switch: --flag/--off-flag
    aliases: tuple[str, ...] = ()  # more names of the flag, e.g. "-n"
    off: str | None = None  # a switch's off flag, e.g. "--online"
    settable: bool = True  # a `minisand config set` key
    split: bool = False  # list: "a,b" is two values
    accumulate: bool = False  # list: added to the stored values instead of replacing them
    clearable: bool = False  # an empty flag value is allowed: it clears the value (or means none)
    on_existing: OnExisting = "change"  # keep: the stored value stays, with a warning; refuse: an error
    show: Callable[[Any], str] = _show  # the value as text (`--dry-run`)

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    def default(self) -> Any:
        """The built-in default: the default of the profile field it lands in (None for the driver: the best
        healthy one is chosen later)."""
        owner: type[Any] = ClusterConfig
        path = self.target.split(".")
        if path[0] == "mirrors":
            owner, path = MirrorConfig, path[1:]
        elif path[0] == "driver_options":
            owner, path = DriverOptions, path[1:]
        field = {f.name: f for f in dataclasses.fields(owner)}[path[0]]
        if field.default is not dataclasses.MISSING:
            return field.default
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return None


# ------------------------------------------------------------------------------------------------ parsers


def _driver(value: str) -> str:
    from minisand.drivers.registry import lookup

    return lookup(value).name


_REJECTED_RUNTIMES = {"docker": "Docker Engine", "cri-o": "CRI-O", "crio": "CRI-O"}


def parse_runtime(value: str) -> str:
    low = value.strip().lower()
    if low == "containerd":
        return low
    what = _REJECTED_RUNTIMES.get(low, repr(value))
    raise bad_input(f"container runtime {what} is not supported: minisand runs containerd (with runc, gVisor and "
                    "Kata as RuntimeClasses)", "use --container-runtime=containerd", reason="RUNTIME_UNSUPPORTED")


MIN_KUBERNETES = (1, 33)
MAX_KUBERNETES = (1, 37)


def parse_kubernetes_version(value: str) -> str:
    version = v.parse_kubernetes_version(value)
    major, minor, _ = v.version_tuple(version)
    if not MIN_KUBERNETES <= (major, minor) <= MAX_KUBERNETES:
        lo = ".".join(map(str, MIN_KUBERNETES))
        hi = ".".join(map(str, MAX_KUBERNETES))
        raise bad_input(f"Kubernetes {version} is not supported by this minisand (supported: v{lo}.x to v{hi}.x)",
                        "use --kubernetes-version=v1.36.4", reason="KUBERNETES_VERSION_UNSUPPORTED")
    return version


def parse_wait(value: str) -> tuple[str, ...]:
    low = value.strip().lower()
    if low in ("all", "true"):
        return WAIT_COMPONENTS
    if low in ("none", "false", ""):
        return ()
    items = tuple(x.strip() for x in low.split(",") if x.strip())
    bad = [x for x in items if x not in WAIT_COMPONENTS]
    if bad:
        raise bad_input(f"--wait {value!r} names unknown components {bad}",
                        f"use all, none, or a list of: {', '.join(WAIT_COMPONENTS)}")
    return tuple(dict.fromkeys(items))


def _checksum(value: str) -> str:
    """sha256:HEX, sha512:HEX, or a bare digest (its length tells which); the ISO is verified with it."""
    algo, sep, digest = value.strip().lower().rpartition(":")
    if not sep:
        algo = {64: "sha256", 128: "sha512"}.get(len(digest), "")
    lengths = {"sha256": 64, "sha512": 128}
    if algo not in lengths or len(digest) != lengths[algo] or any(c not in "0123456789abcdef" for c in digest):
        raise bad_input(f"--iso-checksum {value!r} is not sha256:<64 hex digits> or sha512:<128 hex digits>",
                        "use --iso-checksum=sha256:<hex>, or leave it out to use URL.sha256")
    return f"{algo}:{digest}"


def _url(flag: str, schemes: tuple[str, ...]) -> Callable[[str], str | None]:
    def parse(value: str) -> str | None:
        return v.check_url(value.strip(), flag, schemes) if value.strip() else None
    return parse


def _country(value: str) -> str | None:
    from minisand.images.presets import preset_for

    low = value.strip().lower()
    return preset_for(low).country if low else None


def _repository(value: str) -> str | None:
    from minisand.images.sources import check_image_repository

    return check_image_repository(value) if value.strip() else None


def _registry_mirror(value: str) -> str:
    from minisand.images.registries import parse_registry_mirror

    parse_registry_mirror(value)
    return value.strip()


def _insecure_registry(value: str) -> str:
    from minisand.images.registries import parse_insecure_registry

    parse_insecure_registry(value)
    return value.strip()


def _addon(value: str) -> str:
    from minisand.addons.names import NAMES

    name = value.strip()
    if name not in NAMES:
        raise bad_input(f"--addons: unknown addon {name!r}", f"known addons: {', '.join(NAMES)}",
                        reason="ADDON_UNKNOWN")
    return name


def _extra_config(value: str) -> str:
    from minisand.config.extraconfig import parse_extra_config

    parse_extra_config(value)
    return value


def _guest_forward(value: str) -> str:
    from minisand.drivers.qemu.cmdline import GuestForward

    GuestForward.parse(value)
    return value


def _choice(flag: str, *options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        low = value.strip().lower()
        if low not in options:
            raise bad_input(f"{flag} {value!r} is not {', '.join(options[:-1])} or {options[-1]}",
                            f"use {flag}={options[0]}")
        return low
    return parse


def _libvirt_uri(value: str) -> str:
    text = value.strip()
    scheme, sep, _rest = text.partition("://")
    if not sep or not scheme or not all(c.isalnum() or c in "+-." for c in scheme) or \
            any(c.isspace() or not c.isprintable() for c in text):
        raise bad_input(f"--libvirt-uri {value!r} is not a libvirt URI", "use --libvirt-uri=qemu:///system")
    return text


def _host(value: str) -> str:
    text = value.strip()
    if ":" in text and not text.startswith("["):
        text = f"[{text}]"  # a bare IPv6 address
    v.check_host_port(text, "--ssh-ip-address")
    return value.strip()


def _ssh_user(value: str) -> str:
    import re

    if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", value.strip()):
        raise bad_input(f"--ssh-user {value!r} is not a user name", "use --ssh-user=root")
    return value.strip()


def _path(flag: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not value.strip() or any(not c.isprintable() for c in value):
            raise bad_input(f"{flag} {value!r} is not a file path", f"use {flag}=~/.ssh/id_ed25519")
        return value.strip()
    return parse


def _size_mb(value: int) -> str:
    return f"{value}mb"


def _seconds(value: float) -> str:
    return f"{value:g}s"


# ------------------------------------------------------------------------------------------------- the table

OPTIONS: tuple[Option, ...] = (
    Option("driver", _driver, "driver", "Driver: kvm2 (kvm, libvirt), qemu, hyperkit, none, ssh. Default: the best "
           "healthy one.", metavar="NAME", on_existing="refuse"),
    Option("container-runtime", parse_runtime, "container_runtime", "Container runtime (containerd).",
           metavar="NAME", on_existing="refuse"),
    Option("kubernetes-version", parse_kubernetes_version, "kubernetes_version",
           "Kubernetes version, e.g. v1.36.4 (v1.33 to v1.37).", metavar="VERSION", on_existing="refuse"),
    Option("cpus", v.parse_cpus, "cpus", f"vCPUs per node: a number or 'max' (the host's, at most {v.MAX_CPUS}). "
           "Default 2.", metavar="N", on_existing="keep"),
    Option("memory", v.parse_memory, "memory_mb", "Memory per node, e.g. 4g or 4096mb (at most the host's). "
           "Default 4g.", metavar="SIZE", on_existing="keep", show=_size_mb),
    Option("disk-size", v.parse_disk, "disk_mb", "Data disk per node, e.g. 20g.", metavar="SIZE",
           on_existing="keep", show=_size_mb),
    Option("nodes", v.parse_nodes, "nodes", f"Number of nodes (1..{v.MAX_NODES}). Default 1.", metavar="N",
           aliases=("-n",), on_existing="refuse"),
    Option("iso-url", _url("--iso-url", ("http", "https", "file")), "iso_url",
           "Guest ISO (https://, http://, file://).", metavar="URL", clearable=True),
    Option("iso-checksum", _checksum, "iso_checksum", "sha256:HEX or sha512:HEX of the ISO (default: URL + "
           ".sha256).", metavar="ALGO:HEX", clearable=True),
    Option("image-mirror-country", _country, "mirrors.image_mirror_country", "Mirror preset by country code (cn).",
           metavar="CODE", clearable=True),
    Option("image-repository", _repository, "mirrors.image_repository", "Control-plane image repository.",
           metavar="HOST/PATH", clearable=True),
    Option("registry-mirror", _registry_mirror, "mirrors.registry_mirrors", "[REGISTRY=]URL containerd mirror "
           "(repeatable; docker.io when no registry is named).", metavar="[REGISTRY=]URL", kind="list", split=True),
    Option("insecure-registry", _insecure_registry, "mirrors.insecure_registries", "HOST[:PORT] reached over "
           "plain HTTP or without TLS verification (repeatable).", metavar="HOST[:PORT]", kind="list", split=True),
    Option("binary-mirror", _url("--binary-mirror", ("http", "https", "file")), "mirrors.binary_mirror",
           "Base URL laid out like dl.k8s.io for kubelet/kubeadm/kubectl.", metavar="URL", clearable=True),
    Option("gvisor-mirror", _url("--gvisor-mirror", ("http", "https", "file")), "mirrors.gvisor_mirror",
           "Base URL laid out like gVisor's release bucket.", metavar="URL", clearable=True),
    Option("offline", lambda s: v.parse_bool(s, "--offline"), "mirrors.offline", "Download only from the "
           "mirrors given (--binary-mirror, --gvisor-mirror, --iso-url); never fall back to upstream.",
           kind="switch", off="--online"),
    Option("wait", parse_wait, "wait", "Components to wait for: all, none, or a comma list of "
           f"{', '.join(WAIT_COMPONENTS)}.", metavar="LIST", clearable=True),
    Option("wait-timeout", lambda s: v.parse_duration(s, "--wait-timeout"), "wait_timeout",
           "How long to wait, e.g. 15m, 900 or 1h (at most 24h).", metavar="DURATION", show=_seconds),
    Option("addons", _addon, "addons", "Addons to enable (repeatable or a,b); kept in the profile.",
           metavar="NAME[,NAME]", kind="list", split=True, accumulate=True, settable=False),
    Option("no-kubernetes", lambda s: v.parse_bool(s, "--no-kubernetes"), "no_kubernetes",
           "A machine with containerd only.", kind="switch", off="--kubernetes", settable=False),
    Option("extra-config", _extra_config, "extra_config", "component.key=value: kubelet, apiserver, "
           "controller-manager, scheduler, etcd flags; kube-proxy fields; kubeadm.ignore-preflight-errors "
           "(repeatable).", metavar="COMPONENT.KEY=VALUE", kind="list", settable=False, on_existing="keep"),
    Option("qemu-accel", _choice("--qemu-accel", "auto", "kvm", "tcg"), "driver_options.qemu_accel",
           "qemu/kvm2: auto, kvm or tcg.", metavar="ACCEL"),
    Option("guest-egress", lambda s: v.parse_bool(s, "--guest-egress"), "driver_options.guest_egress",
           "qemu user networking: may the guest reach beyond its forwards? Default on.", kind="switch",
           off="--no-guest-egress"),
    Option("guest-forward", _guest_forward, "driver_options.guest_forwards", "qemu: expose a host service to the "
           "guest, GUESTIP:PORT=HOSTIP:PORT (repeatable).", metavar="GUESTIP:PORT=HOSTIP:PORT", kind="list",
           settable=False),
    Option("network", _choice("--network", "default", "user"), "driver_options.network",
           "kvm2: 'default' (private libvirt network) or 'user' (host forwards).", metavar="MODE"),
    Option("libvirt-uri", _libvirt_uri, "driver_options.libvirt_uri", "kvm2: libvirt URI (default "
           "qemu:///system).", metavar="URI"),
    Option("ssh-ip-address", _host, "driver_options.ssh_ip", "ssh driver: address.", metavar="HOST",
           settable=False),
    Option("ssh-user", _ssh_user, "driver_options.ssh_user", "ssh driver: user (default root).", metavar="USER",
           settable=False),
    Option("ssh-key", _path("--ssh-key"), "driver_options.ssh_key", "ssh driver: private key file.",
           metavar="PATH", settable=False),
    Option("ssh-port", lambda s: v.parse_port(s, "--ssh-port"), "driver_options.ssh_port",
           "ssh driver: port, 1..65535 (default 22).", metavar="PORT", settable=False),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
BY_ATTR: dict[str, Option] = {o.attr: o for o in OPTIONS}
SETTABLE: tuple[str, ...] = tuple(sorted(o.name for o in OPTIONS if o.settable))


def parse_flag(opt: Option, raw: object) -> Any:
    """A flag's raw value(s) as typer gives them -> the profile value."""
    if opt.kind == "switch":
        return bool(raw)
    if opt.kind == "list":
        items = [raw] if isinstance(raw, str) else list(raw)  # type: ignore[call-overload]
        return tuple(opt.parse(x) for x in _items(opt, items))
    text = str(raw)
    if not text.strip() and not opt.clearable:
        raise bad_input(f"{opt.flag} is empty", f"give {opt.flag} a value, or leave it out")
    return opt.parse(text)


def _items(opt: Option, raw: list[str]) -> list[str]:
    if not opt.split:
        return raw
    return [x.strip() for item in raw for x in item.split(",") if x.strip()]


def setting_key(name: str) -> Option:
    opt = BY_NAME.get(name)
    if opt is None or not opt.settable:
        raise bad_input(f"unknown config key {name!r}", f"keys: {', '.join(SETTABLE)}")
    return opt


def setting_value(name: str, text: str) -> str | list[str]:
    """What `minisand config set NAME TEXT` stores, after the flag's own parser accepted it: the text as given
    (a list for repeatable options, true/false for switches). Raises BAD_INPUT before anything is written."""
    opt = setting_key(name)
    if not text.strip():
        raise bad_input(f"config value for {name} is empty", f"to remove it: minisand config unset {name}")
    if opt.kind == "switch":
        return "true" if opt.parse(text) else "false"
    if opt.kind == "list":
        items = _items(opt, [text])
        for item in items:
            opt.parse(item)
        return items
    opt.parse(text)
    return text.strip()


def parse_setting(opt: Option, stored: object) -> Any:
    """A `config set` default as stored in MINISAND_HOME/config.json -> the profile value."""
    try:
        if opt.kind == "list":
            if isinstance(stored, str):
                stored = [stored]
            if not isinstance(stored, list) or not all(isinstance(x, str) for x in stored):
                raise bad_input(f"{stored!r} is not a list of strings")
            return tuple(opt.parse(x) for x in _items(opt, stored))
        if not isinstance(stored, str):
            raise bad_input(f"{stored!r} is not a string")
        return opt.parse(stored)
    except MinisandError as exc:
        raise bad_input(f"the `minisand config set` default for {opt.name} is invalid: {exc.message}",
                        f"fix it with `minisand config set {opt.name} VALUE` or `minisand config unset "
                        f"{opt.name}`") from None
