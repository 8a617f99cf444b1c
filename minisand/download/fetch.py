"""Downloads into a cache: the public API (download, fetch_verified, fetch_text).

A download tries its sources in order. Each source's failure (its checksum file or the file itself: a refused
redirect, a TLS or connection error, a body longer than allowed or cut short, a broken compressed body, a wrong
checksum) is recorded and the next source is tried; only when every source failed does the download fail, with
one line naming each source's failure (failures.py). Transient errors retry the same URL (bounded), resuming the
`.part` file with HTTP Range (transfer.py, ranges.py). The checksum (and an optional validator) is checked BEFORE
the atomic rename. One lock per destination (lock.py), with a timeout.

Nothing is left behind on failure: the `.part` file survives only an interrupt (Ctrl-C), so that the next run
resumes it; if that resumed file then fails its checksum it is downloaded again from byte 0 before the source is
given up. Every error that reaches the caller is a MinisandError and removes it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from minisand.download.checksum import Checksum, file_digest, parse_checksum_file, published_checksum
from minisand.download.failures import Failure, Retryable, SourceFailed, summary
from minisand.download.limits import HARD_LIMITS, FileKind, check_expected
from minisand.download.lock import dest_lock
from minisand.download.progress import ProgressFactory, ProgressSink, default_progress, no_progress
from minisand.download.redirects import plain_http_remote
from minisand.download.transfer import Target, attempt, drop, read_text
from minisand.errors import ExitCode, MinisandError

__all__ = ["Checksum", "FileKind", "Options", "ProgressFactory", "ProgressSink", "Source", "default_progress",
           "download", "fetch_text", "fetch_verified", "file_digest", "no_progress", "parse_checksum_file"]

log = logging.getLogger(__name__)

Validator = Callable[[Path], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """One place to get the file from, with its checksum: known (`checksum`, e.g. from a flag; `checksum_from`
    says where it was read, if from the network) or published next to it (`checksum_url`)."""

    url: str
    checksum: Checksum | None = None
    checksum_url: str | None = None
    checksum_from: str | None = None

    def checksum_origin(self) -> str | None:
        return self.checksum_url or self.checksum_from


@dataclass(frozen=True)
class Options:
    retries: int = 3  # attempts per URL for transient errors
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    backoff: float = 1.0  # seconds, doubled per retry
    lock_timeout: float = 600.0  # waiting for another process downloading the same file
    progress: ProgressFactory | None = None


def download(urls: str | Sequence[str], dest: Path, *, sha256: str | None = None, sha512: str | None = None,
             retries: int = 3, progress: ProgressFactory | None = None, validate: Validator | None = None,
             connect_timeout: float = 10.0, read_timeout: float = 60.0, backoff: float = 1.0,
             kind: FileKind = FileKind.BINARY, expected_size: int | None = None, checksum_from: str | None = None,
             lock_timeout: float = 600.0) -> Path:
    """Fetches the first URL that works into dest, verified against a known checksum; returns dest. A dest
    already present with the right checksum is reused without any network traffic. `validate(part)` may raise
    MinisandError to reject the content after the checksum passed (it runs before the rename too).
    `checksum_from`: the URL the checksum was read from, if any (for the plain-HTTP warning)."""
    if sha256 and sha512:
        raise ValueError("give sha256 or sha512, not both")
    if not (sha256 or sha512):
        raise ValueError("download() needs a checksum: every download is verified")
    checksum = Checksum.parse(f"sha256:{sha256}" if sha256 else f"sha512:{sha512}")
    url_list = [urls] if isinstance(urls, str) else list(urls)
    sources = [Source(u, checksum=checksum, checksum_from=checksum_from) for u in url_list]
    options = Options(retries=retries, connect_timeout=connect_timeout, read_timeout=read_timeout,
                      backoff=backoff, lock_timeout=lock_timeout, progress=progress)
    fetch_verified(sources, dest, algo=checksum.algo, kind=kind, expected_size=expected_size, validate=validate,
                   options=options)
    return dest


def fetch_verified(sources: Sequence[Source], dest: Path, *, algo: str = "sha256",
                   kind: FileKind = FileKind.BINARY, what: str | None = None, hint: str | None = None,
                   expected_size: int | None = None, validate: Validator | None = None,
                   options: Options | None = None) -> Checksum:
    """dest from the first source whose checksum (known, or read from its checksum_url) and file verify;
    returns that checksum. Raises one MinisandError (DOWNLOAD_ERROR, or CHECKSUM_MISMATCH when a source served
    wrong content) naming each source's failure when none does; `what` names the file in it."""
    if not sources:
        raise ValueError("no URL to download from")
    check_expected(kind, expected_size)
    opts = options or Options()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MinisandError(f"cannot create the cache folder {dest.parent}: {e.strerror or e}",
                            hint="check its permissions and free space", code=ExitCode.DOWNLOAD_ERROR) from e
    with dest_lock(dest, opts.lock_timeout, on_wait=lambda holder: _say_waiting(holder, dest)):
        return _fetch_locked(list(sources), dest, algo, kind, what or dest.name, hint, expected_size, validate,
                             opts)


def _fetch_locked(sources: list[Source], dest: Path, algo: str, kind: FileKind, what: str, hint: str | None,
                  expected: int | None, validate: Validator | None, opts: Options) -> Checksum:
    part = dest.with_name(dest.name + ".part")
    target = Target(part, kind, expected, (opts.connect_timeout, opts.read_timeout),
                    opts.progress or default_progress)
    stale = part.exists()  # left by an interrupted run: resumed, but not trusted
    failures: list[Failure] = []
    try:
        for src in sources:
            try:
                checksum = _checksum_for(src, algo, opts)
                if checksum.matches(dest):
                    return checksum
                _fetch_source(src.url, target, checksum, opts, stale)
                if validate is not None:
                    validate(part)
            except SourceFailed as e:
                log.info("download of %s from %s failed: %s", what, src.url, e)
                failures.append(Failure(src.url, str(e), e.code))
                drop(part)
                stale = False
                continue
            part.replace(dest)
            _fsync_dir(dest.parent)
            if failures:
                log.warning("%s came from %s after %d source(s) failed (%s)", what, src.url, len(failures),
                            "; ".join(f"{f.url}: {f.reason}" for f in failures))
            _warn_if_plain_http(src, what)
            return checksum
    except KeyboardInterrupt:
        raise  # keep the .part: the next run resumes it
    except BaseException:
        drop(part)
        raise
    raise summary(what, failures, hint)


def _checksum_for(src: Source, algo: str, opts: Options) -> Checksum:
    if src.checksum is not None:
        if src.checksum.algo != algo:
            raise ValueError(f"source {src.url} has a {src.checksum.algo} checksum, not {algo}")
        return src.checksum
    if src.checksum_url is None:
        raise ValueError(f"source {src.url} has no checksum")
    url = src.checksum_url
    try:
        text = _with_retries(lambda: read_text(url, HARD_LIMITS[FileKind.CHECKSUM], _timeouts(opts)), opts, url)
    except SourceFailed as e:
        raise SourceFailed(f"checksum file: {e}", e.code) from e
    try:
        return published_checksum(text, algo, _file_name(src.url))
    except MinisandError as e:
        raise SourceFailed(f"checksum file: {e.message}", ExitCode.CHECKSUM_MISMATCH) from e


def _fetch_source(url: str, target: Target, checksum: Checksum, opts: Options, stale: bool) -> None:
    _with_retries(lambda: attempt(url, target), opts, url)
    if checksum.matches(target.part):
        return
    if stale:  # the mismatch may come from the interrupted run's bytes: once more from byte 0
        log.info("the resumed %s does not verify; downloading it again from %s", target.part.name, url)
        drop(target.part)
        _with_retries(lambda: attempt(url, target), opts, url)
        if checksum.matches(target.part):
            return
    got = file_digest(target.part, checksum.algo) if target.part.exists() else "nothing"
    size = target.part.stat().st_size if target.part.exists() else 0
    raise SourceFailed(f"{checksum.algo} mismatch (expected {checksum.hexdigest[:16]}..., got {got[:16]}..., "
                       f"{size} bytes)", ExitCode.CHECKSUM_MISMATCH)


def _with_retries(fn: Callable[[], T], opts: Options, url: str) -> T:
    import tenacity

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, opts.retries)),
        wait=tenacity.wait_exponential(multiplier=opts.backoff, max=10 * max(opts.backoff, 0.001)),
        retry=tenacity.retry_if_exception_type(Retryable),
        before_sleep=lambda rs: log.info("retrying %s (attempt %d): %s", url, rs.attempt_number,
                                         rs.outcome.exception() if rs.outcome else ""),
        reraise=True,
    )
    try:
        return retrying(fn)
    except Retryable as e:
        raise SourceFailed(f"{e} (after {max(1, opts.retries)} attempts)") from e


def _timeouts(opts: Options) -> tuple[float, float]:
    return opts.connect_timeout, opts.read_timeout


def _file_name(url: str) -> str | None:
    try:
        return Path(unquote(urlsplit(url).path)).name or None
    except ValueError:
        return None


def _warn_if_plain_http(src: Source, what: str) -> None:
    origin = src.checksum_origin()
    if origin is None or not (plain_http_remote(src.url) and plain_http_remote(origin)):
        return
    from minisand import ui

    ui.warn(f"{what} and its checksum came over plain HTTP from {urlsplit(src.url).netloc}: the checksum only "
            "guards against corruption, not against tampering (use an https:// mirror to be safe)")


def _say_waiting(holder: str, dest: Path) -> None:
    from minisand import ui

    ui.info(f"waiting for {holder}, which is downloading {dest.name}")


def fetch_text(url: str, *, timeout: float = 10.0, max_bytes: int = HARD_LIMITS[FileKind.CHECKSUM]) -> str:
    """A small text file (e.g. `<url>.sha256`) from http(s):// or file://; raises MinisandError (one line)."""
    try:
        return read_text(url, max_bytes, (timeout, timeout))
    except (SourceFailed, Retryable) as e:
        code = e.code if isinstance(e, SourceFailed) else ExitCode.DOWNLOAD_ERROR
        raise MinisandError(f"cannot fetch {url}: {e}", code=code,
                            hint="check the URL and your network") from e


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

