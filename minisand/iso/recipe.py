"""The ISO recipe (iso/ at the top of the source tree, minisand/_data/iso/ when installed), its hash, and the
build cache it keys.

Build cache: `$MINISAND_ISO_CACHE`, else `$XDG_CACHE_HOME/minisand-iso`, else `~/.cache/minisand-iso`:
    <recipe-hash>/minisand-<version>.iso (+ .sha256, .manifest.json, build.log)
    crictl/<version>/crictl
"""

from __future__ import annotations

import functools
import hashlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import minisand
from minisand.errors import ExitCode, MinisandError
from minisand.resources import data_dir

# Bump when the build code changes what it produces from the same recipe files.
BUILD_FORMAT = 1
# The build code whose behaviour is part of the output (hashed with the recipe files).
_BUILD_CODE = ("build.py", "rootfs.py", "trim.py", "initramfs.py", "image.py", "crictl.py", "cpio.py")


@dataclass(frozen=True)
class DebianSpec:
    suite: str
    mirror: str
    variant: str
    debootstrap_script: str


@dataclass(frozen=True)
class CrictlSpec:
    module: str
    package: str
    version: str


@dataclass(frozen=True)
class ImageSpec:
    volume_label: str
    squashfs_compression: str
    squashfs_level: int
    squashfs_block_size: str
    kernel_path: str
    initrd_path: str
    squashfs_path: str
    cmdline: str


@dataclass(frozen=True)
class Recipe:
    root: Path  # the iso/ directory
    debian: DebianSpec
    crictl: CrictlSpec
    image: ImageSpec
    boot_packages: dict[str, str]
    packages: tuple[str, ...]

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)


def recipe_dir() -> Path:
    return data_dir("iso")


def _read_list(path: Path) -> tuple[str, ...]:
    items = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            items.append(line)
    return tuple(items)


@functools.cache
def load_recipe(root: Path | None = None) -> Recipe:
    root = root or recipe_dir()
    try:
        raw = tomllib.loads((root / "recipe.toml").read_text())
        return Recipe(root=root, debian=DebianSpec(**raw["debian"]), crictl=CrictlSpec(**raw["crictl"]),
                      image=ImageSpec(**raw["image"]), boot_packages=dict(raw["boot_packages"]),
                      packages=_read_list(root / "packages.txt"))
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as e:
        raise MinisandError(f"the ISO recipe in {root} is unreadable: {e}", hint="reinstall minisand",
                            code=ExitCode.ISO_ERROR) from e


def read_list(recipe: Recipe, name: str) -> tuple[str, ...]:
    """A one-item-per-line list file of the recipe (comments with #)."""
    return _read_list(recipe.path(name))


def recipe_hash(recipe: Recipe | None = None) -> str:
    """sha256 over every file under iso/ but its docs (path, exec bit, content), the build code and
    BUILD_FORMAT."""
    recipe = recipe or load_recipe()
    h = hashlib.sha256(f"minisand-iso-format-{BUILD_FORMAT}\n".encode())
    files = sorted(p for p in recipe.root.rglob("*")
                   if p.is_file() and p.suffix != ".md" and "__pycache__" not in p.parts)
    for p in files:
        rel = p.relative_to(recipe.root).as_posix()
        h.update(f"{rel}\0{int(bool(p.stat().st_mode & 0o111))}\0{p.stat().st_size}\0".encode())
        h.update(p.read_bytes())
    here = Path(__file__).resolve().parent
    for name in _BUILD_CODE:
        src = here / name
        if src.is_file():
            h.update(f"code/{name}\0".encode())
            h.update(src.read_bytes())
    return h.hexdigest()[:16]


def build_cache_root() -> Path:
    env = os.environ.get("MINISAND_ISO_CACHE")
    if env:
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "minisand-iso").absolute()


def iso_name(version: str | None = None) -> str:
    return f"minisand-{version or minisand.__version__}.iso"


def build_dir(digest: str | None = None) -> Path:
    return build_cache_root() / (digest or recipe_hash())
