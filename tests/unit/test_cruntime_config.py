"""containerd config.toml for config versions 3 (containerd 2.x) and 2 (containerd 1.7), with and without extra
runtime handlers. Golden files: tests/unit/golden/containerd/ (MINISAND_UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from minisand.config.model import MirrorConfig
from minisand.cruntime.config import (
    ContainerdSettings,
    RuntimeHandler,
    gvisor_handler,
    render_config,
    runc_handler,
)
from minisand.cruntime.plan import build_plan, config_version_for
from minisand.errors import ExitCode, MinisandError
from tests.unit.golden import assert_golden

PAUSE = "registry.k8s.io/pause:3.10.2"
GUEST = ContainerdSettings(sandbox_image=PAUSE)
HOST = ContainerdSettings(  # a host without systemd, containerd in its own dirs (the none driver, the tests)
    sandbox_image="registry.cn-hangzhou.aliyuncs.com/google_containers/pause:3.10.2", cgroup_driver="cgroupfs",
    handlers=(runc_handler("cgroupfs", root="/run/minisand/runc", binary_name="/opt/minisand/bin/runc"),),
    root_dir="/var/lib/minisand/containerd", state_dir="/run/minisand/containerd",
    grpc_address="/run/minisand/containerd/containerd.sock", restrict_oom_score_adj=True,
    cni_bin_dirs=("/opt/cni/bin", "/usr/lib/cni"), imports=("/etc/containerd/conf.d/*.toml",))
KATA = RuntimeHandler(name="kata-qemu", runtime_type="io.containerd.kata-qemu.v2",
                      runtime_path="/opt/kata/bin/containerd-shim-kata-v2", privileged_without_host_devices=True,
                      pod_annotations=("io.katacontainers.*",),
                      options={"ConfigPath": "/opt/kata/share/defaults/kata-containers/configuration-qemu.toml"})

VARIANTS = {
    "guest": GUEST,
    "guest-gvisor-kata": GUEST.with_handlers(gvisor_handler(), KATA),
    "host-cgroupfs": HOST,
}


@pytest.mark.parametrize("version", [3, 2])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_config_golden(name: str, version: int) -> None:
    assert_golden("containerd", f"v{version}-{name}.toml", render_config(VARIANTS[name], version))


def _runtimes(data: dict[str, Any], version: int) -> dict[str, Any]:
    if version == 3:
        return dict(data["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"])
    return dict(data["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"])


@pytest.mark.parametrize("version", [3, 2])
@pytest.mark.parametrize("driver", ["systemd", "cgroupfs"])
def test_cgroup_driver_reaches_runc_options(version: int, driver: str) -> None:
    data = tomllib.loads(render_config(ContainerdSettings(sandbox_image=PAUSE, cgroup_driver=driver), version))
    assert data["version"] == version
    assert _runtimes(data, version)["runc"]["options"]["SystemdCgroup"] is (driver == "systemd")


def test_v3_keys_sit_where_containerd_2_reads_them() -> None:
    data = tomllib.loads(render_config(VARIANTS["guest-gvisor-kata"], 3))
    images = data["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == PAUSE
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    runtimes = _runtimes(data, 3)
    assert list(runtimes) == ["runc", "runsc", "kata-qemu"]
    assert runtimes["runsc"]["runtime_type"] == "io.containerd.runsc.v1"
    assert runtimes["runsc"]["options"] == {"ConfigPath": "/etc/containerd/runsc.toml",
                                           "TypeUrl": "io.containerd.runsc.v1.options"}
    assert runtimes["kata-qemu"]["privileged_without_host_devices"] is True
    assert data["plugins"]["io.containerd.cri.v1.runtime"]["cni"]["bin_dirs"] == ["/usr/lib/cni"]


def test_v2_keys_sit_where_containerd_1_7_reads_them() -> None:
    data = tomllib.loads(render_config(HOST, 2))
    cri = data["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"].endswith("google_containers/pause:3.10.2")
    assert cri["restrict_oom_score_adj"] is True
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert cri["cni"]["bin_dir"] == "/opt/cni/bin"
    assert (data["root"], data["state"]) == ("/var/lib/minisand/containerd", "/run/minisand/containerd")
    assert _runtimes(data, 2)["runc"]["options"] == {
        "SystemdCgroup": False, "Root": "/run/minisand/runc", "BinaryName": "/opt/minisand/bin/runc"}


@pytest.mark.parametrize(("settings", "version", "fragment"), [
    (ContainerdSettings(sandbox_image=PAUSE, cgroup_driver="cgroupv3"), 3, "cgroup driver"),
    (ContainerdSettings(sandbox_image="not an image"), 3, "not an image reference"),
    (GUEST.with_handlers(gvisor_handler(), gvisor_handler()), 3, "defined twice"),
    (ContainerdSettings(sandbox_image=PAUSE, default_runtime="runsc"), 3, "default runtime"),
    (GUEST.with_handlers(RuntimeHandler("Bad_Name", "io.x.v1")), 3, "handler name"),
    (GUEST.with_handlers(RuntimeHandler("x", "io.x.v1", options={"a b": "c"})), 3, "option name"),
    (GUEST.with_handlers(RuntimeHandler("x", "io.x.v1", options={"A": 1.5})), 3, "unsupported type"),  # type: ignore[dict-item]
    (ContainerdSettings(sandbox_image=PAUSE, cni_bin_dirs=()), 3, "CNI bin dir"),
    (GUEST, 4, "config version 4"),
])
def test_bad_settings_are_refused(settings: ContainerdSettings, version: int, fragment: str) -> None:
    with pytest.raises(MinisandError) as err:
        render_config(settings, version)
    assert fragment in err.value.message
    assert err.value.code in (ExitCode.BAD_INPUT, ExitCode.RUNTIME_ERROR)


def test_plan_lists_every_file_with_full_content() -> None:
    plan = build_plan(GUEST, MirrorConfig(registry_mirrors=("http://127.0.0.1:5001",),
                                          insecure_registries=("registry.local:5000",)))
    files = {str(p): t for p, t in plan.files().items()}
    assert sorted(files) == ["/etc/containerd/certs.d/docker.io/hosts.toml",
                             "/etc/containerd/certs.d/registry.local:5000/hosts.toml",
                             "/etc/containerd/config.toml"]
    assert files["/etc/containerd/config.toml"] == render_config(GUEST, 3)
    assert plan.to_dict()["registry_endpoints"] == {
        "docker.io": ["http://127.0.0.1:5001", "https://registry-1.docker.io"],
        "registry.local:5000": ["https://registry.local:5000", "http://registry.local:5000"]}
    assert plan.grpc_address == "/run/containerd/containerd.sock"


@pytest.mark.parametrize(("output", "version"), [
    ("containerd github.com/containerd/containerd/v2 2.1.9+unknown ", 3),
    ("containerd github.com/containerd/containerd/v2 v2.2.0 abcdef", 3),
    ("containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1", 2),
    ("containerd containerd.io 1.6.20 2806fc1", 2),
])
def test_config_version_from_containerd_version(output: str, version: int) -> None:
    assert config_version_for(output) == version


@pytest.mark.parametrize("output", ["containerd github.com/containerd/containerd v1.4.13 x", "", "garbage"])
def test_unsupported_containerd_is_a_runtime_error(output: str) -> None:
    with pytest.raises(MinisandError) as err:
        config_version_for(output)
    assert err.value.code == ExitCode.RUNTIME_ERROR
