"""`minisand dashboard`: Headlamp on 127.0.0.1, signed in, like `minikube dashboard`.

1. the cluster must be running (else MACHINE_NOT_RUNNING, one line); the headlamp addon is enabled when it is off
   (or repaired when its Deployment is gone), and its Deployment must be Available;
2. minisand runs `kubectl port-forward` to Headlamp's Service (the cached kubectl, the profile's own credentials)
   and the sign-in relay (cluster/signin.py) on 127.0.0.1:PORT in front of it, which signs the browser in as the
   addon's read-only viewer with short-lived tokens it requests;
3. it waits until Headlamp answers through the relay, signed in, then prints the URL (or opens a browser);
4. it keeps forwarding until Ctrl-C (or SIGTERM), restarting a port-forward that dies, and then stops the
   forwarder and leaves Headlamp running."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from minisand import ui
from minisand.cluster.context import Context
from minisand.config.model import ClusterConfig
from minisand.drivers.base import MachineState
from minisand.errors import ExitCode, MinisandError, bad_input

log = logging.getLogger(__name__)

READY_TIMEOUT = 180.0  # Headlamp answering through the relay, after its Deployment is Available
TOKEN_SECONDS = 3600  # each viewer token; the relay asks for a new one after 80% of that


@dataclass
class Session:
    """What a running dashboard measured and where it serves."""

    url: str = ""
    measured: dict[str, float] = field(default_factory=dict)


def has_display(env: Mapping[str, str], platform: str) -> bool:
    """Can a browser be opened here? $BROWSER names one; macOS and Windows always have one; elsewhere an X11 or
    Wayland display must be set (a server or an SSH session without forwarding has none)."""
    if env.get("BROWSER"):
        return True
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def check_port(port: int | None) -> None:
    if port is not None and not 1 <= port <= 65535:
        raise bad_input(f"--port {port} is not a TCP port", "use 1-65535, or leave it out for a free port")


def _require_running(ctx: Context, cfg: ClusterConfig) -> None:
    from minisand.cluster.nodes import driver_for

    if cfg.no_kubernetes:
        raise MinisandError(f"the dashboard needs Kubernetes; profile {cfg.name!r} runs without it",
                            hint="start a profile without --no-kubernetes", code=ExitCode.ADDON_ERROR)
    machine = cfg.machine_names()[0]
    state = driver_for(ctx, cfg, machine).state()
    if state != MachineState.RUNNING:
        raise MinisandError(f"cluster {cfg.name!r} is not running (node {machine}: {state.value})",
                            hint=f"start it first: `minisand start -p {cfg.name}`",
                            code=ExitCode.MACHINE_NOT_RUNNING)


def _api(ctx: Context, cfg: ClusterConfig) -> Any:
    from minisand.addons.context import AddonContext

    return AddonContext(ctx.home, cfg, []).api()


def _deployment_exists(api: Any) -> bool:
    from kubernetes import client as k
    from kubernetes.client.exceptions import ApiException

    from minisand.addons import headlamp

    try:
        k.AppsV1Api(api).read_namespaced_deployment(headlamp.NAME, headlamp.NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _unreachable(cfg: ClusterConfig, exc: Exception) -> MinisandError:
    return MinisandError(f"the API server of cluster {cfg.name!r} does not answer: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}",
                         hint=f"`minisand status -p {cfg.name}`; `minisand start -p {cfg.name}` repairs it",
                         code=ExitCode.KUBERNETES_ERROR, reason="APISERVER_UNREACHABLE")


def ensure_addon(ctx: Context, cfg: ClusterConfig, session: Session) -> Any:
    """The headlamp addon enabled and its Deployment Available; returns an API client."""
    from minisand.addons import headlamp
    from minisand.cluster import addons as manage

    api = _api(ctx, cfg)
    try:
        present = headlamp.SPEC.name in cfg.addons and _deployment_exists(api)
    except Exception as exc:  # urllib3 / ApiException: the API server is down or refuses us
        raise _unreachable(cfg, exc) from exc
    if not present:
        t0 = time.monotonic()
        manage.enable(ctx, headlamp.SPEC.name)
        session.measured["addon_enable_seconds"] = round(time.monotonic() - t0, 2)
    ui.step("Verifying dashboard health ...")
    seconds = headlamp.wait_available(api)
    session.measured["available_wait_seconds"] = round(seconds, 2)
    return api


def kubectl_argv(ctx: Context, cfg: ClusterConfig) -> list[str]:
    """`kubectl port-forward` to Headlamp's Service on a free loopback port, with the profile's own credentials."""
    from minisand.addons import headlamp
    from minisand.bootstrap.binaries import ensure_host_binaries

    kubectl = ensure_host_binaries(ctx.home, cfg.kubernetes_version, cfg.mirrors, names=("kubectl",))["kubectl"]
    kubeconfig = ctx.home.profile_dir(cfg.name) / "kubeconfig.json"
    return [str(kubectl.path), "--kubeconfig", str(kubeconfig), "--context", cfg.name,
            "--namespace", headlamp.NAMESPACE, "port-forward", "--address", "127.0.0.1",
            f"service/{headlamp.NAME}", f":{headlamp.SERVICE_PORT}"]


def _get(url: str, body: bytes | None = None) -> tuple[int, str]:
    import requests

    with requests.Session() as http:
        http.trust_env = False  # loopback: never through a proxy from the environment
        if body is None:
            resp = http.get(url, timeout=15)
        else:
            resp = http.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=15)
        return resp.status_code, resp.text[: 1 << 20]


def wait_answering(base: str, cluster: str, timeout: float = READY_TIMEOUT) -> None:
    """Headlamp's page through the relay, then an API call signed in as the viewer (what its UI checks first)."""
    review = json.dumps({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                         "spec": {"namespace": "default"}}).encode()
    import requests

    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            status, page = _get(base)
            if status == 200 and "Headlamp" in page:
                status, text = _get(f"{base}clusters/{cluster}/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                                    review)
                if status == 201:
                    return
                last = f"signing in: HTTP {status} {text[:200]}"
            else:
                last = f"HTTP {status}"
        except (OSError, requests.RequestException) as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise MinisandError(f"Headlamp does not answer through the forwarder after {timeout:.0f}s: {last}",
                                hint="`minisand kubectl -- -n headlamp logs deploy/headlamp`",
                                code=ExitCode.ADDON_ERROR, reason="DASHBOARD_NOT_ANSWERING")
        time.sleep(1.0)


def show(url: str, url_only: bool, echo: Callable[[str], None], env: Mapping[str, str] | None = None,
         platform: str = sys.platform) -> None:
    """Print the URL (--url, or no display), else open it in the user's browser."""
    env = os.environ if env is None else env
    if not url_only and has_display(env, platform):
        import webbrowser

        if webbrowser.open(url):
            ui.done(f"Opened {url} in your browser. Ctrl-C stops the forwarder; Headlamp keeps running.")
            return
        ui.warn("no browser could be started")
    echo(url)
    ui.done("Headlamp is at the URL above. Ctrl-C stops the forwarder; Headlamp keeps running.")


def serve(ctx: Context, *, url_only: bool, port: int | None, echo: Callable[[str], None]) -> Session:
    """Runs until Ctrl-C / SIGTERM (KeyboardInterrupt); returns what it measured."""
    from minisand.addons import headlamp
    from minisand.cluster.portforward import PortForward
    from minisand.cluster.signin import SignInRelay, TokenSource

    check_port(port)
    cfg = ctx.store.load(ctx.profile)
    _require_running(ctx, cfg)
    session = Session()
    t0 = time.monotonic()
    clients: dict[str, Any] = {}
    forward = PortForward([])
    try:
        relay = SignInRelay(port or 0, lambda: forward.port, headlamp.context_name(cfg),
                            TokenSource(lambda: headlamp.viewer_token(clients["api"], TOKEN_SECONDS)).token)
    except OSError as exc:
        raise bad_input(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                        "pick another --port, or leave it out for a free one") from None
    try:
        ctx.attach_log()
        forward.argv = kubectl_argv(ctx, cfg)
        clients["api"] = ensure_addon(ctx, cfg, session)
        ui.step("Launching the forwarder (kubectl port-forward) ...")
        forward.start()
        relay.serve()
        ui.step("Verifying the forwarder's health (Headlamp answering, signed in) ...")
        wait_answering(relay.url, headlamp.context_name(cfg))
        session.url = relay.url
        session.measured["ready_seconds"] = round(time.monotonic() - t0, 2)
        log.info("dashboard ready at %s: %s", relay.url, session.measured)
        ui.info(f"Headlamp answers, signed in as {headlamp.NAMESPACE}/{headlamp.VIEWER} (read-only), "
                f"{session.measured['ready_seconds']:.1f}s after this command started")
        show(relay.url, url_only, echo)
        try:
            _keep_forwarding(forward)
        except KeyboardInterrupt:
            ui.info("stopping the forwarder; Headlamp keeps running (`minisand addons disable headlamp` removes it)")
    finally:
        relay.close()
        forward.stop()
    return session


def _keep_forwarding(forward: Any) -> None:
    while True:
        time.sleep(1.0)
        if not forward.alive():
            ui.warn("kubectl port-forward stopped (Headlamp's pod was replaced?); starting it again")
            forward.restart()
