"""The sign-in relay of `minisand dashboard`: a loopback TCP relay between the browser and Headlamp (reached
through `kubectl port-forward`) that signs each request in as the dashboard's viewer.

In-cluster Headlamp takes the user's token from the cookie its own sign-in page sets (`headlamp-auth-<cluster>.0`,
read by every API request and by its WebSocket multiplexer). The relay adds that cookie to requests whose browser
has none, so the UI opens signed in and the token never reaches the browser (nor its storage). A browser that
signed in with a token of its own keeps it: its cookie is passed on untouched (Headlamp's page /c/<cluster>/token).

Only the browser's own page gets the token. The Host must be 127.0.0.1:PORT or localhost:PORT (a DNS-rebinding
page cannot borrow it), and a request that another origin sent (its Origin, or Sec-Fetch-Site other than
same-origin/none) is relayed without it. Each request gets its own upstream connection (`Connection: close`), so
only request heads are parsed; a WebSocket upgrade is relayed byte for byte once its head is rewritten."""

from __future__ import annotations

import contextlib
import logging
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
MAX_CONNECTIONS = 64
CHUNK = 64 * 1024
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection"})
SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})


def cookie_name(cluster: str) -> str:
    """Headlamp's auth cookie for a cluster (backend/pkg/auth/cookies.go: SanitizeClusterName, chunk 0)."""
    return f"headlamp-auth-{re.sub(r'[^a-zA-Z0-9_-]', '', cluster)[:50]}.0"


class TokenSource:
    """A token and its expiry from fetch(), fetched again once 80% of its lifetime has passed. Thread-safe."""

    def __init__(self, fetch: Callable[[], tuple[str, float]], clock: Callable[[], float] = time.time,
                 refresh_at: float = 0.8) -> None:
        self._fetch = fetch
        self._clock = clock
        self._refresh_at = refresh_at
        self._lock = threading.Lock()
        self._token = ""
        self._refresh = 0.0

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            if not self._token or now >= self._refresh:
                token, expires = self._fetch()
                self._token = token
                self._refresh = now + max(expires - now, 0.0) * self._refresh_at
                log.info("dashboard: viewer token (re)issued, expires in %.0fs", expires - now)
            return self._token


@dataclass
class Head:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def drop(self, *names: str) -> None:
        lower = {n.lower() for n in names}
        self.headers = [(k, v) for k, v in self.headers if k.lower() not in lower]

    def encode(self) -> bytes:
        lines = [f"{self.method} {self.target} {self.version}", *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(data: bytes) -> Head:
    """An HTTP/1.x request head (without the blank line); ValueError when it is not one."""
    lines = data.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise ValueError(f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise ValueError(f"malformed header line: {line[:80]!r}")
        headers.append((name, value.strip()))
    return Head(parts[0], parts[1], parts[2], headers)


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


def _own_hosts(port: int) -> set[str]:
    return {f"127.0.0.1:{port}", f"localhost:{port}"}


def same_origin(head: Head, port: int) -> bool:
    """Did the browser's page on this relay send it (not a page of another origin)?"""
    origin = head.get("Origin")
    if origin is not None and origin.lower() not in {f"http://{h}" for h in _own_hosts(port)}:
        return False
    site = head.get("Sec-Fetch-Site")
    return site is None or site.lower() in SAME_ORIGIN_FETCH


def is_upgrade(head: Head) -> bool:
    tokens = {t.strip().lower() for v in head.values("Connection") for t in v.split(",")}
    return "upgrade" in tokens and head.get("Upgrade") is not None


def rewrite(head: Head, *, port: int, cluster: str, token: Callable[[], str]) -> Head | Refusal:
    """The head to send upstream, signed in when the browser's own page sent it; or why it is refused."""
    host = (head.get("Host") or "").lower()
    if host not in _own_hosts(port):
        return Refusal(421, f"this relay serves http://127.0.0.1:{port}/ only")
    out = Head(head.method, head.target, head.version, list(head.headers))
    if not is_upgrade(head):
        named = {t.strip().lower() for v in head.values("Connection") for t in v.split(",")}
        out.drop(*HOP_BY_HOP, *named)
        out.headers.append(("Connection", "close"))
    if not same_origin(head, port):
        return out
    name = cookie_name(cluster)
    cookies = head.values("Cookie")
    if any(c.strip().startswith(name.removesuffix(".0") + ".") for v in cookies for c in v.split(";")):
        return out  # the browser signed in with a token of its own
    out.drop("Cookie")
    out.headers.append(("Cookie", "; ".join([*cookies, f"{name}={token()}"])))
    return out


def _response(status: int, text: str) -> bytes:
    body = (text + "\n").encode()
    return (f"HTTP/1.1 {status} minisand\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def _read_head(conn: socket.socket) -> tuple[bytes, bytes] | None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD:
            raise ValueError("request head too large")
        chunk = conn.recv(CHUNK)
        if not chunk:
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def relay(a: socket.socket, b: socket.socket, stop: threading.Event) -> None:
    """Copies bytes both ways until b (upstream) closes, a closes and b has answered, or stop is set."""
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while not stop.is_set() and sel.get_map():
            for key, _ in sel.select(timeout=0.5):
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                dst: socket.socket = key.data
                try:
                    data = src.recv(CHUNK)
                except OSError:
                    data = b""
                if data:
                    dst.sendall(data)
                    continue
                sel.unregister(src)
                if src is b:  # upstream finished: the response (or the WebSocket) is over
                    return
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
    except OSError as exc:
        log.debug("dashboard relay: %s", exc)
    finally:
        sel.close()


class SignInRelay:
    """Listens on 127.0.0.1:port (0: a free one) at once; serve() starts the accept loop in a thread."""

    def __init__(self, port: int, upstream: Callable[[], int], cluster: str, token: Callable[[], str]) -> None:
        self._sock = socket.create_server(("127.0.0.1", port))
        self._sock.settimeout(0.5)
        self.port: int = self._sock.getsockname()[1]
        self._upstream = upstream
        self._cluster = cluster
        self._token = token
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="dashboard-relay", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def serve(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._slots.acquire()
            threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()

    def _track(self, s: socket.socket, add: bool) -> None:
        with self._lock:
            (self._open.add if add else self._open.discard)(s)

    def _serve_one(self, conn: socket.socket) -> None:
        self._track(conn, True)
        upstream: socket.socket | None = None
        try:
            conn.settimeout(HEAD_TIMEOUT)
            got = _read_head(conn)
            if got is None:
                return
            head = rewrite(parse_head(got[0]), port=self.port, cluster=self._cluster, token=self._token)
            if isinstance(head, Refusal):
                conn.sendall(_response(head.status, head.reason))
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream()), timeout=CONNECT_TIMEOUT)
            except OSError as exc:
                conn.sendall(_response(502, f"Headlamp is not reachable through kubectl port-forward: {exc}"))
                return
            self._track(upstream, True)
            upstream.sendall(head.encode() + got[1])
            conn.settimeout(None)
            upstream.settimeout(None)
            relay(conn, upstream, self._stop)
        except ValueError as exc:
            with contextlib.suppress(OSError):
                conn.sendall(_response(400, str(exc)))
        except Exception as exc:  # one broken connection must not end the dashboard
            log.info("dashboard relay: connection failed: %s: %s", type(exc).__name__, exc)
            if upstream is None:  # nothing relayed yet, e.g. the viewer's token could not be issued
                with contextlib.suppress(OSError):
                    conn.sendall(_response(502, f"minisand could not relay this request: {exc}"))
        finally:
            for s in (upstream, conn):
                if s is not None:
                    self._track(s, False)
                    with contextlib.suppress(OSError):
                        s.close()
            self._slots.release()
