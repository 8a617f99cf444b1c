"""The Debian rootfs of the ISO: debootstrap, the package list, iso/rootfs/ copied over, iso/chroot/configure.sh
run inside, and the package manifest. Every chroot mount is undone before anything deletes the tree."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from minisand.errors import ExitCode, MinisandError
from minisand.iso.recipe import Recipe
from minisand.iso.tools import BuildLog

CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "DEBIAN_FRONTEND": "noninteractive",
    "LC_ALL": "C.UTF-8",
    "HOME": "/root",
}
DEB_DIR = "var/cache/minisand-debs"  # inside the rootfs, removed by the trim


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below path (from /proc/self/mountinfo), deepest first."""
    real = os.path.realpath(path)
    found = []
    with Path("/proc/self/mountinfo").open() as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == real or mnt.startswith(real.rstrip("/") + "/"):
                found.append(Path(mnt))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def safe_rmtree(path: Path) -> None:
    """rm -rf that refuses to run while anything is mounted inside (a bind-mounted /dev, for one)."""
    if not path.exists():
        return
    busy = mounts_under(path)
    if busy:
        raise MinisandError(f"refusing to delete {path}: {busy[0]} is still mounted",
                            hint=f"umount -R {path}", code=ExitCode.ISO_ERROR)
    shutil.rmtree(path)


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """proc, sys, /dev and /dev/pts inside the chroot; always unmounted again (lazily if busy)."""
    mounted: list[Path] = []
    specs: list[list[str]] = [
        ["-t", "proc", "proc", str(root / "proc")],
        ["-t", "sysfs", "sysfs", str(root / "sys")],
        ["--bind", "/dev", str(root / "dev")],
        ["--bind", "/dev/pts", str(root / "dev/pts")],
    ]
    try:
        for spec in specs:
            target = Path(spec[-1])
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", *spec], check=True, capture_output=True)
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def in_chroot(blog: BuildLog, root: Path, argv: Sequence[str], *, capture: bool = False,
              timeout: float = 3600) -> str:
    return blog.run(["chroot", str(root), *argv], env=CHROOT_ENV, capture=capture, timeout=timeout)


def debootstrap(recipe: Recipe, root: Path, blog: BuildLog) -> None:
    d = recipe.debian
    argv = ["debootstrap", f"--variant={d.variant}", "--components=main", d.suite, str(root), d.mirror]
    if not Path("/usr/share/debootstrap/scripts", d.suite).exists():
        argv.append(f"/usr/share/debootstrap/scripts/{d.debootstrap_script}")
    blog.run(argv, timeout=3600)


def install_packages(recipe: Recipe, root: Path, blog: BuildLog) -> None:
    """The recipe's packages (no recommends), after the placeholder that stands in for an initramfs tool and
    a dpkg filter that keeps docs out; the boot packages (busybox-static, isolinux) are only downloaded."""
    _copy_tree(recipe.path("rootfs", "etc", "dpkg"), root / "etc" / "dpkg")
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# no daemons start inside the build chroot\nexit 101\n")
    policy.chmod(0o755)
    deb = root / DEB_DIR / "minisand-no-initramfs.deb"
    deb.parent.mkdir(parents=True, exist_ok=True)
    blog.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build",
              str(recipe.path("debs", "minisand-no-initramfs")), str(deb)])
    with chroot_mounts(root):
        in_chroot(blog, root, ["dpkg", "-i", f"/{DEB_DIR}/{deb.name}"])
        # before systemd-resolved takes /etc/resolv.conf over (the chroot resolves with the host's copy)
        in_chroot(blog, root, ["env", "-C", f"/{DEB_DIR}", "apt-get", "download",
                               *recipe.boot_packages.values()])
        in_chroot(blog, root, ["apt-get", "install", "-y", "--no-install-recommends",
                               "-o", "Dpkg::Options::=--force-confold", *recipe.packages])
    policy.unlink()


def apply_overlay(recipe: Recipe, root: Path, crictl: Path) -> None:
    _copy_tree(recipe.path("rootfs"), root)
    dest = root / "usr/bin/crictl"  # sudo's secure_path has no /usr/local/bin
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(crictl, dest)
    dest.chmod(0o755)


def configure(recipe: Recipe, root: Path, blog: BuildLog) -> None:
    script = root / "tmp/minisand-configure.sh"
    shutil.copy2(recipe.path("chroot", "configure.sh"), script)
    script.chmod(0o755)
    with chroot_mounts(root):
        in_chroot(blog, root, ["/bin/sh", "/tmp/minisand-configure.sh"])
    script.unlink()


def kernel_version(root: Path) -> str:
    versions = sorted(p.name for p in (root / "usr/lib/modules").iterdir() if (p / "modules.dep").is_file())
    if len(versions) != 1:
        raise MinisandError(f"expected one kernel in the rootfs, found {versions}", hint="check packages.txt",
                            code=ExitCode.ISO_ERROR)
    return versions[0]


def package_manifest(root: Path, blog: BuildLog) -> list[dict[str, str]]:
    out = in_chroot(blog, root, ["dpkg-query", "-W", "-f",
                                 "${Package}\t${Version}\t${Architecture}\t${source:Package}\n"], capture=True)
    rows = []
    for line in sorted(out.splitlines()):
        name, version, arch, source = [*line.split("\t"), "", "", ""][:4]
        rows.append({"name": name, "version": version, "arch": arch, "source": source or name})
    return rows


def boot_debs(root: Path) -> dict[str, Path]:
    """The downloaded boot packages: package name -> .deb file."""
    return {p.name.split("_", 1)[0]: p for p in (root / DEB_DIR).glob("*_*.deb")}


def deb_version(deb: Path) -> str:
    return deb.name.split("_")[1].replace("%3a", ":")


def _copy_tree(src: Path, dest: Path) -> None:
    """Copies files (keeping the exec bit, root-owned, 0644/0755) and symlinks from src into dest."""
    for path in sorted(src.rglob("*")):
        target = dest / path.relative_to(src)
        if path.is_symlink():
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to(path.readlink())
        elif path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            shutil.copyfile(path, target)
            target.chmod(0o755 if os.access(path, os.X_OK) else 0o644)
            os.chown(target, 0, 0)
