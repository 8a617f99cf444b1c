"""A scriptable HTTP(S) server on 127.0.0.1 for download tests: the fake internet (the network boundary), served
from a thread that the test starts and stops. Each path answers with a behaviour (a file with Range support, a
redirect, an endless body, a lying Content-Length, a broken gzip body, a 206 from offset 0, ...); paths without one
are served from `files`, with one-shot `faults` ("503", "cut"). Every request is recorded.

It also works as a plain-HTTP proxy: a request for `http://mirror.example/x` sent through it (HTTP_PROXY) is
answered from the route `/x` and recorded with its host, so that tests can use a non-loopback URL while all traffic
stays on 127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

ENDLESS_BOUND = 64 << 20  # an "endless" body stops here (loops are bounded) or when the client hangs up


@dataclass(frozen=True)
class Seen:
    path: str
    range: str | None
    host: str  # the host the client asked for (Host header, or the absolute URL's host through the proxy)


Behaviour = Callable[["Handler"], None]


class Handler(http.server.BaseHTTPRequestHandler):
    owner: LoopbackServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(ssl.SSLError, ConnectionResetError, BrokenPipeError):
            super().handle()  # a client that refuses our certificate, or hangs up, ends the request

    def do_GET(self) -> None:
        target = urlsplit(self.path)
        path = target.path if target.scheme else self.path
        host = target.netloc if target.scheme else self.headers.get("Host", "")
        self.owner.record(Seen(path, self.headers.get("Range"), host))
        behaviour = self.owner.routes.get(path) or self.owner.from_files(path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            behaviour(self)  # the client may hang up: what a download that cuts a body off does

    def send_body(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                  length: int | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def requested_offset(self) -> int | None:
        rng = self.headers.get("Range")
        if not rng or not rng.startswith("bytes="):
            return None
        return int(rng[6:].split("-")[0])


# ------------------------------------------------------------------------------------------- behaviours


def serve(data: bytes) -> Behaviour:
    """The file, honouring `Range: bytes=N-` (206, or 416 past the end)."""

    def answer(h: Handler) -> None:
        start = h.requested_offset()
        if start is None:
            h.send_body(200, data)
        elif start >= len(data):
            h.send_body(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        else:
            h.send_body(206, data[start:], {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})

    return answer


def status(code: int) -> Behaviour:
    return lambda h: h.send_body(code, f"HTTP {code}\n".encode())


def redirect(location: str, code: int = 302) -> Behaviour:
    return lambda h: h.send_body(code, b"", {"Location": location})


def endless(owner: LoopbackServer, chunk: bytes = b"x" * 65536) -> Behaviour:
    """200 without Content-Length, then bytes until the client hangs up (or ENDLESS_BOUND, or the server stops);
    owner.sent[path] counts what was written."""

    def answer(h: Handler) -> None:
        h.send_response(200)
        h.end_headers()
        path = urlsplit(h.path).path
        sent = 0
        try:
            while sent < ENDLESS_BOUND and not owner.stopping.is_set():
                h.wfile.write(chunk)
                sent += len(chunk)
        finally:
            owner.sent[path] = sent

    return answer


def announce(data: bytes, length: int) -> Behaviour:
    """200 whatever the Range, Content-Length `length`, then `data` and hang up."""

    def answer(h: Handler) -> None:
        h.send_body(200, data, length=length)
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)

    return answer


def broken_gzip(data: bytes) -> Behaviour:
    """Content-Encoding: gzip with a body whose deflate stream is corrupt after the first bytes."""
    packed = bytearray(gzip.compress(data))
    for i in range(20, min(len(packed) - 8, 4000)):
        packed[i] ^= 0x5A
    return lambda h: h.send_body(200, bytes(packed), {"Content-Encoding": "gzip"})


def range_from_zero(data: bytes) -> Behaviour:
    """A Range request answered with 206 and the whole file (`Content-Range: bytes 0-N/N+1`)."""

    def answer(h: Handler) -> None:
        if h.requested_offset() is None:
            h.send_body(200, data)
        else:
            h.send_body(206, data, {"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"})

    return answer


def cut(data: bytes, after: int) -> Behaviour:
    """Promise the rest of the file, send `after` bytes of it, hang up."""

    def answer(h: Handler) -> None:
        start = h.requested_offset() or 0
        part = data[start:]
        headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
        h.send_response(206 if start else 200)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(part)))
        h.end_headers()
        h.wfile.write(part[:after])
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)

    return answer


def sequence(*behaviours: Behaviour) -> Behaviour:
    """Successive requests get successive behaviours; the last one repeats."""
    queue = list(behaviours)
    lock = threading.Lock()

    def answer(h: Handler) -> None:
        with lock:
            behaviour = queue.pop(0) if len(queue) > 1 else queue[0]
        behaviour(h)

    return answer


# ------------------------------------------------------------------------------------------------ server


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        if self.tls is not None:  # the handshake happens in the handler's thread, on its first read
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class LoopbackServer:
    """`with LoopbackServer() as srv:` serves on 127.0.0.1 until the block ends (then shut down and joined)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Behaviour] = {}
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}  # path -> one-shot actions ("503", "cut") for `files`
        self.seen: list[Seen] = []
        self.sent: dict[str, int] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        handler = type("BoundHandler", (Handler,), {"owner": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.tls = tls
        self.scheme = "https" if tls else "http"
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def requests(self) -> list[tuple[str, str | None]]:
        return [(s.path, s.range) for s in self.seen]

    def hits(self, path: str) -> int:
        return sum(1 for s in self.seen if s.path == path)

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def from_files(self, path: str) -> Behaviour:
        with self._lock:
            faults = self.faults.get(path, [])
            action = faults.pop(0) if faults else "ok"
        body = self.files.get(path)
        if action == "503":
            return status(503)
        if body is None:
            return status(404)
        if action == "cut":
            return cut(body, len(body) // 2)
        return serve(body)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def closed_port_url(path: str = "/x") -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


# -------------------------------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def make_certs(folder: Path) -> tuple[Path, CertFiles, CertFiles]:
    """A test CA (its PEM to trust), a server certificate it signed for 127.0.0.1/localhost, and a self-signed
    certificate for the same names that nothing trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def build(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey,
              ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                              content_commitment=False, key_encipherment=False,
                                              data_encipherment=False, key_agreement=False, encipher_only=False,
                                              decipher_only=False), critical=True)
        else:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                critical=False)
        return b.sign(signer, hashes.SHA256())

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> CertFiles:
        files = CertFiles(folder / f"{stem}.crt", folder / f"{stem}.key")
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        return files

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, srv_key, self_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_cert = build("minisand test CA", "minisand test CA", ca_key, ca_key, ca=True)
    ca = write("ca", ca_cert, ca_key)
    trusted = write("trusted", build("127.0.0.1", "minisand test CA", srv_key, ca_key, ca=False), srv_key)
    untrusted = write("self-signed", build("127.0.0.1", "127.0.0.1", self_key, self_key, ca=False), self_key)
    return ca.cert, trusted, untrusted
