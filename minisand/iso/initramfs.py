"""The busybox-static initramfs: iso/initramfs/init, busybox from the suite's busybox-static package, and the
kernel modules of iso/initramfs/modules.txt (with their dependencies, decompressed) in load order."""

from __future__ import annotations

import gzip
import lzma
import subprocess
from collections.abc import Iterable
from pathlib import Path

from minisand.errors import ExitCode, MinisandError
from minisand.iso.cpio import CpioArchive
from minisand.iso.recipe import Recipe, read_list


def module_index(moddir: Path) -> tuple[dict[str, str], dict[str, list[str]], set[str]]:
    """From modules.dep: name -> relative path, relative path -> direct dependencies, built-in names."""
    paths: dict[str, str] = {}
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        paths[module_name(mod)] = mod
        deps[mod] = rest.split()
    builtin: set[str] = set()
    builtin_file = moddir / "modules.builtin"
    if builtin_file.is_file():
        builtin = {module_name(x) for x in builtin_file.read_text().split()}
    return paths, deps, builtin


def module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.split(".ko", 1)[0].replace("-", "_")


def load_order(names: Iterable[str], paths: dict[str, str], deps: dict[str, list[str]],
               builtin: set[str]) -> list[str]:
    """Relative module paths, every dependency before its user (depth-first)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(path: str) -> None:
        if path in seen:
            return
        seen.add(path)
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in names:
        key = name.replace("-", "_")
        if key in builtin:
            continue
        if key not in paths:
            raise MinisandError(f"kernel module {name} (iso/initramfs/modules.txt) is not in this kernel",
                                hint="fix the recipe's module list", code=ExitCode.ISO_ERROR)
        visit(paths[key])
    return order


def decompress_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data


def build_initramfs(recipe: Recipe, rootfs: Path, kver: str, busybox: Path, out: Path) -> list[str]:
    """Writes the gzip-compressed cpio to out; returns the module names it loads."""
    moddir = rootfs / "usr/lib/modules" / kver
    paths, deps, builtin = module_index(moddir)
    order = load_order(read_list(recipe, "initramfs/modules.txt"), paths, deps, builtin)
    cpio = CpioArchive()
    for d in ("bin", "dev", "proc", "sys", "run", "newroot", "lib", "lib/modules", "tmp"):
        cpio.directory(d)
    cpio.char_device("dev/console", 5, 1)
    cpio.char_device("dev/null", 1, 3, mode=0o666)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("init", recipe.path("initramfs", "init").read_bytes(), 0o755)
    flat = []
    for rel in order:
        name = module_name(rel) + ".ko"
        cpio.file(f"lib/modules/{name}", decompress_module(moddir / rel), 0o644)
        flat.append(name)
    cpio.file("lib/modules/load-order", ("\n".join(flat) + "\n").encode())
    out.write_bytes(gzip.compress(cpio.finish(), compresslevel=9, mtime=0))
    return [n.removesuffix(".ko") for n in flat]
