"""kubelet, kubeadm and kubectl: downloaded once per version into the host cache (parallel, checksummed,
resumable, with mirror fallback), then copied into the node once (skipped when the node already has the same
bytes)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import platform
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from minisand.config.model import MirrorConfig
from minisand.errors import ExitCode, MinisandError
from minisand.guestpaths import BIN_DIR
from minisand.paths import Home
from minisand.runner.base import CommandRunner

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


def _expected_sha(checksum_url: str) -> str:
    from minisand.download.fetch import fetch_text

    text = fetch_text(checksum_url).strip()
    digest = text.split()[0].lower() if text else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise MinisandError(f"{checksum_url} is not a sha256 checksum", code=ExitCode.CHECKSUM_MISMATCH,
                            hint="the mirror serves a broken .sha256 file")
    return digest


def fetch_one(home: Home, name: str, version: str, arch: str, mirrors: MirrorConfig,
              progress: object = None) -> CachedBinary:
    """Tries each source in order (its .sha256, then the file); the first that verifies wins."""
    from minisand.download.fetch import download, file_digest

    dest = home.binaries_cache(arch, version) / name
    sums = dest.with_name(name + ".sha256")
    if dest.is_file() and sums.is_file():
        digest = sums.read_text().strip()
        if file_digest(dest) == digest:
            return CachedBinary(name, dest, digest, 0)
    failures: list[str] = []
    worst = ExitCode.DOWNLOAD_ERROR
    for url, sum_url in _sources(name, version, arch, mirrors):
        try:
            digest = _expected_sha(sum_url)
            download([url], dest, sha256=digest, progress=progress)  # type: ignore[arg-type]
        except MinisandError as exc:
            log.warning("%s from %s: %s", name, url, exc.message)
            failures.append(exc.message)
            if exc.code == ExitCode.CHECKSUM_MISMATCH:
                worst = exc.code
            continue
        dest.chmod(0o755)
        sums.write_text(digest + "\n")
        return CachedBinary(name, dest, digest, dest.stat().st_size)
    raise MinisandError(f"could not get {name} {version}: " + " | ".join(failures),
                        hint="check --binary-mirror and your network; nothing was kept in the cache", code=worst)


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


def install_in_guest(runner: CommandRunner, version: str, binaries: dict[str, CachedBinary]) -> int:
    """Copies each binary unless the node has it with the same sha256; returns the bytes copied."""
    bin_dir = guest_bin_dir(version)
    paths = [str(bin_dir / n) for n in binaries]
    res = runner.run(["sha256sum", "--", *paths], sudo=True, check=False, timeout=120)
    have = {}
    for line in res.out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            have[PurePosixPath(parts[1]).name] = parts[0]
    copied = 0
    for name, b in binaries.items():
        if have.get(name) == b.sha256:
            continue
        data = b.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != b.sha256:
            raise MinisandError(f"cached {b.path} does not match its checksum", code=ExitCode.CHECKSUM_MISMATCH,
                                hint=f"remove {b.path.parent} and start again")
        runner.write_file(bin_dir / name, data, mode=0o755)
        copied += len(data)
    return copied
