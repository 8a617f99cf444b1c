"""From `start` flags, global settings and the stored profile to the ClusterConfig to reconcile (pure).

Precedence: a flag given now > the profile's stored value > `minisand config set` defaults > built-in defaults.
Flags that cannot change on an existing cluster (driver, Kubernetes version, node count, runtime) are refused
with a hint; resources (cpus/memory/disk) of existing machines are kept with a warning, as minikube does."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from minisand.config import validate as v
from minisand.config.model import WAIT_COMPONENTS, ClusterConfig, DriverOptions, MirrorConfig
from minisand.errors import ExitCode, MinisandError, bad_input


@dataclass(frozen=True)
class StartRequest:
    """Raw flags of `minisand start`; None means "not given"."""

    driver: str | None = None
    container_runtime: str | None = None
    kubernetes_version: str | None = None
    cpus: str | None = None
    memory: str | None = None
    disk_size: str | None = None
    iso_url: str | None = None
    iso_checksum: str | None = None
    image_mirror_country: str | None = None
    image_repository: str | None = None
    registry_mirror: tuple[str, ...] | None = None
    insecure_registry: tuple[str, ...] | None = None
    binary_mirror: str | None = None
    gvisor_mirror: str | None = None
    offline: bool | None = None
    nodes: int | None = None
    wait: str | None = None
    wait_timeout: str | None = None
    addons: tuple[str, ...] | None = None
    no_kubernetes: bool | None = None
    extra_config: tuple[str, ...] | None = None
    qemu_accel: str | None = None
    guest_egress: bool | None = None
    guest_forward: tuple[str, ...] | None = None
    network: str | None = None
    libvirt_uri: str | None = None
    ssh_ip_address: str | None = None
    ssh_user: str | None = None
    ssh_key: str | None = None
    ssh_port: int | None = None


@dataclass
class Resolved:
    config: ClusterConfig
    warnings: list[str] = field(default_factory=list)
    changed_mirrors: bool = False


_RUNTIMES = {"containerd"}
_REJECTED_RUNTIMES = {"docker": "Docker Engine", "cri-o": "CRI-O", "crio": "CRI-O"}


def parse_runtime(value: str) -> str:
    low = value.strip().lower()
    if low in _RUNTIMES:
        return low
    what = _REJECTED_RUNTIMES.get(low, repr(value))
    raise bad_input(f"container runtime {what} is not supported: minisand runs containerd (with runc, gVisor and "
                    "Kata as RuntimeClasses)", "use --container-runtime=containerd", reason="RUNTIME_UNSUPPORTED")


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
    return items


def _setting(settings: dict[str, str | list[str]], key: str) -> str | None:
    val = settings.get(key)
    return val if isinstance(val, str) else None


def _setting_list(settings: dict[str, str | list[str]], key: str) -> tuple[str, ...] | None:
    val = settings.get(key)
    if isinstance(val, list):
        return tuple(val)
    return None


def _pick(flag: object, stored: object, setting: object, default: object) -> object:
    for candidate in (flag, stored, setting):
        if candidate is not None:
            return candidate
    return default


def _split_csv(items: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        out.extend(x.strip() for x in item.split(",") if x.strip())
    return tuple(out)


def resolve(name: str, req: StartRequest, existing: ClusterConfig | None,
            settings: dict[str, str | list[str]], default_driver: str | None) -> Resolved:
    v.check_profile_name(name)
    warnings: list[str] = []
    s = settings
    e = existing

    driver = req.driver or (e.driver if e else None) or _setting(s, "driver") or default_driver
    if driver is None:
        raise MinisandError("no driver chosen", hint="pass --driver", code=ExitCode.BAD_INPUT)
    from minisand.drivers.registry import lookup

    driver = lookup(driver).name
    if e and req.driver and lookup(req.driver).name != e.driver:
        raise bad_input(f"profile {name!r} exists with driver {e.driver}; it cannot switch to {driver}",
                        f"run `minisand delete -p {name}` first, or use another profile with -p")

    runtime = parse_runtime(req.container_runtime or (e.container_runtime if e else None)
                            or _setting(s, "container-runtime") or "containerd")

    kv_flag = v.parse_kubernetes_version(req.kubernetes_version) if req.kubernetes_version else None
    if e and kv_flag and kv_flag != e.kubernetes_version:
        raise bad_input(f"profile {name!r} runs Kubernetes {e.kubernetes_version}; changing it to {kv_flag} "
                        "is not supported", f"run `minisand delete -p {name}` first")
    kset = _setting(s, "kubernetes-version")
    base = ClusterConfig(name=name, driver=driver)
    kversion = str(_pick(kv_flag, e.kubernetes_version if e else None,
                         v.parse_kubernetes_version(kset) if kset else None, base.kubernetes_version))
    _check_supported_version(kversion)

    def resource(flag: str | None, stored: int | None, key: str, parse: Callable[[str], int], default: int) -> int:
        parsed_flag = parse(flag) if flag is not None else None
        if e and parsed_flag is not None and stored is not None and parsed_flag != stored:
            warnings.append(f"--{key} cannot change on an existing cluster: keeping {stored}; "
                            f"`minisand delete` first to change it")
            return stored
        setting = _setting(s, key)
        for candidate in (parsed_flag, stored, parse(setting) if setting else None):
            if candidate is not None:
                return candidate
        return default

    cpus = resource(req.cpus, e.cpus if e else None, "cpus", v.parse_cpus, base.cpus)
    memory = resource(req.memory, e.memory_mb if e else None, "memory", v.parse_memory, base.memory_mb)
    disk = resource(req.disk_size, e.disk_mb if e else None, "disk-size", v.parse_disk, base.disk_mb)

    if e and req.nodes is not None and req.nodes != e.nodes:
        raise bad_input(f"profile {name!r} has {e.nodes} node(s); --nodes cannot change it",
                        f"run `minisand delete -p {name}` first")
    nodes = resource(str(req.nodes) if req.nodes is not None else None, e.nodes if e else None, "nodes",
                     lambda x: v.check_nodes(_int(x, "--nodes")), 1)

    wait_setting = _setting(s, "wait")
    wait = parse_wait(req.wait) if req.wait is not None else (
        e.wait if e else (parse_wait(wait_setting) if wait_setting else base.wait))
    wt_setting = _setting(s, "wait-timeout")
    wait_timeout = _parse_seconds(req.wait_timeout) if req.wait_timeout else (
        e.wait_timeout if e else (float(wt_setting) if wt_setting else base.wait_timeout))

    no_k8s = bool(_pick(req.no_kubernetes, e.no_kubernetes if e else None, None, False))
    if no_k8s and req.kubernetes_version:
        raise bad_input("--no-kubernetes and --kubernetes-version contradict each other",
                        "drop one of them")

    addons = (e.addons if e else ())
    if req.addons is not None:
        addons = tuple(dict.fromkeys((*addons, *_split_csv(req.addons))))
    extra = e.extra_config if e else ()
    if req.extra_config is not None:
        for item in req.extra_config:
            v.parse_extra_config(item)
        extra = tuple(req.extra_config)

    mirrors, changed = _mirrors(req, e.mirrors if e else None, s)
    options = _driver_options(req, e.driver_options if e else None, s, driver)

    iso_url = req.iso_url or (e.iso_url if e else None) or _setting(s, "iso-url")
    if iso_url:
        v.check_url(iso_url, "--iso-url", ("http", "https", "file"))
    iso_checksum = req.iso_checksum or (e.iso_checksum if e else None)
    if iso_checksum:
        _check_checksum(iso_checksum)

    cfg = ClusterConfig(
        name=name, driver=driver, container_runtime=runtime, kubernetes_version=kversion,
        no_kubernetes=no_k8s, cpus=cpus, memory_mb=memory, disk_mb=disk, nodes=nodes, wait=wait,
        wait_timeout=wait_timeout, addons=addons, extra_config=extra, iso_url=iso_url, iso_checksum=iso_checksum,
        mirrors=mirrors, driver_options=options)
    from minisand.images.sources import mirror_advice

    warnings += mirror_advice(mirrors)
    return Resolved(cfg, warnings, changed)


MIN_KUBERNETES = (1, 33)
MAX_KUBERNETES = (1, 37)


def _check_supported_version(version: str) -> None:
    major, minor, _ = v.version_tuple(version)
    if not MIN_KUBERNETES <= (major, minor) <= MAX_KUBERNETES:
        lo = ".".join(map(str, MIN_KUBERNETES))
        hi = ".".join(map(str, MAX_KUBERNETES))
        raise bad_input(f"Kubernetes {version} is not supported by this minisand (supported: v{lo}.x to v{hi}.x)",
                        "use --kubernetes-version=v1.36.4", reason="KUBERNETES_VERSION_UNSUPPORTED")


def _int(value: str, flag: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise bad_input(f"{flag} {value!r} is not a number", f"use {flag}=1") from None


def _parse_seconds(value: str) -> float:
    text = value.strip().lower()
    mult = 1.0
    if text.endswith("m"):
        mult, text = 60.0, text[:-1]
    elif text.endswith("s"):
        text = text[:-1]
    try:
        secs = float(text) * mult
    except ValueError:
        raise bad_input(f"--wait-timeout {value!r} is not a duration", "use --wait-timeout=15m or 900") from None
    if secs <= 0:
        raise bad_input(f"--wait-timeout {value!r} must be positive", "use --wait-timeout=15m")
    return secs


def _check_checksum(value: str) -> None:
    algo, _, digest = value.partition(":")
    if not digest:
        algo, digest = "sha256", value
    lengths = {"sha256": 64, "sha512": 128}
    if algo not in lengths or len(digest) != lengths[algo] or any(c not in "0123456789abcdef" for c in digest.lower()):
        raise bad_input(f"--iso-checksum {value!r} is not sha256:<64 hex digits>", "use --iso-checksum=sha256:…")


def _mirrors(req: StartRequest, stored: MirrorConfig | None,
             s: dict[str, str | list[str]]) -> tuple[MirrorConfig, bool]:
    st = stored or MirrorConfig()

    def one(flag: str | None, cur: str | None, key: str) -> str | None:
        if flag is not None:
            return flag or None  # an empty flag value clears it
        if stored is not None:
            return cur
        return _setting(s, key)

    def many(flag: tuple[str, ...] | None, cur: tuple[str, ...], key: str) -> tuple[str, ...]:
        if flag is not None:
            return _split_csv(flag)
        if stored is not None:
            return cur
        return _setting_list(s, key) or ()

    country = one(req.image_mirror_country, st.image_mirror_country, "image-mirror-country")
    cfg = MirrorConfig(
        image_mirror_country=country.strip().lower() if country else None,
        image_repository=one(req.image_repository, st.image_repository, "image-repository"),
        registry_mirrors=many(req.registry_mirror, st.registry_mirrors, "registry-mirror"),
        insecure_registries=many(req.insecure_registry, st.insecure_registries, "insecure-registry"),
        binary_mirror=one(req.binary_mirror, st.binary_mirror, "binary-mirror"),
        gvisor_mirror=one(req.gvisor_mirror, st.gvisor_mirror, "gvisor-mirror"),
        offline=req.offline if req.offline is not None else (st.offline if stored is not None
                                                             else _setting(s, "offline") == "true"),
    )
    _validate_mirrors(cfg)
    return cfg, stored is not None and cfg != stored


def _validate_mirrors(cfg: MirrorConfig) -> None:
    from minisand.images.sources import validate_mirrors

    validate_mirrors(cfg)
    for item in cfg.registry_mirrors:
        url = item.split("=", 1)[1] if "=" in item.split("://", 1)[0] else item
        v.check_url(url, "--registry-mirror")
    for host in cfg.insecure_registries:
        v.check_host_port(host, "--insecure-registry")
    if cfg.binary_mirror:
        v.check_url(cfg.binary_mirror, "--binary-mirror", ("http", "https", "file"))
    if cfg.gvisor_mirror:
        v.check_url(cfg.gvisor_mirror, "--gvisor-mirror", ("http", "https", "file"))


def _driver_options(req: StartRequest, stored: DriverOptions | None, s: dict[str, str | list[str]],
                    driver: str) -> DriverOptions:
    base = stored or DriverOptions()
    egress_setting = _setting(s, "guest-egress")
    accel = req.qemu_accel or (stored.qemu_accel if stored else None) or _setting(s, "qemu-accel") or "auto"
    if accel not in ("auto", "kvm", "tcg"):
        raise bad_input(f"--qemu-accel {accel!r} is not auto, kvm or tcg", "use --qemu-accel=auto")
    network = req.network or (stored.network if stored else None) or _setting(s, "network") or "default"
    if network not in ("default", "user"):
        raise bad_input(f"--network {network!r} is not default or user", "use --network=default")
    forwards = tuple(req.guest_forward) if req.guest_forward is not None else base.guest_forwards
    from minisand.drivers.qemu.cmdline import GuestForward

    for f in forwards:
        GuestForward.parse(f)
    egress = req.guest_egress if req.guest_egress is not None else (
        stored.guest_egress if stored else (egress_setting == "true" if egress_setting else True))
    opts = dataclasses.replace(
        base, qemu_accel=accel, guest_egress=egress, guest_forwards=forwards, network=network,
        libvirt_uri=req.libvirt_uri or (stored.libvirt_uri if stored else None) or _setting(s, "libvirt-uri")
        or base.libvirt_uri,
        ssh_ip=req.ssh_ip_address or base.ssh_ip, ssh_user=req.ssh_user or base.ssh_user,
        ssh_key=req.ssh_key or base.ssh_key, ssh_port=req.ssh_port or base.ssh_port)
    if driver == "ssh":
        if not opts.ssh_ip:
            raise bad_input("the ssh driver needs --ssh-ip-address", "e.g. --ssh-ip-address=127.0.0.1")
        if not opts.ssh_key:
            raise bad_input("the ssh driver needs --ssh-key (a private key file)", "e.g. --ssh-key=~/.ssh/id_ed25519")
        if not 0 < opts.ssh_port < 65536:
            raise bad_input(f"--ssh-port {opts.ssh_port} is out of range", "use --ssh-port=22")
    return opts
