"""The headlamp addon without a cluster: its manifests (golden files, least-privilege RBAC), its image under the
mirror rules (cn preset, --image-repository, the upstream fallback), the choice of the image a node can pull, and
the Deployment/pod readings behind its bounded wait. Golden files: tests/unit/golden/headlamp/
(MINISAND_UPDATE_GOLDEN=1 rewrites them). Enabling it for real is e2e/test_seed_demo.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import yaml

from minisand.addons import headlamp, manifests
from minisand.addons.context import AddonContext
from minisand.config.model import ClusterConfig, MirrorConfig
from minisand.errors import ExitCode, MinisandError
from minisand.images.presets import ALIYUN_IMAGE_REPOSITORY
from minisand.images.sources import ImageMirrors, image_candidates, rewrite_image
from minisand.runner.base import RunResult
from tests.unit.golden import assert_golden

CN = MirrorConfig(image_mirror_country="cn")
CUSTOM = MirrorConfig(image_repository="mirror.example.com:5000/k8s")
GLOBAL = MirrorConfig()


def _actx(mirrors: MirrorConfig = GLOBAL, nodes: Sequence[Any] = (), name: str = "minisand"
          ) -> AddonContext:
    cfg = ClusterConfig(name=name, driver="qemu", mirrors=mirrors)
    return AddonContext(home=None, cfg=cfg, nodes=list(nodes))  # type: ignore[arg-type]


def _rendered(actx: AddonContext) -> str:
    from minisand.templating import render

    return "---\n".join(render(f"addons/{t}", **headlamp.template_vars(actx)) for t in headlamp.SPEC.manifests)


def _objects(actx: AddonContext) -> list[dict[str, Any]]:
    return [o for t in headlamp.SPEC.manifests for o in manifests.render_objects(t, **headlamp.template_vars(actx))]


@pytest.mark.parametrize(("variant", "mirrors", "profile"), [
    ("global", MirrorConfig(), "minisand"), ("cn", CN, "seed-demo"), ("custom", CUSTOM, "dev")])
def test_manifests_golden(variant: str, mirrors: MirrorConfig, profile: str) -> None:
    actx = _actx(mirrors, name=profile)
    text = _rendered(actx)
    assert_golden("headlamp", f"manifests-{variant}.yaml", text)
    assert [d for d in yaml.safe_load_all(text) if d] == _objects(actx)


def test_objects_are_namespace_rbac_deployment_service_in_order() -> None:
    kinds = [(o["kind"], o["metadata"]["name"]) for o in _objects(_actx())]
    assert kinds == [("Namespace", "headlamp"), ("ServiceAccount", "headlamp"), ("ServiceAccount", "headlamp-viewer"),
                     ("ClusterRoleBinding", "headlamp-viewer"), ("ClusterRole", "headlamp-viewer-cluster"),
                     ("ClusterRoleBinding", "headlamp-viewer-cluster"), ("Deployment", "headlamp"),
                     ("Service", "headlamp")]


def test_rbac_is_read_only_and_the_server_is_granted_nothing() -> None:
    objs = _objects(_actx())
    bindings = [o for o in objs if o["kind"] == "ClusterRoleBinding"]
    assert {b["roleRef"]["name"] for b in bindings} == {"view", "headlamp-viewer-cluster"}  # never cluster-admin
    assert all(s["name"] == headlamp.VIEWER for b in bindings for s in b["subjects"])
    (role,) = [o for o in objs if o["kind"] == "ClusterRole"]
    verbs = {v for r in role["rules"] for v in r["verbs"]}
    assert verbs <= {"get", "list", "watch"}
    assert not any("secrets" in r["resources"] or "*" in r["resources"] for r in role["rules"])
    viewer = next(o for o in objs if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == headlamp.VIEWER)
    assert viewer["automountServiceAccountToken"] is False


def test_deployment_runs_upstreams_server_in_cluster_with_probes_on_4466() -> None:
    dep = next(o for o in _objects(_actx(name="dev")) if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "ghcr.io/headlamp-k8s/headlamp:v0.45.0"
    assert c["args"][:2] == ["-in-cluster", "-in-cluster-context-name=dev"]
    assert c["ports"] == [{"name": "http", "containerPort": 4466, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == c["livenessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert pod["serviceAccountName"] == headlamp.SERVER_ACCOUNT
    assert pod["securityContext"]["runAsNonRoot"] and c["securityContext"]["allowPrivilegeEscalation"] is False
    svc = next(o for o in _objects(_actx()) if o["kind"] == "Service")
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize(("repository", "want"), [
    ("registry.k8s.io", "ghcr.io/headlamp-k8s/headlamp:v0.45.0"),
    (ALIYUN_IMAGE_REPOSITORY, f"{ALIYUN_IMAGE_REPOSITORY}/headlamp:v0.45.0"),
    ("mirror.example.com:5000/k8s", "mirror.example.com:5000/k8s/headlamp:v0.45.0"),
])
def test_headlamp_moves_into_a_kubernetes_mirror_repository_flat(repository: str, want: str) -> None:
    assert str(rewrite_image(headlamp.IMAGE, ImageMirrors(repository))) == want


def test_other_registries_keep_their_names() -> None:
    for image in ("ghcr.io/other/thing:1", "docker.io/library/busybox:1.35.0", "quay.io/x/y:2"):
        assert str(rewrite_image(image, ImageMirrors(ALIYUN_IMAGE_REPOSITORY))) == image


@pytest.mark.parametrize(("mirrors", "want"), [
    (MirrorConfig(), ["ghcr.io/headlamp-k8s/headlamp:v0.45.0"]),
    (CN, [f"{ALIYUN_IMAGE_REPOSITORY}/headlamp:v0.45.0", "ghcr.io/headlamp-k8s/headlamp:v0.45.0"]),
    (CUSTOM, ["mirror.example.com:5000/k8s/headlamp:v0.45.0", "ghcr.io/headlamp-k8s/headlamp:v0.45.0"]),
])
def test_candidates_are_the_mirror_names_then_upstream(mirrors: MirrorConfig, want: list[str]) -> None:
    assert [str(i) for i in headlamp.candidates(_actx(mirrors))] == want


def test_image_candidates_follow_the_repository_order_without_repeats() -> None:
    got = image_candidates("registry.k8s.io/pause:3.10.2", [ALIYUN_IMAGE_REPOSITORY, "registry.k8s.io"])
    assert [str(i) for i in got] == [f"{ALIYUN_IMAGE_REPOSITORY}/pause:3.10.2", "registry.k8s.io/pause:3.10.2"]


class _Node:
    """A node whose `crictl pull IMAGE` succeeds only for the images in `has` (as containerd through its mirrors)."""

    def __init__(self, machine: str, has: set[str]) -> None:
        self.machine = machine
        self.runner = self
        self.has = has
        self.pulled: list[str] = []
        self.where = machine

    def run(self, argv: Sequence[str], **_kw: Any) -> RunResult:
        assert list(argv[:2]) == ["crictl", "pull"], argv
        image = argv[-1]
        if image in self.has:
            self.pulled.append(image)
            return RunResult(tuple(argv), 0, f"Image is up to date for sha256:{'a' * 64}\n".encode(), b"", 0.1)
        err = f'E0101 rpc error: code = NotFound desc = failed to pull "{image}": not found\n'
        return RunResult(tuple(argv), 1, b"", err.encode(), 0.1)


def test_install_uses_the_mirror_name_when_every_node_pulls_it() -> None:
    aliyun = f"{ALIYUN_IMAGE_REPOSITORY}/headlamp:v0.45.0"
    nodes = [_Node("m1", {aliyun}), _Node("m2", {aliyun})]
    actx = _actx(CN, nodes)
    headlamp.install(actx)
    assert actx.images[headlamp.IMAGE] == aliyun
    assert [n.pulled for n in nodes] == [[aliyun], [aliyun]]
    assert next(o for o in _objects(actx) if o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]["image"] == aliyun


def test_install_falls_back_to_upstream_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    upstream = "ghcr.io/headlamp-k8s/headlamp:v0.45.0"
    actx = _actx(CN, [_Node("m1", {upstream})])
    headlamp.install(actx)
    assert actx.images[headlamp.IMAGE] == upstream
    err = capsys.readouterr().err
    assert f"! pulling {ALIYUN_IMAGE_REPOSITORY}/headlamp:v0.45.0 failed" in err and f"using {upstream}" in err


def test_install_fails_at_once_naming_every_candidate() -> None:
    actx = _actx(CN, [_Node("m1", set())])
    with pytest.raises(MinisandError) as exc:
        headlamp.install(actx)
    assert exc.value.code == ExitCode.DOWNLOAD_ERROR and exc.value.reason == "IMAGE_PULL_FAILED"
    assert f"{ALIYUN_IMAGE_REPOSITORY}/headlamp" in exc.value.message and "ghcr.io/headlamp-k8s" in exc.value.message
    assert headlamp.IMAGE not in actx.images


def _dep(generation: int = 2, observed: int = 2, updated: int = 1, available: int = 1,
         condition: str = "True") -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {"replicas": 1},
            "status": {"observed_generation": observed, "updated_replicas": updated, "available_replicas": available,
                       "conditions": [{"type": "Available", "status": condition}]}}


@pytest.mark.parametrize(("dep", "ok"), [
    (_dep(), True), (_dep(observed=1), False), (_dep(updated=0), False), (_dep(available=0), False),
    (_dep(condition="False"), False), ({"metadata": {}, "spec": {}, "status": {}}, False)])
def test_deployment_available_means_rolled_out_and_available(dep: dict[str, Any], ok: bool) -> None:
    assert headlamp.deployment_available(dep) is ok


def test_pod_problems_name_the_waiting_reason() -> None:
    pods = [{"metadata": {"name": "headlamp-1"}, "status": {"phase": "Pending", "container_statuses": [
        {"name": "headlamp", "ready": False, "state": {"waiting": {"reason": "ImagePullBackOff",
                                                                  "message": "Back-off pulling image x"}}}]}},
            {"metadata": {"name": "headlamp-2"}, "status": {"phase": "Pending"}}]
    assert headlamp.pod_problems(pods) == ("headlamp-1: ImagePullBackOff (Back-off pulling image x); "
                                           "headlamp-2: Pending")
    assert headlamp.pod_problems([]) == "no pod yet"
