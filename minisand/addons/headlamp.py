"""The headlamp addon: the cluster's dashboard. Headlamp (kubernetes-sigs/headlamp), the successor SIG UI points
to since the Kubernetes Dashboard was archived, deployed in-cluster: a namespace, the server's ServiceAccount
(granted nothing: in-cluster Headlamp relays each request with the signed-in user's token), a viewer
ServiceAccount that `minisand dashboard` signs the browser in as (read-only RBAC, short-lived tokens, never
mounted in a pod), a Deployment on port 4466 with upstream's arguments and probes, and a ClusterIP Service.

Its image is rewritten like every other image: under the cn preset or --image-repository it moves into the
chosen repository flat (<repo>/headlamp, as minikube's aliyun_mirror.json maps addon images), with the upstream
name (pulled through containerd's registry hosts, --registry-mirror) as the fallback. Each candidate is pulled on
every node first, so an image no mirror has fails the enable at once with what was tried, instead of a pod left
in ImagePullBackOff. Enabling then waits, bounded, for the Deployment to be Available."""

from __future__ import annotations

import logging
import time
from typing import Any

from minisand import ui
from minisand.addons.context import AddonContext
from minisand.addons.spec import AddonSpec
from minisand.config.model import ClusterConfig
from minisand.errors import ExitCode, MinisandError
from minisand.images.ref import ImageRef

log = logging.getLogger(__name__)

VERSION = "v0.45.0"
IMAGE = f"ghcr.io/headlamp-k8s/headlamp:{VERSION}"
NAMESPACE = "headlamp"
NAME = "headlamp"  # the Deployment and the Service
SERVER_ACCOUNT = "headlamp"
VIEWER = "headlamp-viewer"
PORT = 4466  # the container's
SERVICE_PORT = 80
UID, GID = 100, 101  # upstream's image: Alpine's `adduser -S headlamp -G headlamp`
PULL_TIMEOUT = 900.0  # one pull on one node
AVAILABLE_TIMEOUT = 600.0  # the Deployment Available after enabling (TCG guests are slow)


def context_name(cfg: ClusterConfig) -> str:
    """Headlamp's name for the in-cluster context, which its URLs (/c/<name>/...) and cookies carry."""
    return cfg.name


def repositories(actx: AddonContext) -> tuple[str, ...]:
    """The repository the cluster's images came from when start recorded it, else every candidate in order."""
    from minisand.images.sources import source_candidates

    if actx.repository:
        return (actx.repository,)
    return source_candidates(actx.cfg.mirrors).repository_candidates


def candidates(actx: AddonContext) -> list[ImageRef]:
    from minisand.images.sources import image_candidates

    return image_candidates(IMAGE, repositories(actx))


def template_vars(actx: AddonContext) -> dict[str, Any]:
    image = actx.images.get(IMAGE) or str(candidates(actx)[0])
    return {"version": VERSION, "namespace": NAMESPACE, "name": NAME, "server_account": SERVER_ACCOUNT,
            "viewer": VIEWER, "port": PORT, "service_port": SERVICE_PORT, "uid": UID, "gid": GID,
            "context_name": context_name(actx.cfg), "image": image}


def install(actx: AddonContext) -> None:
    """Pulls the first image candidate that every node can pull (through containerd's mirrors)."""
    from minisand.cruntime.pull import pull_image
    from minisand.images.sources import source_candidates

    hosts = source_candidates(actx.cfg.mirrors).registry_hosts
    failures: list[str] = []
    for image in candidates(actx):
        t0 = time.monotonic()
        try:
            for node in actx.nodes:
                ui.info(f"pulling {image} on {node.machine} ...")
                pull_image(node.runner, image, hosts=hosts, timeout=PULL_TIMEOUT)
        except MinisandError as exc:
            log.info("headlamp image candidate %s failed: %s", image, exc.message)
            failures.append(exc.message)
            continue
        if failures:
            ui.warn(f"{failures[0]}; using {image} instead")
        actx.images[IMAGE] = str(image)
        log.info("headlamp image %s pulled on every node in %.1fs", image, time.monotonic() - t0)
        return
    raise MinisandError(f"no image of Headlamp {VERSION} could be pulled: {'; '.join(failures)}",
                        hint="serve it from a --registry-mirror (ghcr.io=URL, or the cn preset's registry)",
                        code=ExitCode.DOWNLOAD_ERROR, reason="IMAGE_PULL_FAILED")


def deployment_available(dep: dict[str, Any]) -> bool:
    """A Deployment (as to_dict() gives it) whose current generation is rolled out and Available."""
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    want = spec.get("replicas", 1) or 0
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return ((status.get("observed_generation") or 0) >= (meta.get("generation") or 0)
            and (status.get("updated_replicas") or 0) >= want
            and (status.get("available_replicas") or 0) >= want
            and conditions.get("Available") == "True")


def pod_problems(pods: list[dict[str, Any]]) -> str:
    """Why the Deployment's pods are not ready, from their container states (ImagePullBackOff: ...)."""
    out: list[str] = []
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        for cs in status.get("container_statuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason"):
                out.append(f"{name}: {waiting['reason']} ({(waiting.get('message') or '')[:200]})".replace(" ()", ""))
            elif not cs.get("ready"):
                out.append(f"{name}: container {cs.get('name')} not ready, {cs.get('restart_count', 0)} restarts")
        if not status.get("container_statuses"):
            out.append(f"{name}: {status.get('phase', 'Pending')}")
    return "; ".join(out) or "no pod yet"


def wait_available(client: Any, timeout: float = AVAILABLE_TIMEOUT, poll: float = 2.0) -> float:
    """Seconds until the Deployment is Available; ADDON_ERROR naming what the pods wait for after timeout."""
    from kubernetes import client as k

    apps: Any = k.AppsV1Api(client)
    core: Any = k.CoreV1Api(client)
    t0 = time.monotonic()
    while True:
        if deployment_available(apps.read_namespaced_deployment(NAME, NAMESPACE).to_dict()):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            pods = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=headlamp").items
            raise MinisandError(
                f"Headlamp's Deployment {NAMESPACE}/{NAME} is not Available after {timeout:.0f}s: "
                f"{pod_problems([p.to_dict() for p in pods])}",
                hint=f"`minisand kubectl -- -n {NAMESPACE} describe pods` says more",
                code=ExitCode.ADDON_ERROR, reason="ADDON_NOT_AVAILABLE")
        time.sleep(poll)


def verify(actx: AddonContext) -> dict[str, Any]:
    seconds = wait_available(actx.api())
    ui.info(f"Headlamp {VERSION} is Available ({seconds:.1f}s after its manifests were applied)")
    return {"image": template_vars(actx)["image"], "available_seconds": round(seconds, 2)}


def remove(actx: AddonContext, timeout: float = 180.0) -> None:
    """After its objects were deleted: wait (bounded) until the namespace is gone, so enabling again right away
    does not meet a namespace still terminating."""
    from kubernetes import client as k
    from kubernetes.client.exceptions import ApiException

    core: Any = k.CoreV1Api(actx.api())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(NAMESPACE)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(2.0)
    ui.warn(f"namespace {NAMESPACE} is still terminating after {timeout:.0f}s")


def viewer_token(client: Any, seconds: int = 3600) -> tuple[str, float]:
    """A short-lived token of the viewer ServiceAccount (TokenRequest) and when it expires (epoch seconds)."""
    from kubernetes import client as k

    body = k.AuthenticationV1TokenRequest(spec=k.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    core: Any = k.CoreV1Api(client)
    issued = time.time()
    res = core.create_namespaced_service_account_token(VIEWER, NAMESPACE, body)
    expires = res.status.expiration_timestamp
    return res.status.token, expires.timestamp() if expires is not None else issued + seconds


SPEC = AddonSpec(
    name="headlamp",
    description=f"the dashboard: Headlamp {VERSION} (`minisand dashboard` opens it, signed in read-only)",
    manifests=("headlamp/namespace.yaml.j2", "headlamp/rbac.yaml.j2", "headlamp/deployment.yaml.j2",
               "headlamp/service.yaml.j2"),
    images=(IMAGE,),
    install=install, verify=verify, remove=remove, template_vars=template_vars,
)
