"""Host-side service control for the none driver (filled in by the Kubernetes bootstrap)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from minisand.services import ProcessDef, ProcessServices

if TYPE_CHECKING:
    from minisand.drivers.none.driver import NoneDriver


def _containerd_argv() -> list[str]:
    return [shutil.which("containerd") or "containerd", "--config", "/etc/containerd/config.toml"]


def process_services(state_dir: Path, prefix: list[str]) -> ProcessServices:
    return ProcessServices(state_dir / "services", prefix, {
        "containerd": ProcessDef(argv=_containerd_argv,
                                 ready=lambda: Path("/run/containerd/containerd.sock").exists()),
    })


def stop_node(driver: NoneDriver) -> None:
    services = process_services(driver.dir, driver.prefix)
    for name in ("kubelet", "containerd"):
        if name in services.defs:
            services.stop(name)


def reset_node(driver: NoneDriver) -> None:
    stop_node(driver)
