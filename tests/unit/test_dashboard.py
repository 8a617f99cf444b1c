"""`minisand dashboard` without a cluster: its one-line refusals (no profile, a stopped cluster, a bad --port) that
leave MINISAND_HOME as it was, the sign-in relay's request rewriting (who gets the viewer's token and who does
not), token renewal, kubectl's port line, and when a browser is opened. The relay over real sockets is
tests/integration/test_dashboard_relay.py; the whole dashboard in Chromium is e2e/test_seed_demo.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from minisand.cluster import dashboard
from minisand.cluster.portforward import forwarded_port
from minisand.cluster.signin import Head, Refusal, TokenSource, cookie_name, parse_head, rewrite
from minisand.config.model import ClusterConfig
from minisand.config.store import ProfileStore
from minisand.errors import ExitCode
from minisand.paths import Home
from tests.unit.clihelp import assert_unchanged, one_line_error, run_cli, snapshot

PORT = 40123


def test_no_profile_is_one_line_with_its_exit_code(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["dashboard", "--url"], capsys)
    assert code == ExitCode.PROFILE_NOT_FOUND and out == ""
    assert "does not exist" in one_line_error(err)
    assert not home.exists() or not (home / "profiles").exists()


def test_a_stopped_cluster_is_refused_and_nothing_changes(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ProfileStore(Home(home)).save(ClusterConfig(name="minisand", driver="qemu"))
    before = snapshot(home)
    code, out, err = run_cli(["dashboard", "--url"], capsys)
    assert code == ExitCode.MACHINE_NOT_RUNNING and out == ""
    line = one_line_error(err)
    assert "is not running" in line and "minisand start" in line
    assert_unchanged(home, before)


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http"])
def test_a_bad_port_is_refused(home: Path, capsys: pytest.CaptureFixture[str], port: str) -> None:
    code, _out, err = run_cli(["dashboard", "--port", port], capsys)
    assert code in (ExitCode.BAD_INPUT, ExitCode.USAGE)
    one_line_error(err)


def _head(*headers: tuple[str, str], method: str = "GET", target: str = "/") -> Head:
    return Head(method, target, "HTTP/1.1", list(headers))


def _sign(head: Head, cluster: str = "seed-demo") -> Head | Refusal:
    return rewrite(head, port=PORT, cluster=cluster, token=lambda: "TOKEN")


def test_the_browsers_own_page_is_signed_in_and_each_request_closes() -> None:
    out = _sign(_head(("Host", f"127.0.0.1:{PORT}"), ("Connection", "keep-alive"), ("Keep-Alive", "5"),
                      ("Sec-Fetch-Site", "same-origin"), ("Cookie", "theme=dark")))
    assert isinstance(out, Head)
    assert out.values("Cookie") == ["theme=dark; headlamp-auth-seed-demo.0=TOKEN"]
    assert out.values("Connection") == ["close"] and out.get("Keep-Alive") is None


def test_a_websocket_upgrade_keeps_its_connection_headers() -> None:
    out = _sign(_head(("Host", f"localhost:{PORT}"), ("Connection", "Upgrade"), ("Upgrade", "websocket"),
                      ("Origin", f"http://localhost:{PORT}"), ("Sec-WebSocket-Key", "k"), target="/wsMultiplexer"))
    assert isinstance(out, Head)
    assert out.values("Connection") == ["Upgrade"] and out.get("Upgrade") == "websocket"
    assert out.values("Cookie") == ["headlamp-auth-seed-demo.0=TOKEN"]


@pytest.mark.parametrize("headers", [
    (("Origin", "http://evil.example"),),
    (("Origin", "http://127.0.0.1:9999"),),  # another local service: same site, not the same origin
    (("Sec-Fetch-Site", "cross-site"),),
    (("Sec-Fetch-Site", "same-site"),),
])
def test_requests_from_other_origins_are_relayed_without_the_token(headers: tuple[tuple[str, str], ...]) -> None:
    out = _sign(_head(("Host", f"127.0.0.1:{PORT}"), *headers))
    assert isinstance(out, Head) and out.get("Cookie") is None


@pytest.mark.parametrize("host", ["evil.example:40123", "127.0.0.1:1", "", "127.0.0.1"])
def test_a_foreign_host_is_refused(host: str) -> None:  # DNS rebinding
    out = _sign(_head(("Host", host)) if host else _head())
    assert isinstance(out, Refusal) and out.status == 421


def test_a_browser_signed_in_with_its_own_token_keeps_it() -> None:
    out = _sign(_head(("Host", f"127.0.0.1:{PORT}"), ("Cookie", "headlamp-auth-seed-demo.0=MINE; x=1")))
    assert isinstance(out, Head) and out.values("Cookie") == ["headlamp-auth-seed-demo.0=MINE; x=1"]


def test_cookie_names_follow_headlamps_sanitising() -> None:
    assert cookie_name("seed-demo") == "headlamp-auth-seed-demo.0"
    assert cookie_name("a.b/c d") == "headlamp-auth-abcd.0"
    assert cookie_name("x" * 60) == f"headlamp-auth-{'x' * 50}.0"


def test_heads_parse_and_encode_back() -> None:
    raw = b"GET /c/x/pods?a=1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\nAccept: */*"
    head = parse_head(raw)
    assert (head.method, head.target, head.get("host")) == ("GET", "/c/x/pods?a=1", "127.0.0.1:1")
    assert head.encode() == raw + b"\r\n\r\n"


@pytest.mark.parametrize("raw", [b"", b"GET /", b"\x16\x03\x01 hello", b"GET / HTTP/2\r\nHost: x",
                                 b"GET / HTTP/1.1\r\nno colon", b"GET / HTTP/1.1\r\nBad Name: x"])
def test_malformed_heads_are_rejected(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_head(raw)


def test_tokens_are_renewed_after_most_of_their_lifetime() -> None:
    now = [1000.0]
    issued: list[float] = []

    def fetch() -> tuple[str, float]:
        issued.append(now[0])
        return f"t{len(issued)}", now[0] + 3600

    source = TokenSource(fetch, clock=lambda: now[0])
    assert source.token() == "t1"
    now[0] += 2000
    assert source.token() == "t1"
    now[0] += 900  # 2900s of 3600: past 80%
    assert source.token() == "t2"
    assert issued == [1000.0, 3900.0]


def test_kubectls_forwarding_line_gives_the_port() -> None:
    assert forwarded_port("Forwarding from 127.0.0.1:41537 -> 4466") == 41537
    assert forwarded_port("Forwarding from [::1]:41537 -> 4466") is None
    assert forwarded_port("Handling connection for 41537") is None


@pytest.mark.parametrize(("env", "platform", "display"), [
    ({}, "linux", False), ({"DISPLAY": ":0"}, "linux", True), ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
    ({"BROWSER": "firefox"}, "linux", True), ({}, "darwin", True), ({"DISPLAY": ""}, "linux", False)])
def test_a_browser_is_opened_only_where_there_is_a_display(env: dict[str, str], platform: str,
                                                           display: bool) -> None:
    assert dashboard.has_display(env, platform) is display


def test_url_mode_and_no_display_print_the_url_on_stdout() -> None:
    printed: list[str] = []
    dashboard.show("http://127.0.0.1:1/", True, printed.append, env={"DISPLAY": ":0"}, platform="linux")
    dashboard.show("http://127.0.0.1:2/", False, printed.append, env={}, platform="linux")
    assert printed == ["http://127.0.0.1:1/", "http://127.0.0.1:2/"]
