"""The kata addon: Kata Containers as RuntimeClass `kata` (containerd handler `kata`, io.containerd.kata.v2). Kata
runs each pod in a lightweight VM, so the node itself needs /dev/kvm (nested virtualisation under a VM driver);
validation checks that first and says so clearly. The shim and guest assets must be on the node
(/opt/kata/bin/containerd-shim-kata-v2, as kata-deploy or kata's static tarball installs them)."""

from __future__ import annotations

from minisand.addons.context import AddonContext
from minisand.addons.spec import AddonSpec
from minisand.config.model import ClusterConfig
from minisand.cruntime.config import RuntimeHandler
from minisand.errors import ExitCode, MinisandError

SHIM = "/opt/kata/bin/containerd-shim-kata-v2"
CONFIG = "/opt/kata/share/defaults/kata-containers/configuration.toml"


def handlers(_cfg: ClusterConfig) -> tuple[RuntimeHandler, ...]:
    return (RuntimeHandler(name="kata", runtime_type="io.containerd.kata.v2", runtime_path=SHIM,
                           options={"ConfigPath": CONFIG}, privileged_without_host_devices=True,
                           pod_annotations=("io.katacontainers.*",)),)


def validate(actx: AddonContext) -> None:
    for node in actx.nodes:
        r = node.runner
        if not r.run(["test", "-c", "/dev/kvm"], sudo=True, check=False, timeout=30).ok:
            raise MinisandError(
                f"the kata addon needs /dev/kvm inside node {node.machine!r}, and it has none: Kata runs every pod in "
                "its own VM, which needs nested virtualisation (not available on this host)",
                hint="use the gvisor addon (no KVM needed), or a host with nested virtualisation and --qemu-accel=kvm",
                code=ExitCode.ADDON_ERROR, reason="ADDON_REQUIREMENT_KVM")
        if not r.run(["test", "-x", SHIM], sudo=True, check=False, timeout=30).ok:
            raise MinisandError(f"the kata addon needs Kata's shim at {SHIM} on node {node.machine!r}",
                                hint="install Kata's static release into /opt/kata on the node first",
                                code=ExitCode.ADDON_ERROR, reason="ADDON_REQUIREMENT_KATA")


SPEC = AddonSpec(
    name="kata",
    description="Kata Containers (VM-isolated pods, needs KVM in the node) as RuntimeClass kata",
    manifests=("kata/runtimeclass.yaml.j2",),
    handlers=handlers, validate=validate,
)
