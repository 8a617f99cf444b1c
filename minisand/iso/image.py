"""Packing: the rootfs into a zstd squashfs, and the ISO tree (isolinux, kernel, initramfs, squashfs) into a
hybrid ISO (bootable as a CD-ROM and as a disk) with xorriso."""

from __future__ import annotations

import shutil
from pathlib import Path

import jinja2

from minisand.errors import ExitCode, MinisandError
from minisand.iso.recipe import Recipe
from minisand.iso.tools import BuildLog


def make_squashfs(recipe: Recipe, root: Path, out: Path, blog: BuildLog) -> None:
    img = recipe.image
    out.parent.mkdir(parents=True, exist_ok=True)
    blog.run(["mksquashfs", str(root), str(out), "-noappend", "-no-progress", "-comp", img.squashfs_compression,
              "-Xcompression-level", str(img.squashfs_level), "-b", img.squashfs_block_size,
              "-no-exports"], timeout=3600)


def extract_deb(deb: Path, dest: Path, blog: BuildLog) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    blog.run(["dpkg-deb", "-x", str(deb), str(dest)])
    return dest


def find_one(tree: Path, relative_candidates: list[str]) -> Path:
    for rel in relative_candidates:
        if (tree / rel).is_file():
            return tree / rel
    raise MinisandError(f"{relative_candidates[0]} is missing from the boot packages",
                        hint="the suite's isolinux/syslinux/busybox packages changed layout; fix image.py",
                        code=ExitCode.ISO_ERROR)


def render_isolinux_cfg(recipe: Recipe) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(recipe.path("isolinux"))),
                             undefined=jinja2.StrictUndefined, autoescape=False,  # noqa: S701 - not HTML
                             keep_trailing_newline=True)
    img = recipe.image
    return env.get_template("isolinux.cfg.j2").render(kernel_path=img.kernel_path, initrd_path=img.initrd_path,
                                                      cmdline=img.cmdline)


def populate_isolinux(recipe: Recipe, tree: Path, isolinux_dir: Path, syslinux_dir: Path) -> Path:
    """Copies isolinux.bin and ldlinux.c32 into tree/isolinux and writes isolinux.cfg; returns the
    isohybrid MBR to use."""
    dest = tree / "isolinux"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(find_one(isolinux_dir, ["usr/lib/ISOLINUX/isolinux.bin"]), dest / "isolinux.bin")
    shutil.copyfile(find_one(syslinux_dir, ["usr/lib/syslinux/modules/bios/ldlinux.c32"]), dest / "ldlinux.c32")
    (dest / "isolinux.cfg").write_text(render_isolinux_cfg(recipe))
    return find_one(isolinux_dir, ["usr/lib/ISOLINUX/isohdpfx.bin"])


def make_iso(recipe: Recipe, tree: Path, mbr: Path, out: Path, blog: BuildLog) -> None:
    blog.run(["xorriso", "-as", "mkisofs", "-o", str(out), "-V", recipe.image.volume_label,
              "-R", "-J", "-joliet-long", "-isohybrid-mbr", str(mbr),
              "-c", "isolinux/boot.cat", "-b", "isolinux/isolinux.bin",
              "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", str(tree)], timeout=1800)
