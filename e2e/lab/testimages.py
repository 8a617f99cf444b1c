"""Root filesystems of Kubernetes' e2e test images (registry.k8s.io/e2e-test-images/...), as far as the
conformance subset uses them: agnhost, busybox and nonewprivs.

Upstream builds them on Alpine (agnhost, nonewprivs) and on busybox:1.37.0. Here the programs are built from the
k8s.io/kubernetes module and the userland comes from Debian: busybox-static from forky (1.38; Debian's 1.35 and
1.37 ash both drop environment names containing "-" when they start a child, which four ConfigMap/Secret specs
check), curl and nsenter from the host's release with their libraries.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from e2e.lab import debs
from e2e.lab.rootfs import (
    PATH_ENV,
    RECIPE_REVISION,
    ImageConfig,
    Recipe,
    base_skeleton,
    busybox_applets,
    file_digest,
    install,
)

E2E_REPOSITORY = "registry.k8s.io/e2e-test-images"
# busybox-static of Debian forky (pinned: apt verifies it against forky's signed Release)
BUSYBOX_SUITE = "forky"
BUSYBOX_VERSION = "1:1.38.0-3+b1"
AGNHOST_PACKAGES = ("curl", "util-linux")
AGNHOST_TOOLS = ("usr/bin/curl", "usr/bin/nsenter")
AGNHOST_PORTS = ("80/tcp", "8080/tcp", "8081/tcp", "9376/tcp", "5000/tcp")
# upstream's agnhost image: user-defined-in-image (uid 1000) in group-defined-in-image (gid 50000), for the
# SupplementalGroups specs
AGNHOST_USER = "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh"
AGNHOST_GROUPS = ("user-defined-in-image:x:1000:", "group-defined-in-image:x:50000:user-defined-in-image")


def _append(path: Path, lines: tuple[str, ...]) -> None:
    with path.open("a") as f:
        f.write("".join(f"{line}\n" for line in lines))


def _fill_agnhost(binary: Path, porter: Path, staging: Path, busybox: Path, rootfs: Path) -> None:
    base_skeleton(rootfs)
    install(binary, rootfs / "agnhost")
    (rootfs / "agnhost-2").symlink_to("agnhost")  # entrypoint-tester specs run the image with /agnhost-2
    debs.copy_with_libraries(staging, rootfs, AGNHOST_TOOLS)
    busybox_applets(rootfs, staging, busybox)
    for name in ("localhost.crt", "localhost.key"):  # porter's TLS pair, as upstream ADDs it
        install(porter / name, rootfs / name)
        (rootfs / name).chmod(0o644)
    (rootfs / "uploads").mkdir()
    _append(rootfs / "etc/passwd", (AGNHOST_USER,))
    _append(rootfs / "etc/group", AGNHOST_GROUPS)
    (rootfs / "home/user-defined-in-image").mkdir(parents=True)


def agnhost(tag: str, binary: Path, porter: Path, staging: Path, busybox: Path,
            deb_names: tuple[str, ...]) -> Recipe:
    """/agnhost (entrypoint, default argument pause), /agnhost-2, sh, curl and nsenter."""
    cfg = ImageConfig(entrypoint=("/agnhost",), cmd=("pause",), exposed_ports=AGNHOST_PORTS)
    return Recipe(name="agnhost", tag=tag, config=cfg,
                  fill=partial(_fill_agnhost, binary, porter, staging, busybox),
                  inputs=(RECIPE_REVISION, file_digest(binary), file_digest(busybox),
                          file_digest(porter / "localhost.crt"), *deb_names))


def _fill_busybox(busybox: Path, rootfs: Path) -> None:
    base_skeleton(rootfs)
    busybox_applets(rootfs, rootfs, busybox)


def busybox(tag: str, busybox_bin: Path) -> Recipe:
    """The e2e busybox: every applet (sh, sysctl, ip, true, false, ...) on PATH and in /bin."""
    return Recipe(name="busybox", tag=tag, config=ImageConfig(cmd=("sh",)), fill=partial(_fill_busybox, busybox_bin),
                  inputs=(RECIPE_REVISION, "e2e", file_digest(busybox_bin)))


def _fill_nonewprivs(nnp: Path, busybox: Path, rootfs: Path) -> None:
    base_skeleton(rootfs)
    busybox_applets(rootfs, rootfs, busybox)
    dest = rootfs / "usr/local/bin/nnp"
    install(nnp, dest)
    dest.chmod(0o6755)  # setuid and setgid root, as upstream's `chmod +s`: the no_new_privs specs need it


def nonewprivs(tag: str, nnp: Path, busybox_bin: Path) -> Recipe:
    cfg = ImageConfig(cmd=("nnp",), env=(PATH_ENV,))
    return Recipe(name="nonewprivs", tag=tag, config=cfg, fill=partial(_fill_nonewprivs, nnp, busybox_bin),
                  inputs=(RECIPE_REVISION, file_digest(nnp), file_digest(busybox_bin)))
