"""`--extra-config component.key=value` (minikube's flag): parsed and checked once, up front, and split by where
each value goes. Nothing that passes parse_extra_config is dropped later:

- kubelet, apiserver, controller-manager, scheduler, etcd: command-line flags of that component (kubeadm
  `extraArgs`; the kubelet's go into `nodeRegistration.kubeletExtraArgs` of every node, control plane and workers);
- kube-proxy: fields of kubeadm's KubeProxyConfiguration (`kube-proxy.mode=ipvs`, `kube-proxy.ipvs.strictARP=true`),
  only the fields listed in KUBE_PROXY_FIELDS, each with its type;
- kubeadm: `kubeadm.ignore-preflight-errors=A,B` (nodeRegistration.ignorePreflightErrors), the only kubeadm key.

Anything else is refused with the list of what is supported."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from minisand.errors import bad_input

FLAG_COMPONENTS = ("kubelet", "apiserver", "controller-manager", "scheduler", "etcd")
COMPONENTS = (*FLAG_COMPONENTS, "kube-proxy", "kubeadm")
KUBEADM_KEYS = ("ignore-preflight-errors",)
_EXAMPLE = "e.g. --extra-config kubelet.max-pods=50 or --extra-config kube-proxy.mode=ipvs"
_FLAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_GO_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+")
_PREFLIGHT_CHECK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class ExtraConfig:
    component: str
    key: str
    value: str


def _choice(*options: str) -> Callable[[str], Any]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"one of {', '.join(options)}")
        return value
    return parse


def _bool(value: str) -> bool:
    if value not in ("true", "false"):
        raise ValueError("true or false")
    return value == "true"


def _int(lo: int, hi: int) -> Callable[[str], Any]:
    def parse(value: str) -> int:
        if not re.fullmatch(r"\d{1,10}", value) or not lo <= int(value) <= hi:
            raise ValueError(f"a whole number in {lo}..{hi}")
        return int(value)
    return parse


def _duration(value: str) -> str:
    if not _GO_DURATION.fullmatch(value):
        raise ValueError("a duration such as 30s or 1m0s")
    return value


def _cidrs(value: str) -> list[str]:
    items = [x.strip() for x in value.split(",") if x.strip()]
    try:
        return [str(ipaddress.ip_network(x, strict=False)) for x in items]
    except ValueError:
        raise ValueError("a comma-separated list of CIDRs such as 10.0.0.0/8") from None


def _node_port_addresses(value: str) -> list[str]:
    if value.strip() == "primary":
        return ["primary"]
    return _cidrs(value)


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("an IP address such as 0.0.0.0") from None


def _ip_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not re.fullmatch(r"\d{1,5}", port) or not 0 < int(port) < 65536:
        raise ValueError("IP:PORT such as 0.0.0.0:10256 (port 1..65535)")
    _ip(host.strip("[]"))
    return value


def _word(value: str) -> str:
    if not re.fullmatch(r"[a-z]{1,16}", value):
        raise ValueError("a scheduler name such as rr, lc or sh")
    return value


# KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) fields minisand renders, with their value types.
# clusterCIDR, metricsBindAddress and conntrack.* are minisand's own (they must match the pod network and a
# kube-proxy that runs in a guest) and are not overridable.
KUBE_PROXY_FIELDS: dict[str, Callable[[str], Any]] = {
    "mode": _choice("iptables", "ipvs", "nftables"),
    "bindAddress": _ip,
    "healthzBindAddress": _ip_port,
    "nodePortAddresses": _node_port_addresses,
    "configSyncPeriod": _duration,
    "ipvs.scheduler": _word,
    "ipvs.strictARP": _bool,
    "ipvs.syncPeriod": _duration,
    "ipvs.minSyncPeriod": _duration,
    "ipvs.tcpTimeout": _duration,
    "ipvs.tcpFinTimeout": _duration,
    "ipvs.udpTimeout": _duration,
    "ipvs.excludeCIDRs": _cidrs,
    "iptables.masqueradeAll": _bool,
    "iptables.masqueradeBit": _int(0, 31),
    "iptables.syncPeriod": _duration,
    "iptables.minSyncPeriod": _duration,
    "iptables.localhostNodePorts": _bool,
    "nftables.masqueradeAll": _bool,
    "nftables.masqueradeBit": _int(0, 31),
    "nftables.syncPeriod": _duration,
    "nftables.minSyncPeriod": _duration,
}


def parse_extra_config(text: str) -> ExtraConfig:
    """One --extra-config value, fully checked (component, key and value)."""
    component, dot, rest = text.partition(".")
    key, eq, value = rest.partition("=")
    if not dot or not eq or component not in COMPONENTS:
        raise bad_input(f"--extra-config {text!r} is not component.key=value with a known component",
                        f"components: {', '.join(COMPONENTS)}; {_EXAMPLE}")
    if any(not c.isprintable() for c in value) or len(value) > 4096:
        raise bad_input(f"--extra-config {text!r} has control characters or is too long",
                        "give a one-line value")
    if component in FLAG_COMPONENTS:
        if not _FLAG_NAME.fullmatch(key):
            raise bad_input(f"--extra-config {text!r}: {key!r} is not a {component} flag name",
                            f"use the flag without dashes, {_EXAMPLE}")
    elif component == "kube-proxy":
        _kube_proxy_value(text, key, value)
    else:
        _kubeadm_value(text, key, value)
    return ExtraConfig(component, key, value)


def _kube_proxy_value(text: str, key: str, value: str) -> Any:
    parse = KUBE_PROXY_FIELDS.get(key)
    if parse is None:
        raise bad_input(f"--extra-config {text!r}: kube-proxy field {key!r} is not supported",
                        f"supported kube-proxy fields: {', '.join(KUBE_PROXY_FIELDS)}")
    try:
        return parse(value)
    except ValueError as exc:
        raise bad_input(f"--extra-config {text!r}: kube-proxy {key} must be {exc}",
                        "e.g. --extra-config kube-proxy.mode=ipvs") from None


def _kubeadm_value(text: str, key: str, value: str) -> tuple[str, ...]:
    if key not in KUBEADM_KEYS:
        raise bad_input(f"--extra-config {text!r}: kubeadm key {key!r} is not supported",
                        f"supported kubeadm keys: {', '.join(KUBEADM_KEYS)}, "
                        "e.g. --extra-config kubeadm.ignore-preflight-errors=SystemVerification")
    checks = tuple(x.strip() for x in value.split(",") if x.strip())
    if not checks or any(not _PREFLIGHT_CHECK.fullmatch(c) for c in checks):
        raise bad_input(f"--extra-config {text!r}: ignore-preflight-errors must be a comma list of check names",
                        "e.g. --extra-config kubeadm.ignore-preflight-errors=SystemVerification,NumCPU")
    return checks


def parse_all(items: Sequence[str]) -> list[ExtraConfig]:
    return [parse_extra_config(item) for item in items]


def component_args(items: Sequence[str], component: str) -> list[tuple[str, str]]:
    """(flag, value) pairs for one of FLAG_COMPONENTS, in the order given."""
    return [(e.key, e.value) for e in parse_all(items) if e.component == component]


@dataclass(frozen=True)
class KubeProxySettings:
    fields: tuple[tuple[str, Any], ...]  # top-level KubeProxyConfiguration fields
    sections: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]  # ipvs/iptables/nftables: their fields


def kube_proxy_settings(items: Sequence[str]) -> KubeProxySettings:
    """The user's KubeProxyConfiguration fields, typed; a key given twice keeps its last value."""
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for e in parse_all(items):
        if e.component != "kube-proxy":
            continue
        value = _kube_proxy_value(f"kube-proxy.{e.key}={e.value}", e.key, e.value)
        section, dot, field = e.key.partition(".")
        if dot:
            sections.setdefault(section, {})[field] = value
        else:
            top[e.key] = value
    return KubeProxySettings(tuple(top.items()), tuple((s, tuple(f.items())) for s, f in sections.items()))


def preflight_ignores(items: Sequence[str], builtin: Sequence[str]) -> tuple[str, ...]:
    """minisand's own ignored preflight checks plus the user's; just ("all",) when the user asked for all
    (kubeadm refuses `all` next to named checks)."""
    extra: list[str] = []
    for e in parse_all(items):
        if e.component == "kubeadm" and e.key == "ignore-preflight-errors":
            extra.extend(_kubeadm_value(f"kubeadm.{e.key}={e.value}", e.key, e.value))
    if any(c.lower() == "all" for c in extra):
        return ("all",)
    return tuple(dict.fromkeys((*builtin, *extra)))
