"""Which redirects a download follows, and which hosts count as local.

The rules: a redirect never changes the scheme (so https never becomes http, and http:// never reaches
file://, ftp:// or anything else); over https it may change origin, because real mirrors hand off to CDNs
(dl.k8s.io answers with a redirect to cdn.dl.k8s.io, GitHub release assets to objects.githubusercontent.com) and
TLS still authenticates the new host; over plain http it must stay on the same origin, because nothing
authenticates a plain-HTTP redirect; at most MAX_REDIRECTS hops and no URL twice."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

from minisand.download.failures import SourceFailed

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}


class RedirectRefused(SourceFailed):
    """A redirect that the policy does not follow: the source fails."""


def is_loopback_host(host: str | None) -> bool:
    name = (host or "").strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plain_http_remote(url: str) -> bool:
    """A plain-HTTP URL whose host is not this machine: anyone on the path can change what it serves."""
    try:
        parts = urlsplit(url)
        return parts.scheme == "http" and not is_loopback_host(parts.hostname)
    except ValueError:
        return False


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(parts.scheme)


def next_hop(current: str, location: str | None, seen: Sequence[str], max_redirects: int = MAX_REDIRECTS) -> str:
    """The URL a redirect from `current` leads to, or RedirectRefused. `seen` holds the URLs requested so far in
    this chain (the first one included)."""
    if not location or not location.strip():
        raise RedirectRefused("redirect without a Location")
    try:
        target = urljoin(current, location.strip()).partition("#")[0]
        old, new = urlsplit(current), urlsplit(target)
    except ValueError as e:
        raise RedirectRefused("redirect to a malformed URL") from e
    if new.scheme != old.scheme:
        if old.scheme == "https" and new.scheme == "http":
            raise RedirectRefused("redirect from https to http refused (a downgrade)")
        raise RedirectRefused(f"redirect to {new.scheme or 'a schemeless URL'}:// refused "
                              "(a redirect never changes the scheme)")
    try:
        host = new.hostname
        new.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise RedirectRefused("redirect to a malformed URL") from e
    if not host:
        raise RedirectRefused("redirect to a URL without a host")
    if new.username is not None or new.password is not None:
        raise RedirectRefused("redirect to a URL with credentials refused")
    if old.scheme == "http" and origin(target) != origin(current):
        raise RedirectRefused(f"cross-origin redirect over plain http to {new.netloc} refused")
    if target in seen:
        raise RedirectRefused("redirect loop")
    if len(seen) > max_redirects:
        raise RedirectRefused(f"more than {max_redirects} redirects")
    return target
