"""One attempt to bring a URL's bytes into the `.part` file (HTTP(S) with Range resume, or a file:// copy), and
small text files (checksums). Every byte is counted against the size cap (limits.py); a server's answer to a Range
request is interpreted by ranges.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from minisand.download.checksum import CHUNK
from minisand.download.failures import Retryable, SourceFailed
from minisand.download.httpget import (
    Timeouts,
    body_chunks,
    check_status,
    classify,
    content_encoding,
    header_int,
    new_session,
    open_following,
    transport_errors,
)
from minisand.download.limits import FileKind, cap, human, over_cap
from minisand.download.progress import ProgressFactory
from minisand.download.ranges import Resume, parse_content_range, resume_plan, unsatisfied_total
from minisand.errors import ExitCode, MinisandError

if TYPE_CHECKING:
    import requests


@dataclass(frozen=True)
class Target:
    """Where one download goes and what it may be."""

    part: Path
    kind: FileKind
    expected: int | None
    timeouts: Timeouts
    progress: ProgressFactory


def attempt(url: str, t: Target) -> None:
    """One try at url: SourceFailed (next mirror), Retryable (same URL again), or the .part holds a candidate
    for the checksum."""
    scheme = _scheme(url)
    if scheme == "file":
        _copy_local(url, t)
    elif scheme in ("http", "https"):
        _fetch_http(url, t)
    else:
        raise SourceFailed(f"unsupported URL scheme {scheme or 'none'}:// (use https://, http:// or file://)")


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme
    except ValueError as e:
        raise SourceFailed("invalid URL") from e


def drop(part: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        part.unlink()


def _fetch_http(url: str, t: Target) -> None:
    have = _usable_part(t)
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with new_session() as session, open_following(session, url, headers, t.timeouts) as resp:
            if resp.status_code == 416 and have:
                _unsatisfiable(resp, t, have)
                return
            check_status(resp)
            _receive(resp, url, t, have)
    except transport_errors() as e:
        raise classify(e) from e


def _usable_part(t: Target) -> int:
    """The size of a .part worth resuming; a .part longer than the file can be is removed."""
    try:
        have = t.part.stat().st_size
    except FileNotFoundError:
        return 0
    if have > cap(t.kind, t.expected):
        drop(t.part)
        return 0
    return have


def _unsatisfiable(resp: requests.Response, t: Target, have: int) -> None:
    """416 to `bytes=have-`: complete when the server's size is `have` (the checksum decides), else stale."""
    if unsatisfied_total(resp.headers.get("Content-Range")) == have:
        return
    drop(t.part)
    raise Retryable("HTTP 416 for a stale .part")


def _receive(resp: requests.Response, url: str, t: Target, have: int) -> None:
    encoded = content_encoding(resp) not in ("", "identity")
    plan = resume_plan(have, resp.status_code, resp.headers.get("Content-Range"))
    if plan is Resume.INVALID or (encoded and resp.status_code == 206):
        drop(t.part)
        raise Retryable("HTTP 206 that does not continue the .part")
    offset = have if plan is Resume.APPEND else 0
    announced = _announced(resp, encoded)
    limit = cap(t.kind, t.expected, announced)
    sink = t.progress(Path(urlsplit(url).path).name or url, announced)
    if offset:
        sink.update(offset)
    written = offset
    try:
        with _writer(t.part, append=offset > 0) as out:
            for chunk in body_chunks(resp):
                written += len(chunk)
                if written > limit:
                    raise over_cap(written, limit)
                out.write(chunk)
                sink.update(len(chunk))
    except BaseException:
        if encoded:
            drop(t.part)  # a decoded prefix cannot be resumed with a Range on the encoded body
        raise
    finally:
        sink.close()
    want = announced if announced is not None else t.expected
    if want is not None and written < want:
        if encoded:
            drop(t.part)
        raise Retryable(f"connection closed early ({written} of {want} bytes)")


def _announced(resp: requests.Response, encoded: bool) -> int | None:
    """The full size of the file as the server states it."""
    if resp.status_code == 206:
        rng = parse_content_range(resp.headers.get("Content-Range"))
        return rng.total if rng else None
    return None if encoded else header_int(resp, "Content-Length")


class _Out:
    """The .part file; a failed write is the local disk's fault, not the source's: it ends the download."""

    def __init__(self, f: IO[bytes], path: Path) -> None:
        self.f = f
        self.path = path

    def write(self, data: bytes) -> None:
        try:
            self.f.write(data)
        except OSError as e:
            raise _local_error(self.path, e) from e


@contextlib.contextmanager
def _writer(path: Path, *, append: bool) -> Iterator[_Out]:
    try:
        f = path.open("ab" if append else "wb")
    except OSError as e:
        raise _local_error(path, e) from e
    try:
        yield _Out(f, path)
    finally:
        try:
            f.close()
        except OSError as e:
            raise _local_error(path, e) from e


def _local_error(path: Path, e: OSError) -> MinisandError:
    return MinisandError(f"cannot write {path}: {e.strerror or e}", code=ExitCode.DOWNLOAD_ERROR,
                         hint=f"free space in {path.parent} or fix its permissions")


def _copy_local(url: str, t: Target) -> None:
    src = Path(unquote(urlsplit(url).path))
    try:
        fin = src.open("rb")
        size = src.stat().st_size
    except OSError as e:
        raise SourceFailed(f"cannot read {src}: {e.strerror or e}") from e
    with fin:
        limit = cap(t.kind, t.expected, size)
        sink = t.progress(src.name, size)
        written = 0
        with _writer(t.part, append=False) as out:
            while chunk := _read(fin, src):
                written += len(chunk)
                if written > limit:
                    raise over_cap(written, limit)
                out.write(chunk)
                sink.update(len(chunk))
        sink.close()


def _read(fin: IO[bytes], src: Path) -> bytes:
    try:
        return fin.read(CHUNK)
    except OSError as e:
        raise SourceFailed(f"cannot read {src}: {e.strerror or e}") from e


def read_text(url: str, limit: int, timeouts: Timeouts) -> str:
    """A small text file (a checksum) from http(s):// or file://, at most `limit` bytes."""
    scheme = _scheme(url)
    if scheme == "file":
        src = Path(unquote(urlsplit(url).path))
        try:
            with src.open("rb") as f:
                data = f.read(limit + 1)
        except OSError as e:
            raise SourceFailed(f"cannot read {src}: {e.strerror or e}") from e
    elif scheme in ("http", "https"):
        data = _get_small(url, limit, timeouts)
    else:
        raise SourceFailed(f"unsupported URL scheme {scheme or 'none'}:// (use https://, http:// or file://)")
    if len(data) > limit:
        raise SourceFailed(f"longer than {human(limit)}, too big for a checksum file")
    try:
        return data.decode()
    except UnicodeDecodeError as e:
        raise SourceFailed("not text") from e


def _get_small(url: str, limit: int, timeouts: Timeouts) -> bytes:
    data = bytearray()
    try:
        with new_session() as session, open_following(session, url, {}, timeouts) as resp:
            check_status(resp)
            if resp.status_code != 200:
                raise SourceFailed(f"HTTP {resp.status_code} to a request without Range")
            for chunk in body_chunks(resp):
                data += chunk
                if len(data) > limit:
                    break
    except transport_errors() as e:
        raise classify(e) from e
    return bytes(data)
