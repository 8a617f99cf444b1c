"""containerd's /etc/containerd/config.toml, rendered from templates/containerd/config-v{2,3}.toml.j2.

Pure: ContainerdSettings (data, including the runtime handlers addons contribute) -> text. Never edited in place:
the whole file is rendered again and compared."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Union

from minisand import guest as guestpaths
from minisand.errors import ExitCode, MinisandError, bad_input
from minisand.images.ref import parse_image
from minisand.templating import render

OptionValue = Union[bool, int, str, tuple[str, ...]]  # noqa: UP007 - a runtime alias needs Union
CGROUP_DRIVERS = ("systemd", "cgroupfs")
CONFIG_VERSIONS = (2, 3)
RUNC_TYPE = "io.containerd.runc.v2"
_HANDLER_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
_OPTION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class RuntimeHandler:
    """One CRI runtime handler (what a RuntimeClass's `handler` names). Addons contribute these as data."""

    name: str
    runtime_type: str
    runtime_path: str | None = None  # the shim binary, when it is not on containerd's PATH
    options: Mapping[str, OptionValue] = field(default_factory=dict)
    privileged_without_host_devices: bool = False
    pod_annotations: tuple[str, ...] = ()
    container_annotations: tuple[str, ...] = ()
    snapshotter: str | None = None


def runc_handler(cgroup_driver: str = "systemd", *, root: str | None = None,
                 binary_name: str | None = None, runtime_path: str | None = None) -> RuntimeHandler:
    """runc with the cgroup driver of the node (systemd in the guest; cgroupfs on hosts without systemd).
    root: a per-handler runc state directory (hosts where /run/runc belongs to another runc user)."""
    options: dict[str, OptionValue] = {"SystemdCgroup": cgroup_driver == "systemd"}
    if root:
        options["Root"] = root
    if binary_name:
        options["BinaryName"] = binary_name
    return RuntimeHandler(name="runc", runtime_type=RUNC_TYPE, runtime_path=runtime_path, options=options)


def gvisor_handler(config_path: str = "/etc/containerd/runsc.toml", *,
                   runtime_path: str | None = None) -> RuntimeHandler:
    """gVisor's containerd shim (containerd-shim-runsc-v1), for the gvisor addon."""
    return RuntimeHandler(name="runsc", runtime_type="io.containerd.runsc.v1", runtime_path=runtime_path,
                          options={"TypeUrl": "io.containerd.runsc.v1.options", "ConfigPath": config_path})


@dataclass(frozen=True)
class ContainerdSettings:
    sandbox_image: str  # pinned pause image, from the chosen image repository
    cgroup_driver: str = "systemd"
    handlers: tuple[RuntimeHandler, ...] = ()  # empty: runc only (with cgroup_driver)
    default_runtime: str = "runc"
    config_path: str = str(guestpaths.CERTS_D)
    cni_bin_dirs: tuple[str, ...] = (str(guestpaths.CNI_BIN_DIR),)
    cni_conf_dir: str = str(guestpaths.CNI_CONF_DIR)
    root_dir: str = "/var/lib/containerd"
    state_dir: str = "/run/containerd"
    grpc_address: str = str(guestpaths.CONTAINERD_SOCK)
    snapshotter: str = "overlayfs"
    restrict_oom_score_adj: bool = False  # true where root lacks CAP_SYS_RESOURCE (nested/unprivileged hosts)
    disable_apparmor: bool = False
    imports: tuple[str, ...] = ()

    def with_handlers(self, *extra: RuntimeHandler) -> ContainerdSettings:
        return replace(self, handlers=(*self.effective_handlers(), *extra))

    def effective_handlers(self) -> tuple[RuntimeHandler, ...]:
        if any(h.name == "runc" for h in self.handlers):
            return self.handlers
        return (runc_handler(self.cgroup_driver), *self.handlers)


def _check_handler(h: RuntimeHandler) -> None:
    if not _HANDLER_NAME.match(h.name):
        raise bad_input(f"runtime handler name {h.name!r} is invalid",
                        "use a DNS label such as runsc or kata-qemu")
    for key, value in h.options.items():
        if not _OPTION_KEY.match(key):
            raise bad_input(f"runtime handler {h.name}: option name {key!r} is invalid", "use names like ConfigPath")
        ok = isinstance(value, (bool, int, str)) or (
            isinstance(value, tuple) and all(isinstance(v, str) for v in value))
        if not ok:
            raise bad_input(f"runtime handler {h.name}: option {key} has unsupported type {type(value).__name__}",
                            "options are bool, int, str or a tuple of str")


def check_settings(settings: ContainerdSettings) -> tuple[RuntimeHandler, ...]:
    if settings.cgroup_driver not in CGROUP_DRIVERS:
        raise bad_input(f"cgroup driver {settings.cgroup_driver!r} is unknown",
                        f"use one of {', '.join(CGROUP_DRIVERS)}")
    parse_image(settings.sandbox_image)
    handlers = settings.effective_handlers()
    names = [h.name for h in handlers]
    for h in handlers:
        _check_handler(h)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise bad_input(f"runtime handler {duplicates[0]!r} is defined twice", "each handler name must be unique")
    if settings.default_runtime not in names:
        raise bad_input(f"default runtime {settings.default_runtime!r} is not among the handlers {names}",
                        "add the handler or keep the default runtime runc")
    if not settings.cni_bin_dirs:
        raise bad_input("containerd needs at least one CNI bin dir", f"use {guestpaths.CNI_BIN_DIR}")
    return handlers


def render_config(settings: ContainerdSettings, version: int = 3) -> str:
    """config.toml text for containerd config `version` (3: containerd 2.x; 2: containerd 1.7)."""
    if version not in CONFIG_VERSIONS:
        raise MinisandError(f"containerd config version {version} is not supported",
                            hint="minisand renders versions 2 (containerd 1.7) and 3 (containerd 2.x)",
                            code=ExitCode.RUNTIME_ERROR)
    handlers = check_settings(settings)
    text = render(f"containerd/config-v{version}.toml.j2", handlers=handlers,
                  **{k: getattr(settings, k) for k in _TEMPLATE_FIELDS})
    tomllib.loads(text)  # a template bug must never reach a guest
    return text


_TEMPLATE_FIELDS = ("sandbox_image", "default_runtime", "config_path", "cni_bin_dirs", "cni_conf_dir", "root_dir",
                    "state_dir", "grpc_address", "snapshotter", "restrict_oom_score_adj", "disable_apparmor",
                    "imports")
