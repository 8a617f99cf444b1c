from __future__ import annotations

import pytest

from minisand.cluster.startconfig import StartRequest, resolve
from minisand.config.model import DEFAULT_KUBERNETES_VERSION, ClusterConfig
from minisand.errors import ExitCode, MinisandError


def test_defaults() -> None:
    r = resolve("dev", StartRequest(), None, {}, "qemu")
    c = r.config
    assert (c.driver, c.cpus, c.memory_mb, c.kubernetes_version) == ("qemu", 2, 4096, DEFAULT_KUBERNETES_VERSION)
    assert c.container_runtime == "containerd" and c.nodes == 1 and not r.warnings


def test_precedence_flag_over_stored_over_setting() -> None:
    settings: dict[str, str | list[str]] = {"memory": "8g", "registry-mirror": ["http://s:5000"]}
    fresh = resolve("dev", StartRequest(), None, settings, "qemu").config
    assert fresh.memory_mb == 8192 and fresh.mirrors.registry_mirrors == ("http://s:5000",)
    stored = ClusterConfig(name="dev", driver="qemu", memory_mb=3072)
    again = resolve("dev", StartRequest(registry_mirror=("http://f:5000",)), stored, settings, "qemu")
    assert again.config.memory_mb == 3072  # the stored value wins over the setting
    assert again.config.mirrors.registry_mirrors == ("http://f:5000",)
    assert again.changed_mirrors


def test_resources_of_existing_cluster_are_kept_with_a_warning() -> None:
    stored = ClusterConfig(name="dev", driver="qemu", memory_mb=3072)
    r = resolve("dev", StartRequest(memory="6g"), stored, {}, "qemu")
    assert r.config.memory_mb == 3072
    assert any("--memory" in w for w in r.warnings)


@pytest.mark.parametrize(("req", "needle"), [
    (StartRequest(memory="lots"), "--memory"),
    (StartRequest(cpus="0"), "--cpus"),
    (StartRequest(driver="foo"), "unknown driver"),
    (StartRequest(container_runtime="docker"), "Docker Engine"),
    (StartRequest(container_runtime="cri-o"), "CRI-O"),
    (StartRequest(kubernetes_version="v1.20.0"), "not supported"),
    (StartRequest(wait="apiserver,bogus"), "--wait"),
    (StartRequest(nodes=0), "--nodes"),
    (StartRequest(iso_url="ftp://x/y.iso"), "--iso-url"),
    (StartRequest(iso_checksum="md5:abc"), "--iso-checksum"),
    (StartRequest(registry_mirror=("not a url",)), "--registry-mirror"),
    (StartRequest(insecure_registry=("https://r:5000",)), "scheme"),
    (StartRequest(guest_forward=("10.0.2.100:5000",)), "--guest-forward"),
    (StartRequest(qemu_accel="hvf"), "--qemu-accel"),
    (StartRequest(no_kubernetes=True, kubernetes_version="v1.36.4"), "contradict"),
])
def test_bad_input(req: StartRequest, needle: str) -> None:
    with pytest.raises(MinisandError) as exc:
        resolve("dev", req, None, {}, "qemu")
    assert exc.value.code == ExitCode.BAD_INPUT
    assert needle in exc.value.message
    assert exc.value.hint


def test_immutable_fields_of_existing_cluster() -> None:
    stored = ClusterConfig(name="dev", driver="qemu")
    for req in (StartRequest(driver="kvm2"), StartRequest(kubernetes_version="v1.35.8"), StartRequest(nodes=2)):
        with pytest.raises(MinisandError) as exc:
            resolve("dev", req, stored, {}, "qemu")
        assert "minisand delete" in exc.value.hint


def test_ssh_driver_requires_address_and_key() -> None:
    with pytest.raises(MinisandError, match="--ssh-ip-address"):
        resolve("dev", StartRequest(driver="ssh"), None, {}, "ssh")


def test_addons_accumulate_and_split() -> None:
    stored = ClusterConfig(name="dev", driver="qemu", addons=("gvisor",))
    r = resolve("dev", StartRequest(addons=("kata,gvisor", "x")), stored, {}, "qemu")
    assert r.config.addons == ("gvisor", "kata", "x")


def test_machine_names() -> None:
    assert ClusterConfig(name="p", driver="qemu", nodes=3).machine_names() == ["p", "p-m02", "p-m03"]
