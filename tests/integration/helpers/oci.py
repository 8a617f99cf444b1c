"""A one-binary OCI image (the host's busybox-static) packed with umoci, as an OCI layout tar: a small local
image for `ctr image import` / `ctr run` in a guest that has no registry to pull from."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def busybox_oci_tar(work: Path) -> Path:
    layout, bundle = work / "layout", work / "bundle"
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is needed on the host"

    def umoci(*args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=120)

    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:latest")
    umoci("unpack", "--image", f"{layout}:latest", str(bundle))
    (bundle / "rootfs/bin").mkdir(parents=True)
    shutil.copy2(busybox, bundle / "rootfs/bin/busybox")
    umoci("repack", "--image", f"{layout}:latest", str(bundle))
    umoci("config", "--image", f"{layout}:latest", "--config.cmd=/bin/busybox", "--config.cmd=true")
    tar = work / "smoke.tar"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(tar), "."], check=True, timeout=120)
    return tar
