"""Builds the node image (the recipe is minisand.bootstrap.nodeimage) in the host cache:

    cache/node-images/<version>-<arch>-<disk>m-<key digest>/data.img           ext4, sparse, never rewritten
    cache/node-images/<version>-<arch>-<disk>m-<key digest>/node-image.json    the key and what went in

It needs root and, on the host, containerd 2.x (with ctr), mke2fs and unshare (minisand.hosttools, role
node-image). Without them, or when a build fails, there is no node image and the node imports the preload
archive itself, as before: a node image only ever saves time."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from minisand import hosttools, procs
from minisand.bootstrap import nodeimage as recipe
from minisand.bootstrap.nodeimage import NodeImageKey
from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text
from minisand.guest import NODE_IMAGE_MARKER
from minisand.paths import Home
from minisand.runner.bundle import SUMS_NAME, sums_text

log = logging.getLogger(__name__)

IMAGE_NAME = "data.img"
MANIFEST_NAME = "node-image.json"
NAMESPACE = "k8s.io"  # the CRI's containerd namespace


def cache_root(home: Home) -> Path:
    return home.cache / "node-images"


def image_dir(home: Home, key: NodeImageKey) -> Path:
    return cache_root(home) / key.name()


@functools.cache
def host_containerd_version() -> str | None:
    """The version of the containerd on this host's PATH, or None when there is none."""
    exe = hosttools.locate("containerd")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except OSError:
        return None
    return recipe.containerd_version(out)


def unavailable() -> str | None:
    """Why this host cannot build node images (None: it can)."""
    if os.geteuid() != 0:
        return "building it needs root (containerd unpacks the images)"
    gone = [p for p in ("containerd", "ctr", "mke2fs", "unshare") if hosttools.locate(p) is None]
    if gone:
        return f"missing on this host: {', '.join(gone)}"
    version = host_containerd_version()
    if version is None or not recipe.store_compatible(version):
        return f"the host's containerd ({version or 'unknown version'}) is not 2.x like the guest's"
    return None


def lookup(home: Home, key: NodeImageKey) -> Path | None:
    """The cached image for key, when it is complete (its manifest is written last)."""
    d = image_dir(home, key)
    image, manifest = d / IMAGE_NAME, d / MANIFEST_NAME
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != json.loads(json.dumps(asdict(key))):  # (tuples come back as lists)
        return None
    if not image.is_file() or image.stat().st_size != key.disk_mb << 20:
        return None
    return image


def ensure(home: Home, key: NodeImageKey, preload_tar: Path, binaries: dict[str, Path]) -> Path | None:
    """The node image for key: cached, or built now. None (logged, never fatal) when it cannot be had."""
    found = lookup(home, key)
    if found is not None:
        return found
    reason = unavailable()
    if reason is not None:
        log.info("no node image (%s): the node imports the preload itself", reason)
        return None
    from minisand.download.lock import dest_lock

    d = image_dir(home, key)
    d.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with dest_lock(d, timeout=1800):
        found = lookup(home, key)
        if found is not None:
            return found
        try:
            build(d, key, preload_tar, binaries)
        except MinisandError as exc:
            log.warning("no node image: %s", exc.message)
            return None
    return lookup(home, key)


def build(dest: Path, key: NodeImageKey, preload_tar: Path, binaries: dict[str, Path]) -> None:
    """Builds into a temporary folder beside dest, then renames it to dest."""
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=dest.parent))
    work = Path(tempfile.mkdtemp(prefix="msd-ni-", dir="/tmp"))  # a short path: unix sockets take 107 bytes
    try:
        tree = tmp / "tree"
        store, bin_dir = recipe.tree_paths(tree, key.kubernetes_version)
        _place_binaries(bin_dir, binaries, dict(key.binaries))
        _place_files(tree, key)
        _import(store, work, preload_tar, key.refs)
        image = tmp / IMAGE_NAME
        _run(recipe.mke2fs_argv(tree, image, key.disk_mb), "mke2fs", timeout=600)
        shutil.rmtree(tree)
        manifest = {"key": asdict(key), "built_seconds": round(time.monotonic() - t0, 1),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_text(tmp / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.replace(dest)
        log.info("built node image %s in %.1fs", dest, time.monotonic() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _place_binaries(bin_dir: Path, binaries: dict[str, Path], expected: dict[str, str]) -> None:
    """Copies each binary into the tree, checking its sha256 on the way (the guest then only compares sums)."""
    bin_dir.mkdir(parents=True)
    for name, src in sorted(binaries.items()):
        h = hashlib.sha256()
        with src.open("rb") as fin, (bin_dir / name).open("wb") as fout:
            for chunk in iter(lambda: fin.read(1 << 20), b""):
                h.update(chunk)
                fout.write(chunk)
        if h.hexdigest() != expected.get(name):
            raise MinisandError(f"cached {src} does not match its checksum", code=ExitCode.CHECKSUM_MISMATCH,
                                hint=f"remove {src.parent} and start again")
        (bin_dir / name).chmod(0o755)
    atomic_write_text(bin_dir / SUMS_NAME, sums_text(expected))


def _place_files(tree: Path, key: NodeImageKey) -> None:
    for guest_path, text in [*key.files, (str(NODE_IMAGE_MARKER), recipe.marker(key))]:
        dest = recipe.persisted_path(tree, guest_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        dest.chmod(0o644)


def _import(store: Path, work: Path, tar: Path, refs: tuple[str, ...]) -> None:
    """A private containerd imports and unpacks the archive into store; it is stopped by PID afterwards."""
    containerd, ctr = hosttools.locate("containerd"), hosttools.locate("ctr")
    assert containerd and ctr
    store.mkdir(parents=True)
    config = work / "config.toml"
    config.write_text(recipe.containerd_config(work, store))
    proc = procs.spawn_daemon(recipe.containerd_argv(containerd, config), work / "containerd.log")
    try:
        address = str(recipe.socket_path(work))
        base = [ctr, "--address", address, "--namespace", NAMESPACE]
        deadline = time.monotonic() + 30
        while subprocess.run([*base, "version"], capture_output=True, timeout=10, check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise MinisandError("the host's containerd did not start for the node image: "
                                    + procs.log_tail(work / "containerd.log", 2), code=ExitCode.RUNTIME_ERROR,
                                    hint="see the profile log")
            time.sleep(0.1)
        _run([*base, "images", "import", "--snapshotter", "overlayfs", str(tar)], "ctr images import",
             timeout=1800)
        listed = set(_run([*base, "images", "list", "--quiet"], "ctr images list", timeout=60).split())
        if not set(refs) <= listed:
            raise MinisandError(f"the node image lacks {sorted(set(refs) - listed)}", code=ExitCode.RUNTIME_ERROR,
                                hint="the preload archive does not hold every control-plane image")
    finally:
        procs.kill(proc.pid, "containerd", grace=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _run(argv: list[str], what: str, timeout: float) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MinisandError(f"{what} failed: {exc}", code=ExitCode.RUNTIME_ERROR, hint="see the profile log") from exc
    if res.returncode != 0:
        tail = " | ".join((res.stderr.strip() or res.stdout.strip()).splitlines()[-3:])
        raise MinisandError(f"{what} failed (exit {res.returncode}): {tail}", code=ExitCode.RUNTIME_ERROR,
                            hint="see the profile log")
    return res.stdout
