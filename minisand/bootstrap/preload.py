"""Preload: a tarball of the control-plane images for one Kubernetes version and one image repository, imported
into containerd before kubeadm runs. It is built from the registry (through the configured mirrors) on first use:
the first node pulls, minisand exports what it pulled into the host cache, later nodes and clusters import it.
Unlike minikube, a mirror does not switch it off: the tarball is keyed by the repository the images came from."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path, PurePosixPath

from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write
from minisand.guestpaths import STATE_DIR
from minisand.paths import Home
from minisand.runner.base import CommandRunner

log = logging.getLogger(__name__)

GUEST_TAR = STATE_DIR / "preload.tar"
CTR = ["ctr", "--namespace", "k8s.io"]


def tarball(home: Home, version: str, repository: str, arch: str) -> Path:
    key = hashlib.sha256(repository.encode()).hexdigest()[:12]
    return home.preload_cache / f"preload-{version}-{key}-containerd-{arch}.tar"


def present_images(runner: CommandRunner) -> set[str]:
    res = runner.run([*CTR, "images", "list", "--quiet"], sudo=True, check=False, timeout=120)
    return set(res.out.split())


def missing(runner: CommandRunner, refs: list[str]) -> list[str]:
    have = present_images(runner)
    return [r for r in refs if r not in have]


def restore(runner: CommandRunner, tar: Path, refs: list[str]) -> int:
    """Imports the cached tarball when the node lacks any of refs; returns the bytes copied (0 = nothing)."""
    if not missing(runner, refs) or not tar.exists():
        return 0
    data = tar.read_bytes()
    want = tar.with_name(tar.name + ".sha256").read_text().split()[0] if tar.with_name(
        tar.name + ".sha256").exists() else ""
    if hashlib.sha256(data).hexdigest() != want:
        log.warning("preload %s fails its checksum: ignored and removed", tar)
        tar.unlink(missing_ok=True)
        return 0
    runner.write_file(GUEST_TAR, data, mode=0o600)
    try:
        runner.run([*CTR, "images", "import", str(GUEST_TAR)], sudo=True, timeout=900)
    finally:
        runner.run(["rm", "-f", "--", str(GUEST_TAR)], sudo=True, check=False, timeout=60)
    return len(data)


def save(runner: CommandRunner, tar: Path, refs: list[str]) -> int:
    """Exports refs from the node into the host cache (once); returns the bytes saved."""
    if tar.exists():
        return 0
    absent = missing(runner, refs)
    if absent:
        log.info("not building a preload: the node lacks %s", absent)
        return 0
    guest = PurePosixPath(str(GUEST_TAR))
    try:
        runner.run([*CTR, "images", "export", "--platform", "linux/amd64", str(guest), *refs], sudo=True, timeout=900)
        data = runner.read_file(guest)
    except MinisandError as exc:
        log.warning("could not build the preload tarball: %s", exc.message)
        return 0
    finally:
        runner.run(["rm", "-f", "--", str(guest)], sudo=True, check=False, timeout=60)
    if not data:
        raise MinisandError("the exported preload is empty", code=ExitCode.KUBERNETES_ERROR)
    atomic_write(tar, data, mode=0o644)
    atomic_write(tar.with_name(tar.name + ".sha256"), (hashlib.sha256(data).hexdigest() + "\n").encode())
    return len(data)
