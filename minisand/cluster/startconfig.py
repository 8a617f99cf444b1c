"""From `start` flags, `config set` defaults and the stored profile to the ClusterConfig to reconcile (pure).

Every option, its parser and where its value lands come from the table in minisand/cluster/options.py.
Precedence: a flag given now > the profile's stored value > the `minisand config set` default > the built-in
default. On an existing profile the stored value is the value (`config set` defaults shape new profiles only).
Options that cannot change on an existing cluster (driver, Kubernetes version, node count, runtime) are refused
with a hint; resources (cpus/memory/disk) and --extra-config of existing machines are kept with a warning, as
minikube does for resources, except a VM's cpus/memory: stored, they apply at its next cold boot. A new VM may
not ask for more CPUs or memory than the host has (minikube's rule)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from minisand.cluster.options import BY_ATTR, BY_NAME, OPTIONS, Option, parse_flag, parse_setting
from minisand.config import validate as v
from minisand.config.model import ClusterConfig, DriverOptions, MirrorConfig
from minisand.errors import ExitCode, MinisandError, bad_input


class StartRequest:
    """Raw flags of `minisand start`, by option (python-style names such as disk_size); None is "not given"."""

    def __init__(self, **given: object) -> None:
        unknown = sorted(set(given) - set(BY_ATTR))
        if unknown:
            raise TypeError(f"unknown start options: {', '.join(unknown)}")
        self.given: dict[str, object] = {BY_ATTR[k].name: val for k, val in given.items() if val is not None}

    def get(self, name: str) -> object | None:
        return self.given.get(name)


@dataclass
class Resolved:
    config: ClusterConfig
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # option -> flag | profile | config | default

    def options(self) -> dict[str, dict[str, Any]]:
        """Each option's resolved value and where it came from (`start --dry-run`)."""
        out: dict[str, dict[str, Any]] = {}
        for opt in OPTIONS:
            value = _get(self.config, opt.target)
            out[opt.name] = {"value": list(value) if isinstance(value, tuple) else value,
                             "text": opt.show(value), "source": self.sources.get(opt.name, "default")}
        return out


def _get(cfg: ClusterConfig, target: str) -> Any:
    obj: Any = cfg
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


class _Resolver:
    def __init__(self, name: str, req: StartRequest, existing: ClusterConfig | None,
                 settings: dict[str, str | list[str]], host: v.HostResources) -> None:
        self.name = name
        self.req = req
        self.existing = existing
        self.settings = settings
        self.host = host
        self.warnings: list[str] = []
        self.sources: dict[str, str] = {}

    def value(self, opt: Option) -> Any:
        value, source = self._pick(opt)
        self.sources[opt.name] = source
        return value

    def _concrete(self, opt: Option, value: Any) -> Any:
        if opt.name == "cpus" and value == v.CPUS_MAX:
            return v.max_cpus(self.host)
        return value

    def _check_stored(self, opt: Option, stored: Any) -> None:
        """A stored value the option's own parser would not give back was edited by hand: the profile is corrupt
        (exit 13), not a flag the user just typed. Lists of names (addons) are checked name by name."""
        if stored is None or stored == opt.default() or opt.kind == "switch":
            return
        why = ""
        try:
            if opt.kind == "list":
                ok = all(not isinstance(x, str) or opt.parse(x) == x for x in stored)
            else:
                ok = opt.parse(opt.show(stored)) == stored
        except MinisandError as exc:
            ok, why = False, f" ({exc.message})"
        if not ok:
            shown = repr(stored) if len(repr(stored)) <= 80 else repr(stored)[:77] + "..."
            raise MinisandError(f"profile {self.name!r} stores an invalid {opt.flag}: {shown}{why}",
                                hint=f"fix its config.json, or `minisand delete -p {self.name}`",
                                code=ExitCode.PROFILE_CORRUPT)

    def _pick(self, opt: Option) -> tuple[Any, str]:
        raw = self.req.get(opt.name)
        e = self.existing
        stored: Any = _get(e, opt.target) if e is not None else None
        if e is not None:
            self._check_stored(opt, stored)
        if raw is not None:
            new = self._concrete(opt, parse_flag(opt, raw))
            if e is None:
                return new, "flag"
            if opt.accumulate:
                return tuple(dict.fromkeys((*stored, *new))), "flag"
            if new != stored and opt.on_existing == "refuse":
                raise bad_input(f"profile {self.name!r} has {opt.flag} {opt.show(stored)}; it cannot change to "
                                f"{opt.show(new)} on an existing cluster",
                                f"run `minisand delete -p {self.name}` first, or use another profile with -p")
            if new != stored and opt.on_existing == "keep":
                if opt.name in ("cpus", "memory") and _is_vm(e.driver):
                    return new, "flag"  # stored; the VM gets it at its next cold boot (cluster/start.py says when)
                self.warnings.append(f"{opt.flag} cannot change on an existing cluster: keeping "
                                     f"{opt.show(stored) or 'none'}; `minisand delete` first to change it")
                return stored, "profile"
            return new, "flag"
        if e is not None:
            return stored, "profile"
        if opt.settable and opt.name in self.settings:
            return self._concrete(opt, parse_setting(opt, self.settings[opt.name])), "config"
        return opt.default(), "default"


def _is_vm(driver: str) -> bool:
    from minisand.drivers.registry import lookup

    return lookup(driver).is_vm


def resolve(name: str, req: StartRequest, existing: ClusterConfig | None,
            settings: dict[str, str | list[str]], default_driver: str | None,
            host: v.HostResources | None = None) -> Resolved:
    v.check_profile_name(name)
    r = _Resolver(name, req, existing, settings, host or v.HostResources.probe())
    values = {opt.target: r.value(opt) for opt in OPTIONS}
    if values["driver"] is None:
        if default_driver is None:
            raise MinisandError("no driver chosen", hint="pass --driver", code=ExitCode.BAD_INPUT)
        values["driver"] = BY_NAME["driver"].parse(default_driver)
    if req.get("no-kubernetes") and req.get("kubernetes-version") is not None:
        raise bad_input("--no-kubernetes and --kubernetes-version contradict each other", "drop one of them")
    cfg = _build(name, values)
    from minisand.images.sources import mirror_advice, validate_mirrors

    validate_mirrors(cfg.mirrors)
    _check_driver_options(cfg)
    if existing is None:
        r.warnings += _check_host(cfg, r.host)
    r.warnings += mirror_advice(cfg.mirrors)
    return Resolved(cfg, r.warnings, r.sources)


def _build(name: str, values: dict[str, Any]) -> ClusterConfig:
    top: dict[str, Any] = {}
    mirrors: dict[str, Any] = {}
    driver: dict[str, Any] = {}
    for target, value in values.items():
        group, _, attr = target.partition(".")
        if group == "mirrors":
            mirrors[attr] = value
        elif group == "driver_options":
            driver[attr] = value
        else:
            top[target] = value
    return ClusterConfig(name=name, **top, mirrors=MirrorConfig(**mirrors), driver_options=DriverOptions(**driver))


def _check_driver_options(cfg: ClusterConfig) -> None:
    opts = cfg.driver_options
    if cfg.driver == "ssh":
        if not opts.ssh_ip:
            raise bad_input("the ssh driver needs --ssh-ip-address", "e.g. --ssh-ip-address=127.0.0.1")
        if not opts.ssh_key:
            raise bad_input("the ssh driver needs --ssh-key (a private key file)", "e.g. --ssh-key=~/.ssh/id_ed25519")


def _check_host(cfg: ClusterConfig, host: v.HostResources) -> list[str]:
    """A new VM may not have more vCPUs or memory than the host (minikube refuses both without --force); memory
    that leaves the host less than 1 GiB gets a warning. The none and ssh drivers use the machine as it is."""
    from minisand.drivers.registry import lookup

    if not lookup(cfg.driver).is_vm:
        return []
    if cfg.cpus > host.cpus:
        raise bad_input(f"--cpus {cfg.cpus} is more than the {host.cpus} CPUs this host has",
                        f"use --cpus={host.cpus} or fewer (--cpus=max takes them all)", reason="RSRC_OVER_ALLOC_CPU")
    if host.memory_mb and cfg.memory_mb > host.memory_mb:
        advised = max(v.MIN_MEMORY_MB, host.memory_mb - 1024)
        raise bad_input(f"--memory {cfg.memory_mb}mb is more than the {host.memory_mb} MiB this host has",
                        f"use --memory={advised}mb or less", reason="RSRC_OVER_ALLOC_MEM")
    if host.memory_mb and cfg.memory_mb > host.memory_mb - 1024:
        return [f"--memory {cfg.memory_mb}mb leaves this host ({host.memory_mb} MiB) less than 1 GiB; "
                "it may become unstable"]
    return []
