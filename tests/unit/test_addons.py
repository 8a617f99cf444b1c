"""The addon framework's checks that need no cluster: the registry, `addons list`, unknown addons and unmet
requirements (one-line errors with codes, the profile untouched), kata's /dev/kvm validation, gvisor's handler.
(Enabling gvisor for real is the seed demo, e2e/test_seed_demo.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minisand.addons import kata, registry
from minisand.addons.context import AddonContext
from minisand.config.model import ClusterConfig
from minisand.config.store import ProfileStore
from minisand.errors import ExitCode, MinisandError
from minisand.paths import Home
from tests.unit.clihelp import one_line_error, run_cli
from tests.unit.fakes import FakeRunner, fake_node


def test_registry_lists_every_addon(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run_cli(["addons", "list", "-o", "json"], capsys)
    assert code == 0
    listed = json.loads(out)
    assert set(listed) == {"gvisor", "headlamp", "kata"}
    assert all(v["status"] == "disabled" for v in listed.values())


def test_unknown_addon_names_the_known_ones(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ProfileStore(Home(home)).save(ClusterConfig(name="minisand", driver="qemu"))
    before = Home(home).profile_config("minisand").read_bytes()
    code, _out, err = run_cli(["addons", "enable", "nosuch"], capsys)
    assert code == ExitCode.BAD_INPUT
    assert "gvisor" in one_line_error(err) and "kata" in err
    assert Home(home).profile_config("minisand").read_bytes() == before


@pytest.mark.parametrize(("cfg", "needle"), [
    (ClusterConfig(name="minisand", driver="qemu", no_kubernetes=True), "needs Kubernetes"),
    (ClusterConfig(name="minisand", driver="qemu", container_runtime="cri-o"), "needs the containerd container"),
])
def test_unmet_requirement_is_named(home: Path, capsys: pytest.CaptureFixture[str], cfg: ClusterConfig,
                                    needle: str) -> None:
    ProfileStore(Home(home)).save(cfg)
    before = Home(home).profile_config("minisand").read_bytes()
    code, _out, err = run_cli(["addons", "enable", "gvisor"], capsys)
    assert code == ExitCode.ADDON_ERROR
    assert needle in one_line_error(err)
    assert Home(home).profile_config("minisand").read_bytes() == before


def test_enable_on_a_missing_profile(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_cli(["addons", "enable", "gvisor"], capsys)
    assert code == ExitCode.PROFILE_NOT_FOUND
    one_line_error(err)


@pytest.mark.parametrize(("has", "reason"), [
    (set(), "ADDON_REQUIREMENT_KVM"),
    ({"/dev/kvm"}, "ADDON_REQUIREMENT_KATA"),
])
def test_kata_says_what_the_node_lacks(has: set[str], reason: str) -> None:
    node = fake_node("m1", runner=FakeRunner(paths=sorted(has)))
    actx = AddonContext(home=None, cfg=ClusterConfig(name="p", driver="qemu"), nodes=[node])  # type: ignore[arg-type]
    with pytest.raises(MinisandError) as exc:
        kata.validate(actx)
    assert exc.value.reason == reason and exc.value.code == ExitCode.ADDON_ERROR and exc.value.hint
    if reason == "ADDON_REQUIREMENT_KVM":
        assert "/dev/kvm" in exc.value.message and "nested virtualisation" in exc.value.message


def test_kata_passes_with_kvm_and_the_shim() -> None:
    runner = FakeRunner(paths=["/dev/kvm", kata.SHIM])
    actx = AddonContext(home=None, cfg=ClusterConfig(name="p", driver="qemu"),  # type: ignore[arg-type]
                        nodes=[fake_node("m1", runner=runner)])
    kata.validate(actx)
    assert runner.commands == [["test", "-c", "/dev/kvm"], ["test", "-x", kata.SHIM]]


def test_enabled_addons_contribute_their_handlers() -> None:
    cfg = ClusterConfig(name="p", driver="qemu", addons=("gvisor", "kata"))
    handlers = {h.name: h for h in registry.runtime_handlers(cfg)}
    assert handlers["runsc"].runtime_type == "io.containerd.runsc.v1"
    assert handlers["kata"].runtime_type == "io.containerd.kata.v2"
    assert registry.runtime_handlers(ClusterConfig(name="p", driver="qemu")) == ()
