"""--wait: the API server, system pods, node readiness (default) and more, within a timeout, with a report of
exactly what did not become ready."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from minisand.errors import ExitCode, MinisandError

log = logging.getLogger(__name__)


def api_client(kubeconfig: dict[str, Any]) -> Any:
    from kubernetes import config

    new_client: Any = config.new_client_from_config_dict
    return new_client(kubeconfig)


def _apiserver(client: Any) -> list[str]:
    try:
        method, url, headers, body, post = client.param_serialize(method="GET", resource_path="/readyz",
                                                                  auth_settings=["BearerToken"])
        resp = client.call_api(method, url, header_params=headers, body=body, post_params=post,
                               _request_timeout=10)
        status = resp.status
    except Exception as exc:  # any transport error means "not ready yet"
        return [f"apiserver: {type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"]
    return [] if status == 200 else [f"apiserver: /readyz answered {status}"]


def _nodes(client: Any) -> list[str]:
    from kubernetes import client as k

    problems = []
    nodes: list[Any] = k.CoreV1Api(client).list_node().items
    if not nodes:
        return ["node_ready: no nodes registered"]
    for node in nodes:
        ready = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
        if ready is None or ready.status != "True":
            why = f"{ready.reason}: {ready.message}" if ready else "no Ready condition yet"
            problems.append(f"node_ready: node {node.metadata.name} is not Ready ({why})")
    return problems


def _system_pods(client: Any) -> list[str]:
    from kubernetes import client as k

    pods: list[Any] = k.CoreV1Api(client).list_namespaced_pod("kube-system").items
    problems = []
    required = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kube-dns"}
    seen = set()
    for pod in pods:
        labels = pod.metadata.labels or {}
        for key in ("component", "k8s-app"):
            if key in labels:
                seen.add(labels[key])
        phase = pod.status.phase
        if phase == "Succeeded":
            continue
        ready = all(cs.ready for cs in pod.status.container_statuses or []) and bool(pod.status.container_statuses)
        if phase != "Running" or not ready:
            waiting = [cs.state.waiting.reason for cs in pod.status.container_statuses or []
                       if cs.state and cs.state.waiting and cs.state.waiting.reason]
            problems.append(f"system_pods: {pod.metadata.name} is {phase}"
                            + (f" ({', '.join(waiting)})" if waiting else "") + ("" if ready else ", not ready"))
    for missing in sorted(required - seen):
        problems.append(f"system_pods: no {missing} pod yet")
    return problems


def _default_sa(client: Any) -> list[str]:
    from kubernetes import client as k

    try:
        k.CoreV1Api(client).read_namespaced_service_account("default", "default")
    except k.ApiException as exc:
        return [f"default_sa: {exc.status}"]
    return []


def _apps(client: Any) -> list[str]:
    from kubernetes import client as k

    problems = []
    deployments: list[Any] = k.AppsV1Api(client).list_namespaced_deployment("kube-system").items
    for d in deployments:
        want = d.spec.replicas or 0
        have = d.status.available_replicas or 0
        if have < want:
            problems.append(f"apps_running: deployment {d.metadata.name} has {have}/{want} available")
    return problems


CHECKS: dict[str, Callable[[Any], list[str]]] = {
    "apiserver": _apiserver, "node_ready": _nodes, "system_pods": _system_pods, "default_sa": _default_sa,
    "apps_running": _apps,
}


def wait_for(kubeconfig: dict[str, Any], components: tuple[str, ...], timeout: float, poll: float = 2.0) -> None:
    if not components:
        return
    order = ["apiserver", *[c for c in ("node_ready", "system_pods", "default_sa", "apps_running") if c in components]]
    from minisand import ui

    with ui.waiting("waiting for the cluster") as shown:
        _poll(api_client(kubeconfig), order, timeout, poll, shown.update)


def _poll(client: Any, order: list[str], timeout: float, poll: float, show: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    while True:
        problems = []
        for name in order:
            try:
                found = CHECKS[name](client)
            except Exception as exc:  # the API may still be starting: report, retry
                found = [f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"]
            problems += found
            if name == "apiserver" and found:
                break
        if not problems:
            return
        if time.monotonic() > deadline:
            break
        log.debug("waiting: %s", "; ".join(problems))
        show(problems[0])
        time.sleep(poll)
    raise MinisandError(f"not ready after {timeout:.0f}s: " + "; ".join(problems[:8]),
                        hint="`minisand logs` shows the kubelet journal; raise --wait-timeout on a slow host",
                        code=ExitCode.WAIT_TIMEOUT)
