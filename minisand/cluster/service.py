"""`minisand service NAME`: a URL on the host for each port of a NodePort (or LoadBalancer) Service.

How the host reaches a NodePort depends on the driver's network:
- qemu, and kvm2 with --network=user (qemu's user-mode network): a forward on 127.0.0.1 to the node's port,
  added at run time through qemu's monitor (drivers/qemu/hostfwd.py) and recorded in the machine's state;
- kvm2's private network, none, ssh, hyperkit: the node's address and the NodePort, as minikube does."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minisand.cluster.context import Context
from minisand.cluster.nodes import driver_for
from minisand.config.model import ClusterConfig
from minisand.drivers.base import Driver, MachineState
from minisand.errors import ExitCode, MinisandError, bad_input

log = logging.getLogger(__name__)

EXPOSABLE = ("NodePort", "LoadBalancer")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # an RFC 1123 label: Kubernetes' namespace names


def check_names(name: str, namespace: str) -> None:
    """A Service's name (an RFC 1035 label) and namespace (an RFC 1123 label), refused before any node is asked."""
    if not _LABEL.fullmatch(name) or not name[0].isalpha():
        raise bad_input(f"{name[:80]!r} is not a Service name",
                        "lowercase letters, digits and '-', starting with a letter (`minisand kubectl -- get svc -A`)")
    if not _LABEL.fullmatch(namespace):
        raise bad_input(f"--namespace {namespace[:80]!r} is not a namespace name",
                        "lowercase letters, digits and '-', e.g. -n default")


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    node_port: int
    protocol: str  # TCP | UDP | SCTP


@dataclass(frozen=True)
class Endpoint:
    port: ServicePort
    host: str
    host_port: int
    scheme: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.host_port}"


def node_ports(svc: dict[str, Any], namespace: str, name: str) -> list[ServicePort]:
    """The Service's node ports (pure: svc is the API object as a dict); refuses a Service without any."""
    spec = svc.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    ports = [ServicePort(str(p.get("name") or ""), int(p.get("port") or 0), int(p.get("nodePort") or 0),
                         str(p.get("protocol") or "TCP")) for p in spec.get("ports") or []]
    if kind not in EXPOSABLE or not any(p.node_port for p in ports):
        raise bad_input(f"service {namespace}/{name} has no node port (type {kind})",
                        f"make it a NodePort: `minisand kubectl -- patch service {name} -n {namespace} -p "
                        "'{\"spec\":{\"type\":\"NodePort\"}}'` or `kubectl expose ... --type=NodePort`",
                        reason="SVC_NO_NODE_PORT")
    return [p for p in ports if p.node_port]


def uses_user_network(cfg: ClusterConfig) -> bool:
    return cfg.driver == "qemu" or (cfg.driver == "kvm2" and cfg.driver_options.network == "user")


def scheme_for(port: ServicePort, https: bool) -> str:
    if port.protocol == "UDP":
        return "udp"
    return "https" if https else "http"


def _read_service(ctx: Context, cfg: ClusterConfig, namespace: str, name: str) -> dict[str, Any]:
    from minisand.addons.context import AddonContext

    api = AddonContext(ctx.home, cfg, []).api()
    from kubernetes import client as k

    try:
        obj = k.CoreV1Api(api).read_namespaced_service(name, namespace, _request_timeout=30)
    except k.ApiException as exc:
        if exc.status == 404:
            raise bad_input(f"service {namespace}/{name} not found",
                            f"`minisand kubectl -- get services -n {namespace}` lists them",
                            reason="SVC_NOT_FOUND") from None
        raise MinisandError(f"reading service {namespace}/{name} failed: HTTP {exc.status} {exc.reason}",
                            hint="`minisand status` checks the API server", code=ExitCode.KUBERNETES_ERROR) from None
    except Exception as exc:  # the API server is unreachable
        raise MinisandError(f"cannot reach the API server of {cfg.name!r}: {type(exc).__name__}",
                            hint="`minisand status` checks it", code=ExitCode.KUBERNETES_ERROR) from None
    data: dict[str, Any] = api.sanitize_for_serialization(obj)
    return data


def _running(ctx: Context, cfg: ClusterConfig) -> Driver:
    drv = driver_for(ctx, cfg, cfg.machine_names()[0])
    state = drv.state()
    if state != MachineState.RUNNING:
        raise MinisandError(f"cluster {cfg.name!r} is not running ({state.value})",
                            hint=f"start it first: `minisand start -p {cfg.name}`",
                            code=ExitCode.MACHINE_NOT_RUNNING)
    return drv


def _forwarded(drv: Driver, ports: list[ServicePort], owner: str, https: bool) -> list[Endpoint]:
    from minisand import procs
    from minisand.drivers.qemu import hostfwd

    hmp: Callable[[str], str] | None = getattr(drv, "hmp", None)
    netdev = "net0" if drv.name == "qemu" else "mnet0"
    if hmp is None:
        raise MinisandError(f"the {drv.name} driver cannot add host forwards", code=ExitCode.NOT_AVAILABLE,
                            hint="use the node's address: `minisand ip`")
    out = []
    for p in ports:
        if p.protocol not in ("TCP", "UDP"):
            raise bad_input(f"port {p.name or p.port} is {p.protocol}; qemu's user network forwards TCP and UDP",
                            "use a TCP or UDP port")
        try:
            fwd = hostfwd.ensure(drv.spec.machine_dir, hmp, netdev, p.node_port, proto=p.protocol.lower(),
                                 owner=f"service {owner}:{p.port}", pick_port=procs.free_port)
        except MinisandError:
            raise
        except Exception as exc:  # QMP / libvirt monitor unreachable
            raise MinisandError(f"qemu's monitor did not answer: {exc}", hint="`minisand status`",
                                code=ExitCode.DRIVER_ERROR, reason="HOSTFWD_FAILED") from None
        out.append(Endpoint(p, fwd.host_ip, fwd.host_port, scheme_for(p, https)))
    return out


def endpoints(ctx: Context, name: str, namespace: str = "default", https: bool = False) -> list[Endpoint]:
    check_names(name, namespace)
    cfg = ctx.store.load(ctx.profile)
    if cfg.no_kubernetes:
        raise bad_input(f"profile {cfg.name!r} runs without Kubernetes", "start one without --no-kubernetes")
    drv = _running(ctx, cfg)
    ctx.attach_log()
    ports = node_ports(_read_service(ctx, cfg, namespace, name), namespace, name)
    if uses_user_network(cfg):
        with ctx.store.lock(ctx.profile):  # not while a stop or start changes the machine
            return _forwarded(drv, ports, f"{namespace}/{name}", https)
    rec = drv.record()
    host = (rec.node_ip or rec.ssh_host) if rec else ""
    if not host:
        raise MinisandError("the node has no recorded address", hint="run `minisand start`",
                            code=ExitCode.MACHINE_NOT_RUNNING)
    return [Endpoint(p, host, p.node_port, scheme_for(p, https)) for p in ports]
