"""HTTP requests for downloads: a fresh session per attempt, redirects followed by the policy in redirects.py,
status codes and transport errors turned into SourceFailed (next mirror) or Retryable (same URL again)."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import minisand
from minisand.download.failures import Retryable, SourceFailed
from minisand.download.redirects import REDIRECT_CODES, next_hop

if TYPE_CHECKING:
    import requests

NET_CHUNK = 1 << 16  # network reads: a dropped connection loses at most this much
Timeouts = tuple[float, float]


def new_session() -> requests.Session:
    """No connection reuse across attempts (a body longer than announced must not leak into the next answer);
    identity encoding asked for, so Range offsets mean bytes of the file."""
    import requests

    session = requests.Session()
    session.headers["Accept-Encoding"] = "identity"
    session.headers["User-Agent"] = f"minisand/{minisand.__version__}"
    return session


def open_following(session: requests.Session, url: str, headers: Mapping[str, str],
                   timeouts: Timeouts) -> requests.Response:
    """The first non-redirect answer for url (streaming, unread); RedirectRefused for a redirect that the policy
    does not follow."""
    seen = [url]
    current = url
    while True:
        resp = session.get(current, headers=dict(headers), stream=True, timeout=timeouts, allow_redirects=False)
        if resp.status_code not in REDIRECT_CODES:
            return resp
        location = resp.headers.get("Location")
        resp.close()
        current = next_hop(current, location, seen)
        seen.append(current)


def check_status(resp: requests.Response) -> None:
    if resp.status_code in (200, 206):
        return
    if resp.status_code >= 500 or resp.status_code in (408, 429):
        raise Retryable(f"HTTP {resp.status_code}")
    raise SourceFailed(f"HTTP {resp.status_code}")


def content_encoding(resp: requests.Response) -> str:
    return resp.headers.get("Content-Encoding", "").strip().lower()


def header_int(resp: requests.Response, name: str) -> int | None:
    value = resp.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def body_chunks(resp: requests.Response) -> Iterator[bytes]:
    """The body, decoded when the server applied a Content-Encoding anyway (gzip, deflate)."""
    for chunk in resp.iter_content(chunk_size=NET_CHUNK):
        if chunk:
            yield chunk


def transport_errors() -> tuple[type[BaseException], ...]:
    """Every exception a request or a body read can raise because of what the server or the network did."""
    import requests
    import urllib3

    return (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, UnicodeError)


def classify(e: BaseException) -> SourceFailed | Retryable:
    """A transport error as a compact source failure (next mirror) or a retryable one (same URL again)."""
    import requests

    if isinstance(e, requests.exceptions.SSLError):
        return SourceFailed(f"TLS error: {tls_reason(e)}")
    if isinstance(e, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                  | requests.exceptions.InvalidSchema | UnicodeError):
        return SourceFailed("invalid URL")
    if isinstance(e, requests.exceptions.ContentDecodingError):
        return SourceFailed("broken compressed body (Content-Encoding)")
    if isinstance(e, requests.exceptions.ConnectionError) and not isinstance(e, requests.exceptions.Timeout):
        text = str(e)
        if any(s in text for s in ("NameResolutionError", "Name or service not known", "nodename nor servname",
                                   "Temporary failure in name resolution")):
            return SourceFailed("cannot resolve the host")
        if "Connection refused" in text or "ECONNREFUSED" in text:
            return SourceFailed("connection refused")  # nothing listens there: retrying will not help
    if isinstance(e, requests.exceptions.ConnectionError | requests.exceptions.Timeout
                  | requests.exceptions.ChunkedEncodingError):
        return Retryable(f"network error: {e.__class__.__name__}")
    return SourceFailed(f"bad answer ({e.__class__.__name__})")


_TLS_REASONS = (re.compile(r"certificate verify failed: ([^(')\"]+)"), re.compile(r"\[SSL: [A-Z0-9_]+\] ([^(')\"]+)"),
                re.compile(r"(hostname '[^']+' doesn't match[^(')\"]*)"))


def tls_reason(e: BaseException) -> str:
    text = str(e)
    for pattern in _TLS_REASONS:
        m = pattern.search(text)
        if m:
            return m.group(1).strip().rstrip(".")
    return "handshake failed"
