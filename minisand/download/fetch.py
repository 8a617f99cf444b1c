"""Downloads into a cache: one lock per cache directory, a `.part` file resumed with HTTP Range, a checksum
(and an optional validator) checked BEFORE the atomic rename, bounded retries per URL and fallback over a list
of mirrors. Accepts http://, https:// and file:// URLs.

Nothing is left behind on failure: the `.part` file survives only an interrupt (Ctrl-C), so that the next run
resumes it; every error that reaches the caller is a MinisandError and removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol
from urllib.parse import unquote, urlparse

from minisand.errors import ExitCode, MinisandError

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # file reads and hashing
NET_CHUNK = 1 << 16  # network reads: a dropped connection loses at most this much


class ProgressSink(Protocol):
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


ProgressFactory = Callable[[str, "int | None"], ProgressSink]


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def no_progress(label: str, total: int | None) -> ProgressSink:
    return _NoProgress()


def default_progress(label: str, total: int | None) -> ProgressSink:
    from minisand.ui import Progress

    return Progress(label, total)


@dataclass(frozen=True)
class Checksum:
    algo: str  # "sha256" | "sha512"
    hexdigest: str

    @classmethod
    def parse(cls, text: str) -> Checksum:
        """`sha256:HEX`, `sha512:HEX`, or a bare hex digest (its length tells the algorithm)."""
        algo, _, digest = text.strip().rpartition(":")
        digest = digest.lower()
        if not algo:
            algo = {64: "sha256", 128: "sha512"}.get(len(digest), "")
        want = {"sha256": 64, "sha512": 128}.get(algo.lower())
        if want is None or len(digest) != want or any(c not in "0123456789abcdef" for c in digest):
            raise MinisandError(f"{text!r} is not a checksum", hint="use sha256:<64 hex digits>",
                                code=ExitCode.BAD_INPUT)
        return cls(algo.lower(), digest)

    def new(self) -> hashlib._Hash:
        return hashlib.new(self.algo)


def parse_checksum_file(text: str, filename: str | None = None) -> str:
    """The digest from a sha256sum/sha512sum-format file (`HEX  name` lines, or a bare `HEX`)."""
    candidates: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        name = parts[1].lstrip("*") if len(parts) > 1 else None
        if filename is None or name is None or Path(name).name == filename:
            candidates.append(parts[0])
    if not candidates:
        raise MinisandError(f"no checksum for {filename or 'the file'} in the checksum file",
                            hint="pass the checksum explicitly", code=ExitCode.CHECKSUM_MISMATCH)
    return candidates[0]


class _Retryable(Exception):
    """A transient failure: the same URL is tried again (resuming the .part file)."""


class _NextMirror(Exception):
    """This URL cannot serve the file (4xx, unreachable after retries): try the next one."""

    def __init__(self, message: str, code: ExitCode = ExitCode.DOWNLOAD_ERROR) -> None:
        super().__init__(message)
        self.code = code


def download(urls: str | Sequence[str], dest: Path, *, sha256: str | None = None, sha512: str | None = None,
             retries: int = 3, progress: ProgressFactory | None = None,
             validate: Callable[[Path], None] | None = None, connect_timeout: float = 10.0,
             read_timeout: float = 60.0, backoff: float = 1.0) -> Path:
    """Fetches the first URL that works into dest; returns dest. A dest already present with the right
    checksum is reused without any network traffic. `validate(part)` may raise MinisandError to reject
    the content after the checksum passed (it runs before the rename too)."""
    if sha256 and sha512:
        raise ValueError("give sha256 or sha512, not both")
    if not (sha256 or sha512):
        raise ValueError("download() needs a checksum: every download is verified")
    checksum = Checksum.parse(f"sha256:{sha256}" if sha256 else f"sha512:{sha512}")
    url_list = [urls] if isinstance(urls, str) else list(urls)
    if not url_list:
        raise ValueError("no URL to download from")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _dir_lock(dest.parent):
        if dest.is_file() and file_digest(dest, checksum.algo) == checksum.hexdigest:
            return dest
        part = dest.with_name(dest.name + ".part")
        try:
            _fetch_any(url_list, part, checksum, retries=retries, progress=progress or default_progress,
                       validate=validate, timeouts=(connect_timeout, read_timeout), backoff=backoff)
        except KeyboardInterrupt:
            raise  # keep the .part: the next run resumes it
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise
        part.replace(dest)
        _fsync_dir(dest.parent)
    return dest


def _fetch_any(urls: list[str], part: Path, checksum: Checksum, *, retries: int, progress: ProgressFactory,
               validate: Callable[[Path], None] | None, timeouts: tuple[float, float], backoff: float) -> None:
    failures: list[str] = []
    worst = ExitCode.DOWNLOAD_ERROR
    for url in urls:
        try:
            _fetch_with_retries(url, part, retries=retries, progress=progress, timeouts=timeouts,
                                backoff=backoff)
            _verify(part, checksum, url)
            if validate is not None:
                validate(part)
            return
        except _NextMirror as e:
            log.warning("download from %s failed: %s", url, e)
            failures.append(f"{url}: {e}")
            if e.code == ExitCode.CHECKSUM_MISMATCH:
                worst = e.code
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
    hint = "check the URL and your network; the cache holds nothing from this attempt"
    if worst == ExitCode.CHECKSUM_MISMATCH:
        hint = "the file is corrupt or the checksum is wrong; nothing was kept in the cache"
    raise MinisandError(f"could not download {part.name.removesuffix('.part')}: " + "; ".join(failures),
                        hint=hint, code=worst)


def _verify(part: Path, checksum: Checksum, url: str) -> None:
    got = file_digest(part, checksum.algo)
    if got != checksum.hexdigest:
        raise _NextMirror(f"{checksum.algo} mismatch (expected {checksum.hexdigest}, got {got}, "
                          f"{part.stat().st_size} bytes)", ExitCode.CHECKSUM_MISMATCH)


def _fetch_with_retries(url: str, part: Path, *, retries: int, progress: ProgressFactory,
                        timeouts: tuple[float, float], backoff: float) -> None:
    import tenacity

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, retries)),
        wait=tenacity.wait_exponential(multiplier=backoff, max=10 * max(backoff, 0.001)),
        retry=tenacity.retry_if_exception_type(_Retryable),
        before_sleep=lambda rs: log.info("retrying %s (attempt %d): %s", url, rs.attempt_number,
                                         rs.outcome.exception() if rs.outcome else ""),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                _fetch_once(url, part, progress, timeouts)
    except _Retryable as e:
        raise _NextMirror(f"{e} (after {retries} attempts)") from e


def _fetch_once(url: str, part: Path, progress: ProgressFactory, timeouts: tuple[float, float]) -> None:
    scheme = urlparse(url).scheme
    if scheme == "file":
        _copy_file(url, part, progress)
    elif scheme in ("http", "https"):
        _fetch_http(url, part, progress, timeouts)
    else:
        raise _NextMirror(f"unsupported URL scheme {scheme!r} (use https://, http:// or file://)")


def _copy_file(url: str, part: Path, progress: ProgressFactory) -> None:
    src = Path(unquote(urlparse(url).path))
    try:
        size = src.stat().st_size
        with src.open("rb") as fin, part.open("wb") as fout:
            _pump(fin, fout, progress(src.name, size))
    except OSError as e:
        raise _NextMirror(f"cannot read {src}: {e.strerror or e}") from e


def _fetch_http(url: str, part: Path, progress: ProgressFactory, timeouts: tuple[float, float]) -> None:
    import requests

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeouts, allow_redirects=True) as resp:
            if resp.status_code == 416 and have:
                return  # the .part already holds everything: the checksum decides
            _check_status(resp)
            append = have > 0 and resp.status_code == 206
            total = _total_size(resp, have if append else 0)
            sink = progress(Path(urlparse(url).path).name or url, total)
            with part.open("ab" if append else "wb") as fout:
                for chunk in _iter_body(resp):
                    fout.write(chunk)
                    sink.update(len(chunk))
            sink.close()
    except requests.exceptions.SSLError as e:
        raise _NextMirror(f"TLS verification failed: {e}") from e
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError) as e:
        if _unresolvable(e):
            raise _NextMirror(f"cannot resolve the host: {e}") from e
        if _refused(e):  # nothing listens there: retrying the same URL will not help
            raise _NextMirror("connection refused") from e
        raise _Retryable(f"network error: {e.__class__.__name__}") from e
    size = part.stat().st_size if part.exists() else 0
    if total is not None and size < total:
        raise _Retryable(f"connection closed early ({size} of {total} bytes)")


def _check_status(resp: requests.Response) -> None:
    if resp.status_code in (200, 206):
        return
    if resp.status_code >= 500 or resp.status_code == 429:
        raise _Retryable(f"HTTP {resp.status_code}")
    raise _NextMirror(f"HTTP {resp.status_code}")


def _total_size(resp: requests.Response, offset: int) -> int | None:
    length = resp.headers.get("Content-Length")
    if length is None or resp.headers.get("Content-Encoding"):
        return None
    try:
        return offset + int(length)
    except ValueError:
        return None


def _iter_body(resp: requests.Response) -> Iterator[bytes]:
    for chunk in resp.iter_content(chunk_size=NET_CHUNK):
        if chunk:
            yield chunk


def _unresolvable(e: Exception) -> bool:
    text = str(e)
    return "NameResolutionError" in text or "Name or service not known" in text or \
        "Temporary failure in name resolution" in text or "nodename nor servname" in text


def _refused(e: Exception) -> bool:
    text = str(e)
    return "Connection refused" in text or "ECONNREFUSED" in text


def _pump(fin: BinaryIO, fout: BinaryIO, sink: ProgressSink) -> None:
    while chunk := fin.read(CHUNK):
        fout.write(chunk)
        sink.update(len(chunk))
    sink.close()


def file_digest(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fetch_text(url: str, *, timeout: float = 10.0, max_bytes: int = 1 << 16) -> str:
    """A small text file (e.g. `<url>.sha256`) from http(s):// or file://; raises MinisandError."""
    scheme = urlparse(url).scheme
    if scheme == "file":
        try:
            return Path(unquote(urlparse(url).path)).read_bytes()[:max_bytes].decode()
        except (OSError, UnicodeDecodeError) as e:
            raise MinisandError(f"cannot read {url}: {e}", code=ExitCode.DOWNLOAD_ERROR) from e
    if scheme not in ("http", "https"):
        raise MinisandError(f"unsupported URL scheme in {url}", hint="use https://, http:// or file://",
                            code=ExitCode.BAD_INPUT)
    import requests

    try:
        with requests.get(url, timeout=(timeout, timeout), stream=True) as resp:
            if resp.status_code != 200:
                raise MinisandError(f"{url} answered HTTP {resp.status_code}", code=ExitCode.DOWNLOAD_ERROR)
            body = resp.raw.read(max_bytes, decode_content=True)
    except requests.exceptions.RequestException as e:
        raise MinisandError(f"cannot fetch {url}: {e.__class__.__name__}", code=ExitCode.DOWNLOAD_ERROR) from e
    try:
        return bytes(body).decode()
    except UnicodeDecodeError as e:
        raise MinisandError(f"{url} is not text", code=ExitCode.DOWNLOAD_ERROR) from e


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on the cache directory itself: concurrent minisand runs queue; no lock file."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
