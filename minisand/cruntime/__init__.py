"""The container runtime (containerd): config.toml and certs.d rendered from templates, applied through a runner,
restarted only when config.toml's text changes; image pulls through CRI."""

from minisand.cruntime.apply import (
    ApplyResult,
    Restarter,
    Tools,
    apply,
    detect_config_version,
    systemd_restarter,
    validate_config,
)
from minisand.cruntime.config import ContainerdSettings, RuntimeHandler, gvisor_handler, render_config, runc_handler
from minisand.cruntime.plan import ContainerdPlan, build_plan, config_version_for
from minisand.cruntime.pull import Crictl, guest_image_probe, pull_image

__all__ = [
    "ApplyResult",
    "ContainerdPlan",
    "ContainerdSettings",
    "Crictl",
    "Restarter",
    "RuntimeHandler",
    "Tools",
    "apply",
    "build_plan",
    "config_version_for",
    "detect_config_version",
    "guest_image_probe",
    "gvisor_handler",
    "pull_image",
    "render_config",
    "runc_handler",
    "systemd_restarter",
    "validate_config",
]
