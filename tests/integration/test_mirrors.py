"""Registry mirrors against a real containerd and real registries, on the host inside a network namespace this
test creates (nothing leaves it: its only interface is its own loopback).

Proof comes from the registries' access logs: containerd adds `?ns=<upstream>` to requests it sends to a mirror, so
a manifest request with ns=docker.io (or registry.k8s.io) answered 200 by a mirror means the mirror served the pull.
containerd is configured only through minisand's ContainerdSettings/ContainerdPlan/apply(), and images are pulled
through CRI (crictl), the path the kubelet uses."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from minisand.config.model import MirrorConfig
from minisand.cruntime.apply import apply, wait_ready
from minisand.cruntime.plan import ContainerdPlan, build_plan
from minisand.cruntime.pull import guest_image_probe, pull_image
from minisand.errors import ExitCode, MinisandError
from minisand.images.sources import choose_repository
from tests.integration.helpers import tools
from tests.integration.helpers.containerd import ContainerdHost, short_workdir
from tests.integration.helpers.netns import NetNS, network_namespace
from tests.integration.helpers.registry import LocalRegistry, build_busybox_layout, start_registry
from tests.unit.golden import GOLDEN

pytestmark = [pytest.mark.root, pytest.mark.timeout(600)]

MIRROR_A = "127.0.0.1:5001"
MIRROR_B = "127.0.0.1:5002"
DOWN = "127.0.0.1:5003"  # nothing listens here: a mirror that is down
PLAIN_HTTP_HOST = "10.213.7.1"  # an address on the namespace's own loopback, not localhost to containerd
PAUSE_TAG = "3.10.2"
TAGS = ("t-docker", "t-order", "t-down", "t-v2")


@pytest.fixture(scope="module")
def netns() -> Iterator[NetNS]:
    with network_namespace("msd-mirror") as ns:
        ns.add_address(f"{PLAIN_HTTP_HOST}/32")
        yield ns


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_layout(tmp_path_factory.mktemp("image"), tag="1.36")


@pytest.fixture(scope="module")
def registries(netns: NetNS, layout: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[dict[str, LocalRegistry]]:
    root = tmp_path_factory.mktemp("registries")
    started: dict[str, LocalRegistry] = {}
    try:
        for name, address in (("a", MIRROR_A), ("b", MIRROR_B), ("plain", f"{PLAIN_HTTP_HOST}:5000")):
            host, port = address.rsplit(":", 1)
            started[name] = start_registry(netns, root / name, host, int(port))
        for tag in TAGS:
            for name in ("a", "b"):
                started[name].push(layout, "1.36", "library/busybox", tag)
        started["a"].push(layout, "1.36", "google_containers/pause", PAUSE_TAG)
        started["a"].push(layout, "1.36", "pause", PAUSE_TAG)
        started["plain"].push(layout, "1.36", "team/app", "1")
        yield started
    finally:
        for registry in started.values():
            registry.stop()


def _host(netns: NetNS, containerd: tools.DebTool) -> ContainerdHost:
    return ContainerdHost(netns=netns, workdir=short_workdir(), bin_dir=tools.containerd_bin(containerd).parent,
                          runc=tools.runc_bin(), crictl_bin=tools.crictl_bin())


@pytest.fixture()
def ctd(netns: NetNS) -> Iterator[ContainerdHost]:
    """containerd 2.1.9 (config v3) started with minisand's config and no mirrors."""
    host = _host(netns, tools.CONTAINERD_2)
    try:
        host.install(build_plan(host.settings(), config_file=host.config_file))
        yield host
    finally:
        host.cleanup()


def plan_for(host: ContainerdHost, mirrors: MirrorConfig, version: int = 3, **settings: object) -> ContainerdPlan:
    return build_plan(host.settings(**settings), mirrors, config_version=version, config_file=host.config_file)


def apply_mirrors(host: ContainerdHost, *mirrors: str, insecure: tuple[str, ...] = (), version: int = 3
                  ) -> ContainerdPlan:
    plan = plan_for(host, MirrorConfig(registry_mirrors=mirrors, insecure_registries=insecure), version)
    result = apply(host.runner, plan, restart=host.restart, tools=host.tools, ready_timeout=20)
    assert not result.restarted, "mirror changes must not restart containerd (hosts.toml is read per pull)"
    return plan


def served(registry: LocalRegistry, repository: str, reference: str, upstream: str) -> bool:
    return any(r.ns == upstream and r.status == 200
               for r in registry.manifest_requests(repository, reference))


def test_docker_io_pull_is_served_by_the_mirror(ctd: ContainerdHost, registries: dict[str, LocalRegistry]) -> None:
    plan = apply_mirrors(ctd, f"http://{MIRROR_A}")
    pid = ctd.daemon.pid if ctd.daemon else None
    image_id = pull_image(ctd.runner, "busybox:t-docker", hosts=plan.hosts, crictl=ctd.crictl)
    assert image_id.startswith("sha256:")
    assert served(registries["a"], "library/busybox", "t-docker", "docker.io")
    assert not registries["b"].manifest_requests("library/busybox", "t-docker")
    assert ctd.daemon is not None and ctd.daemon.pid == pid and ctd.starts == 1


@pytest.mark.parametrize(("suffix", "repository"), [("", "pause"), ("/google_containers", "google_containers/pause")],
                         ids=["plain-mirror", "path-prefixed-mirror"])
def test_registry_k8s_io_pull_is_served_by_the_mirror(ctd: ContainerdHost, registries: dict[str, LocalRegistry],
                                                      suffix: str, repository: str) -> None:
    plan = apply_mirrors(ctd, f"registry.k8s.io=http://{MIRROR_A}{suffix}")
    hosts_toml = Path(plan.hosts_path("registry.k8s.io")).read_text()
    assert (f'[host."http://{MIRROR_A}/v2{suffix}"]' in hosts_toml) == bool(suffix)
    assert ("override_path = true" in hosts_toml) == bool(suffix)
    before = len(registries["a"].manifest_requests(repository, PAUSE_TAG))
    pull_image(ctd.runner, f"registry.k8s.io/pause:{PAUSE_TAG}", hosts=plan.hosts, crictl=ctd.crictl)
    fresh = registries["a"].manifest_requests(repository, PAUSE_TAG)[before:]
    assert any(r.ns == "registry.k8s.io" and r.status == 200 for r in fresh)


def test_probe_in_containerd_chooses_the_first_repository_that_answers(
        ctd: ContainerdHost, registries: dict[str, LocalRegistry]) -> None:
    probe = guest_image_probe(ctd.runner, PAUSE_TAG, crictl=ctd.crictl, timeout=60)
    candidates = [f"{DOWN}/google_containers", f"{MIRROR_A}/google_containers"]
    assert choose_repository(candidates, probe) == (f"{MIRROR_A}/google_containers", None)
    repo, warning = choose_repository([f"{DOWN}/google_containers", f"{DOWN}/other"], probe)
    assert repo == f"{DOWN}/google_containers" and warning is not None


def test_two_mirrors_first_down_the_second_serves(ctd: ContainerdHost,
                                                  registries: dict[str, LocalRegistry]) -> None:
    plan = apply_mirrors(ctd, f"http://{DOWN}", f"http://{MIRROR_B}")
    pull_image(ctd.runner, "docker.io/library/busybox:t-order", hosts=plan.hosts, crictl=ctd.crictl)
    assert served(registries["b"], "library/busybox", "t-order", "docker.io")
    assert not registries["a"].manifest_requests("library/busybox", "t-order")


def test_mirror_down_without_fallback_fails_with_a_clear_error(
        ctd: ContainerdHost, registries: dict[str, LocalRegistry]) -> None:
    plan = apply_mirrors(ctd, f"http://{DOWN}")
    with pytest.raises(MinisandError) as err:
        pull_image(ctd.runner, "busybox:t-down", hosts=plan.hosts, crictl=ctd.crictl, timeout=120)
    message = err.value.one_line()
    assert err.value.code == ExitCode.DOWNLOAD_ERROR
    assert f"after trying http://{DOWN}, https://registry-1.docker.io" in message
    assert "connection refused" in message
    assert "\n" not in message
    assert not any(r.manifest_requests("library/busybox", "t-down") for r in registries.values())


def test_insecure_registry_is_reached_over_plain_http_only_when_named(
        ctd: ContainerdHost, registries: dict[str, LocalRegistry]) -> None:
    image = f"{PLAIN_HTTP_HOST}:5000/team/app:1"
    with pytest.raises(MinisandError) as err:
        pull_image(ctd.runner, image, crictl=ctd.crictl, timeout=120)
    assert "https://" in err.value.message  # containerd's default for a non-local registry is HTTPS only
    plan = apply_mirrors(ctd, insecure=(f"{PLAIN_HTTP_HOST}:5000",))
    pull_image(ctd.runner, image, hosts=plan.hosts, crictl=ctd.crictl)
    assert any(r.status == 200 for r in registries["plain"].manifest_requests("team/app", "1"))
    # Dropping the flag removes the hosts.toml minisand wrote (and only that one).
    apply_mirrors(ctd)
    assert not Path(plan.hosts_path(f"{PLAIN_HTTP_HOST}:5000")).exists()


def test_refused_config_changes_nothing_and_containerd_keeps_running(ctd: ContainerdHost) -> None:
    before = Path(ctd.config_file).read_text()
    pid = ctd.daemon.pid if ctd.daemon else None
    dropin = ctd.workdir / "conf.d" / "50-broken.toml"
    dropin.parent.mkdir()
    dropin.write_text("[plugins.'io.containerd.cri.v1.runtime']\n  restrict_oom_score_adj = \"maybe\"\n")
    plan = plan_for(ctd, MirrorConfig(registry_mirrors=(f"http://{MIRROR_A}",)),
                    imports=(str(ctd.workdir / "conf.d" / "*.toml"),))
    with pytest.raises(MinisandError) as err:
        apply(ctd.runner, plan, restart=ctd.restart, tools=ctd.tools, ready_timeout=20)
    assert err.value.code == ExitCode.RUNTIME_ERROR
    assert "refuses the new config" in err.value.message and "nothing was changed" in err.value.message
    assert Path(ctd.config_file).read_text() == before
    assert not Path(plan.hosts_path("docker.io")).exists()
    assert not any(p.name.endswith(".minisand-check") for p in ctd.workdir.iterdir())
    assert ctd.daemon is not None and ctd.daemon.alive() and ctd.daemon.pid == pid and ctd.starts == 1
    wait_ready(ctd.runner, ctd.socket, ctd.tools, timeout=5)


def test_config_change_restarts_and_a_failed_restart_rolls_back(ctd: ContainerdHost) -> None:
    changed = plan_for(ctd, MirrorConfig(), sandbox_image=f"registry.k8s.io/pause:{PAUSE_TAG}-other")
    result = apply(ctd.runner, changed, restart=ctd.restart, tools=ctd.tools, ready_timeout=20)
    assert result.config_changed and result.restarted and ctd.starts == 2
    assert Path(ctd.config_file).read_text() == changed.config_text
    # Loads fine (`config dump`), but containerd cannot start: its root is a regular file.
    blocker = ctd.workdir / "not-a-dir"
    blocker.write_text("")
    broken = plan_for(ctd, MirrorConfig(), root_dir=str(blocker))
    with pytest.raises(MinisandError) as err:
        apply(ctd.runner, broken, restart=ctd.restart, tools=ctd.tools, ready_timeout=5)
    assert err.value.code == ExitCode.RUNTIME_ERROR
    assert "previous config was restored" in err.value.message
    assert Path(ctd.config_file).read_text() == changed.config_text
    assert ctd.daemon is not None and ctd.daemon.alive()
    wait_ready(ctd.runner, ctd.socket, ctd.tools, timeout=5)


def test_containerd_1_7_with_the_v2_config_pulls_through_the_mirror(
        netns: NetNS, registries: dict[str, LocalRegistry]) -> None:
    host = _host(netns, tools.CONTAINERD_17)
    try:
        host.install(build_plan(host.settings(), config_version=2, config_file=host.config_file))
        plan = apply_mirrors(host, f"http://{MIRROR_A}", version=2)
        assert "version = 2" in Path(host.config_file).read_text()
        pull_image(host.runner, "busybox:t-v2", hosts=plan.hosts, crictl=host.crictl)
        assert served(registries["a"], "library/busybox", "t-v2", "docker.io")
    finally:
        host.cleanup()


CONTAINERD_GOLDEN = GOLDEN / "containerd"


@pytest.mark.parametrize("golden", sorted(p.name for p in CONTAINERD_GOLDEN.glob("v*.toml")))
def test_golden_configs_load_in_the_containerd_they_target(golden: str) -> None:
    """Every golden config loads in the real containerd of its version; the other version refuses it."""
    text_file = CONTAINERD_GOLDEN / golden
    own, other = ((tools.CONTAINERD_2, tools.CONTAINERD_17) if golden.startswith("v3")
                  else (tools.CONTAINERD_17, tools.CONTAINERD_2))
    ok = subprocess.run([str(tools.containerd_bin(own)), "--config", str(text_file), "config", "dump"],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    if own is tools.CONTAINERD_2:
        refused = subprocess.run([str(tools.containerd_bin(other)), "--config", str(text_file), "config", "dump"],
                                 capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode != 0 and "version" in refused.stderr

