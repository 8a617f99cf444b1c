"""kubelet, kubeadm and kubectl: downloaded once per version into the host cache (parallel, checksummed,
resumable, with mirror fallback), then copied into the node once (skipped when the node already has the same
bytes)."""

from __future__ import annotations

import concurrent.futures
import logging
import platform
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from minisand.config.model import MirrorConfig
from minisand.errors import ExitCode, MinisandError
from minisand.guest import BIN_DIR
from minisand.paths import Home
from minisand.runner.base import CommandRunner

if TYPE_CHECKING:
    from minisand.download.progress import ProgressFactory

log = logging.getLogger(__name__)

NODE_BINARIES = ("kubelet", "kubeadm", "kubectl")


def host_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


@dataclass(frozen=True)
class CachedBinary:
    name: str
    path: Path
    sha256: str
    downloaded_bytes: int  # 0 when it came from the cache


def _sources(name: str, version: str, arch: str, mirrors: MirrorConfig) -> list[tuple[str, str]]:
    from minisand.images.sources import binary_sources

    sources = [(s.url, s.checksum_url) for s in binary_sources(name, version, arch, mirrors)]
    if mirrors.offline:
        sources = sources[:1] if mirrors.binary_mirror else []
        if not sources:
            raise MinisandError("--offline needs --binary-mirror for the Kubernetes binaries",
                                hint="pass --binary-mirror URL (laid out like dl.k8s.io)", code=ExitCode.BAD_INPUT)
    return sources


def fetch_one(home: Home, name: str, version: str, arch: str, mirrors: MirrorConfig,
              progress: ProgressFactory | None = None) -> CachedBinary:
    """Tries each source in order (its .sha256, then the file); the first that verifies wins."""
    from minisand.download.fetch import FileKind, Options, Source, fetch_verified, file_digest

    dest = home.binaries_cache(arch, version) / name
    sums = dest.with_name(name + ".sha256")
    if dest.is_file() and sums.is_file():
        digest = sums.read_text().strip()
        if file_digest(dest) == digest:
            return CachedBinary(name, dest, digest, 0)
    sources = [Source(url, checksum_url=sum_url) for url, sum_url in _sources(name, version, arch, mirrors)]
    checksum = fetch_verified(sources, dest, algo="sha256", kind=FileKind.BINARY, what=f"{name} {version}",
                              hint="check --binary-mirror and your network; nothing was kept in the cache",
                              options=Options(progress=progress))
    dest.chmod(0o755)
    sums.write_text(checksum.hexdigest + "\n")
    return CachedBinary(name, dest, checksum.hexdigest, dest.stat().st_size)


def ensure_host_binaries(home: Home, version: str, mirrors: MirrorConfig, arch: str | None = None,
                         names: tuple[str, ...] = NODE_BINARIES) -> dict[str, CachedBinary]:
    """Downloads the missing binaries in parallel (one progress line each)."""
    arch = arch or host_arch()
    from minisand import ui

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = {n: pool.submit(fetch_one, home, n, version, arch, mirrors,
                                  lambda label, total: ui.Progress(label, total)) for n in names}
        results: dict[str, CachedBinary] = {}
        errors: list[MinisandError] = []
        for n, fut in futures.items():
            try:
                results[n] = fut.result()
            except MinisandError as exc:
                errors.append(exc)
    if errors:
        raise errors[0]
    return results


def guest_bin_dir(version: str) -> PurePosixPath:
    return BIN_DIR / version


def install_in_guest(runner: CommandRunner, version: str, binaries: dict[str, CachedBinary],
                     have: dict[str, str] | None = None) -> int:
    """Sends the binaries the node lacks (or has with other checksums) in one transfer, each checked against
    its sha256 on the host first, then the checksum list; returns the bytes sent (0 = nothing to do). have: the
    node's checksum list when it is known already (read with its facts)."""
    from minisand.runner.bundle import SUMS_NAME, BundleFile, install, installed_sums, sums_text

    bin_dir = guest_bin_dir(version)
    if have is None:
        have = installed_sums(runner, bin_dir, sorted(binaries))
    todo = [b for name, b in sorted(binaries.items()) if have.get(name) != b.sha256]
    if not todo:
        return 0
    files = [BundleFile(b.name, 0o755, source=b.path, digest=f"sha256:{b.sha256}") for b in todo]
    sums = sums_text({**have, **{n: b.sha256 for n, b in binaries.items()}})
    files.append(BundleFile(SUMS_NAME, 0o644, data=sums.encode()))
    return install(runner, bin_dir, files, last=SUMS_NAME)
