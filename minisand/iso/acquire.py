"""Which ISO a machine boots, and its kernel and initramfs for direct kernel boot.

acquire_iso(home, url, checksum): with a URL (https://, http://, file://) the ISO is downloaded into
home.iso_cache, verified (sha256 or sha512 from --iso-checksum, else the sha256 in URL + ".sha256", and its
layout) before the atomic rename. Without one: an already downloaded release ISO of this version, else the
release URL and its cn mirror (tried quickly, one after the other), else the ISO built here by `minisand iso
build`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import minisand
from minisand.download.fetch import (
    Checksum,
    FileKind,
    ProgressFactory,
    download,
    fetch_text,
    file_digest,
    parse_checksum_file,
)
from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text
from minisand.iso.isofile import extract_boot_files, validate_iso
from minisand.iso.recipe import build_cache_root, iso_name
from minisand.paths import Home

log = logging.getLogger(__name__)

__all__ = ["acquire_iso", "default_iso_urls", "extract_boot_files", "local_build", "verified"]

RELEASE_URL = "https://github.com/minisand/minisand/releases/download/v{version}/minisand-{version}.iso"
CN_MIRROR_URL = "https://kubernetes.oss-cn-hangzhou.aliyuncs.com/minisand/iso/minisand-{version}.iso"


def default_iso_urls(version: str | None = None) -> list[str]:
    v = version or minisand.__version__
    return [RELEASE_URL.format(version=v), CN_MIRROR_URL.format(version=v)]


def acquire_iso(home: Home, url: str | None, checksum: str | None, *, progress: ProgressFactory | None = None,
                default_urls: Sequence[str] | None = None, build_cache: Path | None = None) -> Path:
    """A verified ISO on disk. default_urls replaces the release URL and its mirror (tests pass loopback
    URLs); build_cache replaces the `minisand iso build` cache root."""
    if url:
        return _from_url(home, url, checksum, progress)
    name = iso_name()
    cached = _cached_download(home, name)
    if cached is not None:
        return cached
    urls = list(default_urls) if default_urls is not None else default_iso_urls()
    released = _from_release(home, urls, checksum, progress)
    if released is not None:
        return released
    built = local_build(build_cache or build_cache_root())
    if built is not None:
        log.info("using the locally built ISO %s", built)
        return built
    raise MinisandError(f"no minisand ISO: {name} could not be downloaded (tried {', '.join(urls)}) and none "
                        "was built on this machine",
                        hint="run `sudo minisand iso build`, or pass --iso-url URL", code=ExitCode.ISO_ERROR)


def cached_name(url_name: str, sha256: str) -> str:
    stem = url_name[:-4] if url_name.endswith(".iso") else url_name
    return f"{stem}-{sha256[:16]}.iso"


def _url_name(url: str) -> str:
    name = Path(unquote(urlparse(url).path)).name
    return name or "minisand.iso"


def _from_url(home: Home, url: str, checksum: str | None, progress: ProgressFactory | None,
              *, retries: int = 3, connect_timeout: float = 10.0) -> Path:
    want = Checksum.parse(checksum) if checksum else _published_checksum(url, connect_timeout)
    dest = home.iso_cache / cached_name(_url_name(url), want.hexdigest)
    _download_verified(url, dest, want, retries=retries, progress=progress, connect_timeout=connect_timeout,
                       checksum_from=None if checksum else url + ".sha256")
    return dest


def _download_verified(urls: str | list[str], dest: Path, want: Checksum, *, retries: int,
                       progress: ProgressFactory | None, connect_timeout: float, checksum_from: str | None) -> None:
    """Downloads and verifies with the algorithm given (sha256 or sha512), then records the file's sha256 next
    to it (what `verified` checks on later starts). checksum_from: where a published checksum came from (for the
    plain-HTTP warning)."""
    digest = {want.algo: want.hexdigest}
    download(urls, dest, retries=retries, progress=progress, validate=validate_iso, connect_timeout=connect_timeout,
             sha256=digest.get("sha256"), sha512=digest.get("sha512"), kind=FileKind.ISO,
             checksum_from=checksum_from)
    _write_sidecar(dest, want.hexdigest if want.algo == "sha256" else file_digest(dest))


def _published_checksum(url: str, timeout: float) -> Checksum:
    try:
        text = fetch_text(url + ".sha256", timeout=timeout)
    except MinisandError as e:
        raise MinisandError(f"no checksum for {url}: {e.message}",
                            hint="pass --iso-checksum sha256:<hex> (or publish URL.sha256 next to the ISO)",
                            code=ExitCode.DOWNLOAD_ERROR) from e
    digest = parse_checksum_file(text, _url_name(url))
    return Checksum.parse(digest)


def _from_release(home: Home, urls: list[str], checksum: str | None,
                  progress: ProgressFactory | None) -> Path | None:
    """The release ISO from the first URL that publishes a checksum; None when none is reachable."""
    for i, candidate in enumerate(urls):
        try:
            want = Checksum.parse(checksum) if checksum else _published_checksum(candidate, 5.0)
        except MinisandError as e:
            log.info("release ISO at %s unavailable: %s", candidate, e.message)
            continue
        dest = home.iso_cache / cached_name(_url_name(candidate), want.hexdigest)
        try:
            _download_verified(urls[i:], dest, want, retries=2, progress=progress, connect_timeout=5.0,
                               checksum_from=None if checksum else candidate + ".sha256")
        except MinisandError as e:
            if e.code == ExitCode.CHECKSUM_MISMATCH:
                raise
            log.info("release ISO download failed: %s", e.message)
            return None
        return dest
    return None


def _cached_download(home: Home, name: str) -> Path | None:
    """A release ISO of this version downloaded earlier (its recorded sha256 still matches)."""
    stem = name.removesuffix(".iso")
    if not home.iso_cache.is_dir():
        return None
    for iso in sorted(home.iso_cache.glob(f"{stem}-*.iso"), key=lambda p: p.stat().st_mtime, reverse=True):
        if verified(iso):
            return iso
    return None


def local_build(root: Path) -> Path | None:
    """The newest complete, intact ISO under the build cache (any recipe hash)."""
    if not root.is_dir():
        return None
    isos = [p for p in root.glob(f"*/{iso_name()}") if p.with_name(p.name + ".sha256").is_file()]
    for iso in sorted(isos, key=lambda p: p.stat().st_mtime, reverse=True):
        if verified(iso):
            return iso
        log.warning("the built ISO %s does not match its .sha256; ignoring it", iso)
    return None


def verified(iso: Path) -> bool:
    """The ISO matches the sha256 recorded next to it."""
    sums = iso.with_name(iso.name + ".sha256")
    try:
        want = sums.read_text().split()[0]
    except (OSError, IndexError):
        return False
    return file_digest(iso) == want


def _write_sidecar(iso: Path, sha: str) -> None:
    atomic_write_text(iso.with_name(iso.name + ".sha256"), f"{sha}  {iso.name}\n")
