"""A stand-in for Headlamp's server on 127.0.0.1 (the real one needs a cluster: e2e/test_seed_demo.py), speaking
enough HTTP/1.1 and WebSocket to test the dashboard's sign-in relay with a real browser: it records each request
head it gets, serves a page whose script calls the API and opens the multiplexer's WebSocket, and answers each
with the Cookie header it received."""

from __future__ import annotations

import base64
import hashlib
import json
import socketserver
import threading
from dataclasses import dataclass, field

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

PAGE = """<!doctype html><html><head><title>Headlamp</title></head><body>
<h1>fake Headlamp</h1><p id="api">api: waiting</p><p id="ws">ws: waiting</p>
<script>
fetch('/clusters/dev/version', {method: 'POST', body: 'x'.repeat(300000)})
  .then(r => r.json()).then(j => { document.getElementById('api').textContent = 'api: ' + j.cookie; });
const ws = new WebSocket('ws://' + location.host + '/wsMultiplexer');
ws.onmessage = e => { document.getElementById('ws').textContent = 'ws: ' + e.data; };
</script></body></html>"""


@dataclass
class Seen:
    heads: list[dict[str, str]] = field(default_factory=list)
    bodies: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, head: dict[str, str], body: int) -> None:
        with self.lock:
            self.heads.append(head)
            self.bodies.append(body)


def _frame(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, len(data)]) + data


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline().decode("latin-1").strip()
        if not line:
            return
        method, target, _ = line.split(" ", 2)
        head: dict[str, str] = {":method": method, ":target": target}
        while (h := self.rfile.readline().decode("latin-1").strip()):
            name, _, value = h.partition(":")
            head[name.strip().lower()] = value.strip()
        length = int(head.get("content-length", "0"))
        body = self.rfile.read(length) if length else b""
        self.server.seen.add(head, len(body))
        cookie = head.get("cookie", "")
        if head.get("upgrade", "").lower() == "websocket":
            accept = base64.b64encode(hashlib.sha1((head["sec-websocket-key"] + WS_GUID).encode()).digest()).decode()
            self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            self.wfile.write(_frame(cookie[:120] or "no cookie"))
            self.wfile.flush()
            self.rfile.read(1)  # hold the WebSocket open until the client goes
            return
        if target == "/":
            payload, ctype = PAGE.encode(), "text/html"
        else:
            payload, ctype = json.dumps({"cookie": cookie, "body": len(body)}).encode(), "application/json"
        self.wfile.write((f"HTTP/1.1 {201 if method == 'POST' else 200} OK\r\nContent-Type: {ctype}\r\n"
                          f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    seen: Seen


class FakeHeadlamp:
    def __init__(self) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.seen = Seen()
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def seen(self) -> Seen:
        return self.server.seen

    def __enter__(self) -> FakeHeadlamp:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
