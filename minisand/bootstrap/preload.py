"""Preload: an OCI archive of the control-plane images for one Kubernetes version and one image repository,
imported into containerd before kubeadm runs, so kubeadm pulls nothing. It is built on the host from the
registry, through the same mirrors the node uses (minisand.bootstrap.registry_fetch), on first use, and cached
by version, repository and architecture. Unlike minikube, a mirror does not switch it off."""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import tempfile
from pathlib import Path

from minisand.bootstrap.registry_fetch import OCI_INDEX, endpoints, forward_translator, pull
from minisand.config.model import MirrorConfig
from minisand.errors import MinisandError
from minisand.fsutil import atomic_write_text
from minisand.guest import STATE_DIR
from minisand.images.ref import parse_image
from minisand.images.registries import registry_hosts
from minisand.paths import Home
from minisand.runner.base import CommandRunner

log = logging.getLogger(__name__)

GUEST_TAR = STATE_DIR / "preload.tar"
CTR = ["ctr", "--namespace", "k8s.io"]


def tarball(home: Home, version: str, repository: str, arch: str) -> Path:
    key = hashlib.sha256(repository.encode()).hexdigest()[:12]
    return home.preload_cache / f"preload-{version}-{key}-containerd-{arch}.tar"


def _sums(tar: Path) -> Path:
    return tar.with_name(tar.name + ".sha256")


def build(tar: Path, refs: list[str], mirrors: MirrorConfig, guest_forwards: tuple[str, ...], arch: str) -> int:
    """Pulls refs on the host into an OCI archive at tar (atomically); returns the bytes downloaded."""
    hosts = registry_hosts(mirrors.registry_mirrors, mirrors.insecure_registries)
    translate = forward_translator(guest_forwards)
    tar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tar.parent, prefix=".preload-") as tmp:
        root = Path(tmp) / "layout"
        blobs = root / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        manifests = []
        for text in refs:
            ref = parse_image(text)
            img = pull(ref, endpoints(ref.registry, hosts, mirrors.offline, translate), blobs, arch)
            (blobs / img.digest.split(":", 1)[1]).write_bytes(img.manifest)
            manifests.append({"mediaType": img.media_type, "digest": img.digest, "size": len(img.manifest),
                              "annotations": {"io.containerd.image.name": str(ref),
                                              "org.opencontainers.image.ref.name": ref.tag or "latest"}})
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                     "manifests": manifests}))
        downloaded = sum(f.stat().st_size for f in blobs.iterdir())
        part = Path(tmp) / "preload.tar"
        with tarfile.open(part, "w") as tf:
            for path in sorted(root.rglob("*")):
                tf.add(path, arcname=str(path.relative_to(root)), recursive=False)
        digest = _file_sha256(part)
        part.replace(tar)
        atomic_write_text(_sums(tar), digest + "\n")
    log.info("built preload %s (%d images, %d bytes downloaded)", tar, len(refs), downloaded)
    return downloaded


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def valid(tar: Path) -> bool:
    return tar.exists() and _sums(tar).exists() and _file_sha256(tar) == _sums(tar).read_text().split()[0]


def present_images(runner: CommandRunner) -> set[str]:
    res = runner.run([*CTR, "images", "list", "--quiet"], sudo=True, check=False, timeout=120)
    return set(res.out.split())


def missing(runner: CommandRunner, refs: list[str]) -> list[str]:
    have = present_images(runner)
    return [r for r in refs if r not in have]


def restore(runner: CommandRunner, tar: Path, lacking: list[str]) -> int:
    """Imports the tarball into a node that lacks the images in lacking; returns the bytes copied (0 = nothing
    to do)."""
    if not lacking:
        return 0
    if not valid(tar):
        log.warning("preload %s is missing or fails its checksum: not used", tar)
        return 0
    data = tar.read_bytes()
    runner.write_file(GUEST_TAR, data, mode=0o600)
    try:
        runner.run([*CTR, "images", "import", str(GUEST_TAR)], sudo=True, timeout=1800)
    finally:
        runner.run(["rm", "-f", "--", str(GUEST_TAR)], sudo=True, check=False, timeout=60)
    return len(data)


def ensure(tar: Path, refs: list[str], mirrors: MirrorConfig, guest_forwards: tuple[str, ...], arch: str) -> int:
    """Builds the tarball when it is not cached; returns the bytes downloaded (0 when cached). A failure to build
    is not fatal: kubeadm then pulls the images through the node's mirrors as usual."""
    if valid(tar):
        return 0
    try:
        return build(tar, refs, mirrors, guest_forwards, arch)
    except MinisandError as exc:
        log.warning("no preload: %s", exc.message)
        return 0
