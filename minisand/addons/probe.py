"""Probe pods: a tiny pod that prints its kernel release, to prove which runtime ran it, and timed."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from minisand.addons.manifests import render_objects
from minisand.config.model import ClusterConfig
from minisand.errors import ExitCode, MinisandError

PROBE_IMAGE = "docker.io/library/busybox:1.35.0"  # pinned; only `uname -r` runs in it
NAMESPACE = "kube-system"
EVENTS_EVERY = 5.0  # seconds between looks at the pod's events
SANDBOX_FAILURES = 3  # failed sandbox starts that end a probe at once


@dataclass(frozen=True)
class ProbeResult:
    kernel: str
    seconds: float  # pod created -> container finished (its output is the kernel release)


def probe_image(cfg: ClusterConfig) -> str:
    from minisand.images.sources import ImageMirrors, rewrite_image

    return str(rewrite_image(PROBE_IMAGE, ImageMirrors()))


def run_probe(client: Any, addon: str, runtime_class: str | None, image: str, timeout: float = 600) -> ProbeResult:
    from kubernetes import client as k

    api: Any = k.CoreV1Api(client)
    name = f"minisand-probe-{runtime_class or 'runc'}-{secrets.token_hex(3)}"
    (pod,) = render_objects("probe/pod.yaml.j2", name=name, addon=addon, runtime_class=runtime_class, image=image)
    t0 = time.monotonic()
    api.create_namespaced_pod(NAMESPACE, pod)
    try:
        deadline = t0 + timeout
        next_events = t0 + EVENTS_EVERY
        while True:
            obj: Any = api.read_namespaced_pod(name, NAMESPACE)
            phase = obj.status.phase
            if phase == "Succeeded":
                elapsed = time.monotonic() - t0
                break
            failing = None
            if time.monotonic() >= next_events:
                next_events = time.monotonic() + EVENTS_EVERY
                failing = _sandbox_failing(api, name)
            if phase == "Failed" or failing or time.monotonic() > deadline:
                why = failing or _events(api, name)
                raise MinisandError(f"probe pod {name} ({runtime_class or 'runc'}) "
                                    f"{'cannot start' if failing else phase or 'timed out'}: {why}",
                                    hint="`minisand logs` has containerd's journal", code=ExitCode.ADDON_ERROR)
            time.sleep(0.5)
        kernel = str(api.read_namespaced_pod_log(name, NAMESPACE)).strip()
    finally:
        api.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
    return ProbeResult(kernel, elapsed)


def _events(api: Any, name: str) -> str:
    events = api.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={name}").items
    return "; ".join(f"{e.reason}: {e.message}" for e in events[-3:])


def _sandbox_failing(api: Any, name: str) -> str | None:
    """The kubelet retries a sandbox that fails to start forever; after SANDBOX_FAILURES failures the cause
    (e.g. a runtime that cannot run on this host) is reported at once instead of after the timeout."""
    events = [e for e in api.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={name}").items
              if e.reason == "FailedCreatePodSandBox"]
    failures = sum(e.count or 1 for e in events)
    if failures >= SANDBOX_FAILURES:
        return f"FailedCreatePodSandBox ({failures} times): {events[-1].message}"
    return None


def pods_using_runtime_class(client: Any, runtime_class: str) -> list[str]:
    from kubernetes import client as k

    pods: list[Any] = k.CoreV1Api(client).list_pod_for_all_namespaces().items
    return [f"{p.metadata.namespace}/{p.metadata.name}" for p in pods
            if p.spec.runtime_class_name == runtime_class and p.status.phase not in ("Succeeded", "Failed")]


def delete_pods(client: Any, names: list[str]) -> None:
    from kubernetes import client as k

    api = k.CoreV1Api(client)
    for full in names:
        ns, name = full.split("/", 1)
        api.delete_namespaced_pod(name, ns, grace_period_seconds=0)
