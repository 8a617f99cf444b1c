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


def web_image(work: Path, name: str, page: str = "hello from a loaded image\n") -> dict[str, Path]:
    """A small web server image built here (busybox-static's httpd serving /www on port 8080), named `name`, as a
    docker-archive (what `docker save` writes), an OCI archive (what `skopeo copy ... oci-archive:` and buildkit
    write) and a gzipped docker-archive."""
    import gzip

    layout, bundle = work / "web-layout", work / "web-bundle"
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is needed on the host"

    def run(*argv: str) -> None:
        subprocess.run(list(argv), check=True, capture_output=True, timeout=120)

    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:latest")
    run("umoci", "unpack", "--image", f"{layout}:latest", str(bundle))
    root = bundle / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "www").mkdir()
    shutil.copy2(busybox, root / "bin/busybox")
    (root / "www/index.html").write_text(page)
    run("umoci", "repack", "--image", f"{layout}:latest", str(bundle))
    run("umoci", "config", "--image", f"{layout}:latest", "--config.cmd=/bin/busybox", "--config.cmd=httpd",
        "--config.cmd=-f", "--config.cmd=-p", "--config.cmd=8080", "--config.cmd=-h", "--config.cmd=/www",
        "--config.exposedports=8080/tcp")
    out = {"docker": work / "web-docker.tar", "oci": work / "web-oci.tar", "gzip": work / "web-docker.tar.gz"}
    run("skopeo", "copy", "--quiet", f"oci:{layout}:latest", f"docker-archive:{out['docker']}:{name}")
    run("skopeo", "copy", "--quiet", f"oci:{layout}:latest", f"oci-archive:{out['oci']}:{name}")
    out["gzip"].write_bytes(gzip.compress(out["docker"].read_bytes()))
    return out
