"""`minisand iso build`: the guest ISO from Debian packages (root; debootstrap + chroot), cached by recipe hash.

Outputs in the build cache directory (minisand.iso.recipe.build_dir()), copied to output_dir when given:
    minisand-<version>.iso            hybrid isolinux ISO, volume label MINISAND
    minisand-<version>.iso.sha256     sha256sum format
    minisand-<version>.manifest.json  every package and version in the rootfs, kernel, crictl, suite
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import minisand
from minisand import ui
from minisand.download.fetch import file_digest
from minisand.errors import ExitCode, MinisandError
from minisand.iso import crictl as crictl_mod
from minisand.iso import image, initramfs, rootfs, trim
from minisand.iso.recipe import Recipe, build_dir, iso_name, load_recipe, recipe_hash
from minisand.iso.tools import BuildLog, require_tools


@dataclass(frozen=True)
class BuildResult:
    iso: Path
    sha256: str
    checksum_file: Path
    manifest: Path
    recipe_hash: str
    cached: bool  # True when the recipe was unchanged and nothing was built
    seconds: float
    size: int


def manifest_name(iso: str) -> str:
    return iso.removesuffix(".iso") + ".manifest.json"


def cached_build(digest: str | None = None) -> BuildResult | None:
    """The complete build for this recipe hash in the cache, if there is one (no hashing of the ISO)."""
    digest = digest or recipe_hash()
    d = build_dir(digest)
    iso = d / iso_name()
    sums = iso.with_name(iso.name + ".sha256")
    manifest = d / manifest_name(iso.name)
    if not (iso.is_file() and sums.is_file() and manifest.is_file()):
        return None
    sha = sums.read_text().split()[0]
    return BuildResult(iso=iso, sha256=sha, checksum_file=sums, manifest=manifest, recipe_hash=digest,
                       cached=True, seconds=0.0, size=iso.stat().st_size)


def build_iso(output_dir: Path | None, *, force: bool = False) -> BuildResult:
    start = time.monotonic()
    recipe = load_recipe()
    digest = recipe_hash(recipe)
    hit = None if force else cached_build(digest)
    if hit is None:
        _preflight()
        bdir = build_dir(digest)
        bdir.mkdir(parents=True, exist_ok=True)
        with _locked(bdir):
            hit = None if force else cached_build(digest)  # another build may have finished meanwhile
            if hit is None:
                hit = _build(recipe, digest, bdir, start)
    else:
        ui.info(f"the ISO for recipe {digest} is cached: {hit.iso}")
    if output_dir is not None:
        hit = _publish(hit, output_dir)
    return BuildResult(**{**hit.__dict__, "seconds": time.monotonic() - start})


def _preflight() -> None:
    if os.geteuid() != 0:
        raise MinisandError("building the ISO needs root (debootstrap, chroot, mounts)",
                            hint="run `sudo minisand iso build`", code=ExitCode.ISO_ERROR)
    require_tools(["debootstrap", "mksquashfs", "xorriso", "dpkg-deb", "chroot", "mount", "umount"])


def _build(recipe: Recipe, digest: str, bdir: Path, start: float) -> BuildResult:
    work = bdir / "work"
    rootfs.safe_rmtree(work)
    work.mkdir()
    blog = BuildLog(bdir / "build.log")
    blog.path.write_text("")
    ui.step(f"building the minisand ISO (recipe {digest}, Debian {recipe.debian.suite}); log: {blog.path}")
    try:
        result = _build_in(recipe, digest, bdir, work, blog)
    finally:
        if os.environ.get("MINISAND_ISO_KEEP_WORK") != "1":
            rootfs.safe_rmtree(work)
    ui.done(f"built {result.iso} ({result.size / 2**20:.1f} MiB) in {time.monotonic() - start:.0f}s")
    return result


def _build_in(recipe: Recipe, digest: str, bdir: Path, work: Path, blog: BuildLog) -> BuildResult:
    root, tree = work / "rootfs", work / "iso"
    with ui.timed("crictl " + recipe.crictl.version):
        crictl = crictl_mod.crictl_binary(recipe.crictl, blog)
    with ui.timed("debootstrap " + recipe.debian.suite):
        rootfs.debootstrap(recipe, root, blog)
    with ui.timed(f"installing {len(recipe.packages)} packages"):
        rootfs.install_packages(recipe, root, blog)
    with ui.timed("configuring the image"):
        rootfs.apply_overlay(recipe, root, crictl)
        rootfs.configure(recipe, root, blog)
    kver = rootfs.kernel_version(root)
    packages = rootfs.package_manifest(root, blog)
    debs = rootfs.boot_debs(root)  # copied out before the trim removes them from the rootfs
    boot_versions = {pkg: rootfs.deb_version(deb) for pkg, deb in sorted(debs.items())}
    with ui.timed("kernel and initramfs"):
        _boot_files(recipe, root, tree, work, kver, debs, blog)
        isolinux_tree = image.extract_deb(debs[recipe.boot_packages["isolinux"]], work / "isolinux", blog)
        syslinux_tree = image.extract_deb(debs[recipe.boot_packages["syslinux_modules"]], work / "syslinux", blog)
    with ui.timed("trimming"):
        freed = trim.trim_modules(recipe, root, kver) + trim.trim_rootfs(recipe, root)
        trim.decompress_modules(root, kver)
        rootfs.in_chroot(blog, root, ["depmod", "-a", kver])
        blog.note(f"trim freed {freed / 2**20:.1f} MiB")
    with ui.timed("squashfs"):
        image.make_squashfs(recipe, root, tree / recipe.image.squashfs_path.lstrip("/"), blog)
    name = iso_name()
    tmp_iso = bdir / f".{name}.tmp"
    with ui.timed("ISO"):
        mbr = image.populate_isolinux(recipe, tree, isolinux_tree, syslinux_tree)
        image.make_iso(recipe, tree, mbr, tmp_iso, blog)
    sha = file_digest(tmp_iso)
    manifest = {
        "minisand_version": minisand.__version__, "recipe_hash": digest, "suite": recipe.debian.suite,
        "kernel": kver, "crictl": recipe.crictl.version, "iso": name, "sha256": sha,
        "size": tmp_iso.stat().st_size, "cmdline": recipe.image.cmdline,
        "boot_packages": boot_versions,
        "packages": packages,
    }
    iso = bdir / name
    manifest_path = bdir / manifest_name(name)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    sums = iso.with_name(name + ".sha256")
    sums.write_text(f"{sha}  {name}\n")
    tmp_iso.replace(iso)  # last: its presence (with the two files above) marks a complete build
    return BuildResult(iso=iso, sha256=sha, checksum_file=sums, manifest=manifest_path, recipe_hash=digest,
                       cached=False, seconds=0.0, size=iso.stat().st_size)


def _boot_files(recipe: Recipe, root: Path, tree: Path, work: Path, kver: str, debs: dict[str, Path],
                blog: BuildLog) -> None:
    kernel = tree / recipe.image.kernel_path.lstrip("/")
    kernel.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / "boot" / f"vmlinuz-{kver}", kernel)
    bb_tree = image.extract_deb(debs[recipe.boot_packages["busybox"]], work / "busybox", blog)
    busybox = image.find_one(bb_tree, ["usr/bin/busybox", "bin/busybox"])
    mods = initramfs.build_initramfs(recipe, root, kver, busybox, tree / recipe.image.initrd_path.lstrip("/"))
    blog.note("initramfs modules: " + " ".join(mods))


def _publish(result: BuildResult, output_dir: Path) -> BuildResult:
    output_dir.mkdir(parents=True, exist_ok=True)
    copies = {}
    for src in (result.iso, result.checksum_file, result.manifest):
        dest = output_dir / src.name
        if dest.resolve() != src.resolve():
            tmp = dest.with_name(f".{dest.name}.tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
        copies[src] = dest
    return BuildResult(**{**result.__dict__, "iso": copies[result.iso],
                          "checksum_file": copies[result.checksum_file], "manifest": copies[result.manifest]})


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
