"""The dashboard's sign-in relay (minisand/cluster/signin.py) over real loopback sockets, in front of a stand-in for
Headlamp's server (helpers/fakeheadlamp.py): requests and WebSocket upgrades from the browser's own page arrive
signed in, with their bodies whole; other origins and other hosts do not get the token; a missing upstream is a
502; close() ends open connections. Then the same in a real headless Chromium (e2e/chromium.py, the harness the
dashboard's e2e test uses): the page's fetch and its WebSocket both reach the upstream with the viewer's cookie,
and the browser is gone afterwards. Headlamp itself in Chromium: e2e/test_seed_demo.py."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from e2e.chromium import Chromium
from minisand.cluster.signin import SignInRelay
from tests.integration.helpers.fakeheadlamp import FakeHeadlamp

COOKIE = "headlamp-auth-dev.0=TOKEN"


@pytest.fixture()
def upstream() -> Iterator[FakeHeadlamp]:
    with FakeHeadlamp() as fake:
        yield fake


@pytest.fixture()
def relay(upstream: FakeHeadlamp) -> Iterator[SignInRelay]:
    r = SignInRelay(0, lambda: upstream.port, "dev", lambda: "TOKEN")
    r.serve()
    try:
        yield r
    finally:
        r.close()


def _http() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def _raw(port: int, head: str, read_until: bytes = b"\r\n\r\n") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode())
        buf = b""
        while read_until not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


def test_requests_arrive_signed_in_with_their_bodies(relay: SignInRelay, upstream: FakeHeadlamp) -> None:
    with _http() as http:
        page = http.get(relay.url, timeout=10)
        assert page.status_code == 200 and "<title>Headlamp</title>" in page.text
        body = b"{" + b"x" * (3 << 20) + b"}"
        api = http.post(f"{relay.url}clusters/dev/apis/x", data=body, timeout=30)
    assert api.status_code == 201 and api.json() == {"cookie": COOKIE, "body": len(body)}
    assert [h["connection"] for h in upstream.seen.heads] == ["close", "close"]
    assert all(h["cookie"] == COOKIE for h in upstream.seen.heads)


def test_a_websocket_upgrade_is_relayed_both_ways(relay: SignInRelay, upstream: FakeHeadlamp) -> None:
    head = (f"GET /wsMultiplexer HTTP/1.1\r\nHost: 127.0.0.1:{relay.port}\r\nConnection: Upgrade\r\n"
            f"Upgrade: websocket\r\nOrigin: http://127.0.0.1:{relay.port}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    got = _raw(relay.port, head, read_until=COOKIE.encode())
    assert got.startswith(b"HTTP/1.1 101 ") and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in got
    assert got.endswith(COOKIE.encode())
    assert upstream.seen.heads[0]["connection"] == "Upgrade"


def test_other_origins_and_hosts_do_not_get_the_token(relay: SignInRelay, upstream: FakeHeadlamp) -> None:
    with _http() as http:
        foreign = http.get(f"{relay.url}clusters/dev/version", headers={"Origin": "http://evil.example"}, timeout=10)
        assert foreign.json()["cookie"] == ""
        rebound = http.get(f"{relay.url}clusters/dev/version", headers={"Host": "evil.example"}, timeout=10)
    assert rebound.status_code == 421
    assert len(upstream.seen.heads) == 1  # the rebound request never reached Headlamp


def test_no_upstream_is_a_502_and_garbage_a_400(upstream: FakeHeadlamp) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, not listening: connections are refused
        r = SignInRelay(0, lambda: dead, "dev", lambda: "TOKEN")
        r.serve()
        try:
            with _http() as http:
                assert http.get(r.url, timeout=10).status_code == 502
            assert _raw(r.port, "\x16\x03\x01 not http\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        finally:
            r.close()


def test_close_ends_open_connections(relay: SignInRelay) -> None:
    held = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
    held.sendall(f"GET /wsMultiplexer HTTP/1.1\r\nHost: 127.0.0.1:{relay.port}\r\nConnection: Upgrade\r\n"
                 "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
    assert held.recv(65536).startswith(b"HTTP/1.1 101")
    t0 = time.monotonic()
    relay.close()
    held.settimeout(10)
    rest = b"".join(iter(lambda: held.recv(65536), b""))  # EOF once the relay shut the connection
    held.close()
    assert time.monotonic() - t0 < 8, rest
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", relay.port), timeout=2)


def _chromium_pids(profile: Path) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if str(profile).encode() in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def test_a_real_chromium_is_signed_in_through_the_relay(relay: SignInRelay, upstream: FakeHeadlamp,
                                                         tmp_path: Path) -> None:
    with Chromium() as browser:
        browser.goto(relay.url)
        assert browser.wait_for("document.title", 60) == "Headlamp"
        api = browser.wait_for("(t => t.startsWith('api: h') && t)(document.getElementById('api').textContent)", 60)
        ws = browser.wait_for("(t => t.startsWith('ws: h') && t)(document.getElementById('ws').textContent)", 60)
        shot = browser.screenshot(tmp_path / "relay.png")
        profile = browser.profile
    assert api == f"api: {COOKIE}" and ws == f"ws: {COOKIE}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 1000
    assert _chromium_pids(profile) == [] and not profile.exists()
    heads = {h[":target"]: h for h in upstream.seen.heads}
    assert heads["/wsMultiplexer"]["origin"] == f"http://127.0.0.1:{relay.port}"
    assert heads["/clusters/dev/version"]["sec-fetch-site"] == "same-origin"
