"""Trimming the rootfs: files the live image never needs (iso/trim.txt) and kernel modules outside
iso/modules-keep.txt (plus whatever the kept ones depend on)."""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from minisand.iso.initramfs import decompress_module, module_index
from minisand.iso.recipe import Recipe, read_list


def glob_match(pattern: str, path: str) -> bool:
    """fnmatch per path segment; a `**` segment matches zero or more segments."""
    return _match(pattern.strip("/").split("/"), path.strip("/").split("/"))


def _match(pat: list[str], parts: list[str]) -> bool:
    if not pat:
        return not parts
    if pat[0] == "**":
        return any(_match(pat[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pat[0]) and _match(pat[1:], parts[1:])


def split_patterns(lines: Sequence[str]) -> tuple[list[str], list[str]]:
    remove = [x for x in lines if not x.startswith("!")]
    keep = [x[1:] for x in lines if x.startswith("!")]
    return remove, keep


def trim_paths(root: Path, patterns: Sequence[str]) -> int:
    """Deletes what the patterns match (a matched directory goes whole); returns the bytes freed."""
    remove, keep = split_patterns(patterns)
    freed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in list(dirnames) + filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if any(glob_match(p, rel) for p in keep) or not any(glob_match(p, rel) for p in remove):
                continue
            full = Path(dirpath, name)
            if full.is_dir() and not full.is_symlink():
                freed += _tree_size(full)
                shutil.rmtree(full)
                dirnames.remove(name)
            else:
                freed += full.lstat().st_size
                full.unlink()
    return freed


def _tree_size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())


def modules_to_keep(moddir: Path, patterns: Sequence[str]) -> set[str]:
    """Relative paths (kernel/...) of the modules to keep: pattern matches and all their dependencies."""
    _, deps, _ = module_index(moddir)
    keep = {m for m in deps if any(glob_match(p, m.removeprefix("kernel/")) for p in patterns)}
    todo = list(keep)
    while todo:
        for dep in deps.get(todo.pop(), []):
            if dep not in keep:
                keep.add(dep)
                todo.append(dep)
    return keep


def trim_modules(recipe: Recipe, root: Path, kver: str) -> int:
    """Deletes unkept modules under /usr/lib/modules/<kver>/kernel; returns the bytes freed. The caller
    reruns depmod."""
    moddir = root / "usr/lib/modules" / kver
    keep = modules_to_keep(moddir, read_list(recipe, "modules-keep.txt"))
    freed = 0
    for path in sorted((moddir / "kernel").rglob("*.ko*")):
        rel = path.relative_to(moddir).as_posix()
        if rel not in keep:
            freed += path.stat().st_size
            path.unlink()
    for d in sorted((moddir / "kernel").rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    return freed


def decompress_modules(root: Path, kver: str) -> int:
    """Stores the kept modules uncompressed (foo.ko.xz -> foo.ko): the squashfs compresses them anyway, and
    loading then needs no xz in userspace, which is slow under emulation. The caller reruns depmod."""
    count = 0
    for path in sorted((root / "usr/lib/modules" / kver / "kernel").rglob("*.ko.*")):
        plain = path.with_name(path.name.split(".ko.", 1)[0] + ".ko")
        plain.write_bytes(decompress_module(path))
        plain.chmod(0o644)
        path.unlink()
        count += 1
    return count


def trim_rootfs(recipe: Recipe, root: Path) -> int:
    return trim_paths(root, read_list(recipe, "trim.txt"))
