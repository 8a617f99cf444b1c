"""Packing a rootfs into an OCI image layout with umoci, and reading the layout's manifest digest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from e2e.lab.cache import LabCache, build_step, recipe_hash
from e2e.lab.errors import LabError
from e2e.lab.rootfs import Recipe

LAYOUT = "oci"
SOURCE_LABEL = "org.opencontainers.image.source"


def umoci(*args: str) -> None:
    proc = subprocess.run(["umoci", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"umoci {args[0]} failed: {proc.stderr.strip()[-400:]}", "check the rootfs recipe")


def config_args(recipe: Recipe) -> list[str]:
    cfg = recipe.config
    args = ["--os", "linux", "--architecture", "amd64", "--author", "minisand lab", "--created",
            "2026-01-01T00:00:00Z", "--history.created", "2026-01-01T00:00:00Z",
            "--history.created_by", f"minisand lab recipe {recipe.name}"]
    args += [a for e in cfg.entrypoint for a in ("--config.entrypoint", e)]
    args += [a for c in cfg.cmd for a in ("--config.cmd", c)]
    args += [a for e in cfg.env for a in ("--config.env", e)]
    args += [a for p in cfg.exposed_ports for a in ("--config.exposedports", p)]
    labels = (*cfg.labels, (SOURCE_LABEL, "minisand e2e lab"))
    args += [a for k, v in labels for a in ("--config.label", f"{k}={v}")]
    if cfg.workingdir:
        args += ["--config.workingdir", cfg.workingdir]
    if cfg.stop_signal:
        args += ["--config.stopsignal", cfg.stop_signal]
    if cfg.user:
        args += ["--config.user", cfg.user]
    args += [a for v in cfg.volumes for a in ("--config.volume", v)]
    return args


def pack(recipe: Recipe, dest: Path) -> None:
    """Build recipe's rootfs under dest/bundle and pack it as the single layer of dest/oci:<tag>."""
    layout = dest / LAYOUT
    bundle = dest / "bundle"
    image = f"{layout}:{recipe.tag}"
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", image)
    umoci("unpack", "--image", image, str(bundle))
    recipe.fill(bundle / "rootfs")
    umoci("repack", "--image", image, str(bundle))
    umoci("config", "--image", image, *config_args(recipe))
    umoci("gc", "--layout", str(layout))
    shutil.rmtree(bundle)


def image_key(recipe: Recipe) -> str:
    return f"{recipe.tag}-{recipe_hash(recipe.name, recipe.inputs, config_args(recipe))}"


def build_image(cache: LabCache, recipe: Recipe) -> Path:
    """The cached OCI layout (dir) of recipe; built when missing."""
    dest = cache.artifact(f"images/{recipe.name}", image_key(recipe))
    build_step(cache, f"image {recipe.name}:{recipe.tag}", dest, lambda tmp: pack(recipe, tmp))
    return dest / LAYOUT


def manifest_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for m in index.get("manifests", []):
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return str(m["digest"])
    raise LabError(f"{layout} has no tag {tag}", "rebuild the image (delete its cache directory)")
