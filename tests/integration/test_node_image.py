"""The node image built for real: the host's containerd (private root, state, socket and /run) imports and
unpacks an OCI archive, mke2fs -d makes the file system; then the file system is mounted and a second containerd
reads the store from it (images complete, snapshots committed), which proves that owners, whiteouts and
extended attributes made the trip. A broken archive leaves no image and nothing in the cache."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minisand.bootstrap import nodeimage, nodeimage_build
from minisand.bootstrap.nodeimage import NodeImageKey
from minisand.paths import Home
from minisand.runner.bundle import parse_sums
from tests.integration.helpers.containerd import short_workdir
from tests.integration.helpers.oci import busybox_oci_tar

pytestmark = [pytest.mark.root]

REF = "registry.k8s.io/pause:3.10.2"


def _named_archive(work: Path) -> Path:
    """The busybox image, named like a preload entry (io.containerd.image.name)."""
    tar = busybox_oci_tar(work)
    layout = work / "named"
    layout.mkdir()
    with tarfile.open(tar) as tf:
        tf.extractall(layout, filter="tar")
    index = json.loads((layout / "index.json").read_text())
    for m in index["manifests"]:
        m.setdefault("annotations", {})["io.containerd.image.name"] = REF
    (layout / "index.json").write_text(json.dumps(index))
    out = work / "preload.tar"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(out), "."], check=True, timeout=120)
    return out


@pytest.fixture()
def inputs(tmp_path: Path) -> tuple[Path, dict[str, Path], NodeImageKey]:
    if nodeimage_build.unavailable():
        pytest.fail(f"this host cannot build node images: {nodeimage_build.unavailable()}")
    tar = _named_archive(tmp_path)
    bins = {}
    for name in ("kubeadm", "kubectl", "kubelet"):
        (tmp_path / name).write_bytes(f"#!/bin/sh\necho {name}\n".encode())
        bins[name] = tmp_path / name
    version = nodeimage_build.host_containerd_version()
    assert version
    key = NodeImageKey("v1.36.4", "registry.k8s.io", "amd64", version, 512, (REF,),
                       tuple(sorted((n, hashlib.sha256(p.read_bytes()).hexdigest()) for n, p in bins.items())))
    return tar, bins, key


@pytest.fixture()
def mounted() -> Iterator[Path]:
    mnt = short_workdir("msd-mnt-")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False, timeout=60)
        shutil.rmtree(mnt, ignore_errors=True)


def test_build_then_read_the_store_from_the_file_system(inputs: tuple[Path, dict[str, Path], NodeImageKey],
                                                         tmp_path: Path, mounted: Path) -> None:
    tar, bins, key = inputs
    home = Home(tmp_path / "home")
    run_before = Path("/run/containerd").exists()
    image = nodeimage_build.ensure(home, key, tar, bins)
    assert image is not None and image == nodeimage_build.lookup(home, key)
    assert image.stat().st_size == 512 << 20 and image.stat().st_blocks * 512 < 256 << 20  # sparse
    assert Path("/run/containerd").exists() == run_before  # the private containerd had its own /run
    assert [p.name for p in image.parent.parent.iterdir()] == [key.name()]  # no build folder left
    with image.open("rb") as f:  # the ext4 superblock (at 1024): magic at 56, volume name at 120
        sb = f.read(2048)[1024:]
    assert sb[56:58] == b"\x53\xef" and sb[120:136].rstrip(b"\0") == b"minisand-data"
    subprocess.run(["mount", "-o", "loop", str(image), str(mounted)], check=True, timeout=60)
    store, bin_dir = nodeimage.tree_paths(mounted, "v1.36.4")
    assert parse_sums((bin_dir / "SHA256SUMS").read_text()) == dict(key.binaries)
    assert (bin_dir / "kubelet").stat().st_mode & 0o755 == 0o755
    work = short_workdir("msd-ni-t-")
    try:
        _check_store(store, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # a second ensure() is a cache hit
    assert nodeimage_build.ensure(home, key, tmp_path / "gone.tar", bins) == image


def _check_store(store: Path, work: Path) -> None:
    ctr = shutil.which("ctr")
    containerd = shutil.which("containerd")
    assert ctr and containerd
    config = work / "config.toml"
    config.write_text(nodeimage.containerd_config(work, store))
    proc = subprocess.Popen(nodeimage.containerd_argv(containerd, config), stdout=subprocess.DEVNULL,
                            stderr=(work / "log").open("wb"))
    try:
        base = [ctr, "--address", str(nodeimage.socket_path(work)), "--namespace", "k8s.io"]
        for _ in range(100):
            if subprocess.run([*base, "version"], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)
        images = subprocess.run([*base, "images", "check"], capture_output=True, text=True, check=True).stdout
        assert REF in images and "complete" in images
        snaps = subprocess.run([*base, "snapshots", "--snapshotter", "overlayfs", "ls"], capture_output=True,
                               text=True, check=True).stdout
        assert "Committed" in snaps
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_broken_archive_gives_no_image_and_leaves_nothing(inputs: tuple[Path, dict[str, Path], NodeImageKey],
                                                           tmp_path: Path) -> None:
    _tar, bins, key = inputs
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not a tar")
    home = Home(tmp_path / "home")
    assert nodeimage_build.ensure(home, key, broken, bins) is None
    assert list(nodeimage_build.cache_root(home).iterdir()) == []
    assert not list(Path("/tmp").glob("msd-ni-*/c.sock"))  # the private containerd was stopped
