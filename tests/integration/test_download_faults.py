"""Download faults against real loopback HTTP(S) servers (tests/loopback_http.py; all traffic stays on 127.0.0.1):
each broken mirror comes first, a good one after it. Every fault must make minisand move on to the next mirror and
the result verify; when every mirror is broken the error is one line with the documented exit code and nothing
is left in the cache. Driven through the APIs that the Kubernetes binaries, gVisor and the ISO use
(download/fetch_verified, bootstrap.binaries.fetch_one, iso.acquire.acquire_iso). Servers are stopped after each
test; the one process started here (a lock holder) is stopped by its PID."""

from __future__ import annotations

import hashlib
import random
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minisand.bootstrap.binaries import fetch_one
from minisand.config.model import MirrorConfig
from minisand.download.fetch import FileKind, Options, Source, download, fetch_verified
from minisand.download.lock import lock_path
from minisand.errors import ExitCode, MinisandError
from minisand.iso.acquire import acquire_iso
from minisand.iso.recipe import iso_name
from minisand.paths import Home
from tests.loopback_http import (
    LoopbackServer,
    announce,
    broken_gzip,
    closed_port_url,
    cut,
    endless,
    make_certs,
    range_from_zero,
    redirect,
    sequence,
    serve,
    status,
)

pytestmark = pytest.mark.timeout(120)

PAYLOAD = random.Random(11).randbytes(300_000)  # "an expected 300 KB file"
SHA = hashlib.sha256(PAYLOAD).hexdigest()
F = "/f.bin"


@pytest.fixture()
def servers() -> Iterator[Callable[..., LoopbackServer]]:
    """Starts loopback servers on demand; all of them are stopped when the test ends."""
    started: list[LoopbackServer] = []

    def start(tls: ssl.SSLContext | None = None) -> LoopbackServer:
        srv = LoopbackServer(tls)
        started.append(srv.start())
        return srv

    try:
        yield start
    finally:
        for srv in started:
            srv.stop()


@pytest.fixture()
def good(servers: Callable[..., LoopbackServer]) -> LoopbackServer:
    srv = servers()
    srv.routes[F] = serve(PAYLOAD)
    return srv


@dataclass(frozen=True)
class Certs:
    trusted: ssl.SSLContext  # signed by the test CA that requests trusts
    untrusted: ssl.SSLContext  # self-signed


@pytest.fixture()
def certs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Certs:
    """A test CA trusted by requests (REQUESTS_CA_BUNDLE), and contexts for a trusted and an untrusted server."""
    ca, trusted, untrusted = make_certs(tmp_path / "pki")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    return Certs(trusted.server_context(), untrusted.server_context())


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "home"
    monkeypatch.setenv("MINISAND_HOME", str(root))
    monkeypatch.delenv("MINISAND_PROFILE", raising=False)
    return root


def cache_of(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def fetch(urls: list[str], tmp_path: Path, **kw: object) -> Path:
    return download(urls, cache_of(tmp_path) / "f.bin", sha256=SHA, backoff=0, progress=None, **kw)  # type: ignore[arg-type]


def assert_next_mirror_used(bad: LoopbackServer, good: LoopbackServer, tmp_path: Path) -> None:
    assert bad.seen, "the broken mirror was never asked"
    assert good.hits(F) >= 1, "the next mirror was not used"
    assert (cache_of(tmp_path) / "f.bin").read_bytes() == PAYLOAD
    assert listing(cache_of(tmp_path)) == ["f.bin"]  # no .part, no lock file


def failure(urls: list[str], tmp_path: Path, **kw: object) -> MinisandError:
    with pytest.raises(MinisandError) as e:
        fetch(urls, tmp_path, **kw)
    line = e.value.one_line()
    assert "\n" not in line and "Traceback" not in line and len(line) < 2000
    assert listing(cache_of(tmp_path)) == [], "a failed download left something in the cache"
    return e.value


# ------------------------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("scheme", ["file", "ftp", "https"])
def test_redirect_to_another_scheme_moves_on(scheme: str, servers: Callable[..., LoopbackServer],
                                             good: LoopbackServer, tmp_path: Path, certs: Certs) -> None:
    target = {"file": (tmp_path / "payload").as_uri(), "ftp": "ftp://127.0.0.1/f.bin"}
    (tmp_path / "payload").write_bytes(PAYLOAD)  # the right bytes: following the redirect would have "worked"
    if scheme == "https":
        tls = servers(certs.trusted)
        tls.routes[F] = serve(PAYLOAD)
        target["https"] = tls.url(F)
    bad = servers()
    bad.routes[F] = redirect(target[scheme])
    fetch([bad.url(F), good.url(F)], tmp_path)
    assert_next_mirror_used(bad, good, tmp_path)
    if scheme == "https":
        assert not tls.seen, "an http:// redirect to https:// was followed"


def test_redirect_loop_and_endless_chain_move_on(servers: Callable[..., LoopbackServer], good: LoopbackServer,
                                                 tmp_path: Path) -> None:
    loop = servers()
    loop.routes[F] = redirect("/b")
    loop.routes["/b"] = redirect(F)
    chain = servers()
    chain.routes[F] = redirect("/r0")
    for i in range(20):
        chain.routes[f"/r{i}"] = redirect(f"/r{i + 1}")
    fetch([loop.url(F), chain.url(F), good.url(F)], tmp_path)
    assert_next_mirror_used(loop, good, tmp_path)
    assert loop.hits(F) == 1 and loop.hits("/b") == 1  # no retries of a refused redirect
    assert len(chain.seen) == 6  # the first request and five redirects


def test_https_redirects_may_change_origin_but_never_downgrade(servers: Callable[..., LoopbackServer],
                                                               good: LoopbackServer, tmp_path: Path,
                                                               certs: Certs) -> None:
    cdn = servers(certs.trusted)
    cdn.routes[F] = serve(PAYLOAD)
    front = servers(certs.trusted)
    front.routes["/down"] = redirect(good.url(F))  # https -> http: refused, even to the right bytes
    front.routes[F] = redirect(f"https://localhost:{cdn.port}{F}")  # https -> https on another origin: followed
    fetch([front.url("/down"), front.url(F)], tmp_path)
    assert good.hits(F) == 0, "an https -> http redirect was followed"
    assert cdn.hits(F) == 1 and front.hits("/down") == 1
    assert (cache_of(tmp_path) / "f.bin").read_bytes() == PAYLOAD


def test_plain_http_redirect_stays_on_its_origin(servers: Callable[..., LoopbackServer], good: LoopbackServer,
                                                 tmp_path: Path) -> None:
    bad = servers()
    bad.routes[F] = redirect(good.url(F))  # another port: another origin
    bad.routes["/same"] = redirect("/f2")
    bad.routes["/f2"] = serve(PAYLOAD)
    fetch([bad.url(F), bad.url("/same")], tmp_path)
    assert good.hits(F) == 0 and bad.hits("/f2") == 1


# ------------------------------------------------------------------------------------------------ sizes


def test_endless_body_is_cut_at_the_expected_size(servers: Callable[..., LoopbackServer], good: LoopbackServer,
                                                  tmp_path: Path) -> None:
    bad = servers()
    bad.routes[F] = endless(bad)
    fetch([bad.url(F), good.url(F)], tmp_path, expected_size=len(PAYLOAD))
    assert_next_mirror_used(bad, good, tmp_path)
    assert bad.hits(F) == 1  # a body over the cap is not retried
    assert bad.sent.get(F, 0) < 16 << 20, "the client kept reading the endless body"


def test_announced_size_over_the_expected_one_is_refused_before_reading(
        servers: Callable[..., LoopbackServer], good: LoopbackServer, tmp_path: Path) -> None:
    bad = servers()
    bad.routes[F] = serve(b"y" * (40 << 20))  # 40 MiB where 300 KB are expected
    fetch([bad.url(F), good.url(F)], tmp_path, expected_size=len(PAYLOAD))
    assert_next_mirror_used(bad, good, tmp_path)


def test_endless_checksum_file_hits_the_hard_limit(servers: Callable[..., LoopbackServer], good: LoopbackServer,
                                                   tmp_path: Path) -> None:
    bad = servers()
    bad.routes[F] = serve(PAYLOAD)
    bad.routes[F + ".sha256"] = endless(bad, b"0" * 1024)
    good.routes[F + ".sha256"] = serve(f"{SHA}  f.bin\n".encode())
    dest = cache_of(tmp_path) / "f.bin"
    got = fetch_verified([Source(bad.url(F), checksum_url=bad.url(F + ".sha256")),
                          Source(good.url(F), checksum_url=good.url(F + ".sha256"))], dest,
                         options=Options(backoff=0))
    assert got.hexdigest == SHA and dest.read_bytes() == PAYLOAD
    assert bad.hits(F) == 0, "the file was fetched although its checksum file failed"
    assert bad.sent.get(F + ".sha256", 0) < 16 << 20


@pytest.mark.parametrize("delta", [-1000, 1000], ids=["shorter", "longer"])
def test_wrong_content_length_moves_on(delta: int, servers: Callable[..., LoopbackServer], good: LoopbackServer,
                                       tmp_path: Path) -> None:
    bad = servers()
    bad.routes[F] = announce(PAYLOAD, len(PAYLOAD) + delta)
    fetch([bad.url(F), good.url(F)], tmp_path, retries=3)
    assert_next_mirror_used(bad, good, tmp_path)
    # shorter: the body verifies badly once; longer: the connection closes early, retried (bounded), then given up
    assert bad.hits(F) == (1 if delta < 0 else 3)


def test_cut_body_is_resumed_on_the_same_mirror(servers: Callable[..., LoopbackServer], tmp_path: Path) -> None:
    srv = servers()
    srv.routes[F] = sequence(cut(PAYLOAD, 100_000), serve(PAYLOAD))
    fetch([srv.url(F)], tmp_path)
    (first, no_range), (second, rng) = srv.requests
    assert first == second == F and no_range is None and rng is not None
    assert 0 < int(rng.removeprefix("bytes=").rstrip("-")) <= 100_000  # at most one network read is lost
    assert (cache_of(tmp_path) / "f.bin").read_bytes() == PAYLOAD


# ------------------------------------------------------------------------------------ encoding and TLS


def test_broken_gzip_body_moves_on(servers: Callable[..., LoopbackServer], good: LoopbackServer,
                                   tmp_path: Path) -> None:
    bad = servers()
    bad.routes[F] = broken_gzip(PAYLOAD)
    fetch([bad.url(F), good.url(F)], tmp_path)
    assert_next_mirror_used(bad, good, tmp_path)
    assert bad.hits(F) == 1


def test_tls_verification_failure_moves_on(servers: Callable[..., LoopbackServer], good: LoopbackServer,
                                           tmp_path: Path, certs: Certs) -> None:
    bad = servers(certs.untrusted)  # self-signed: nothing trusts it
    bad.routes[F] = serve(PAYLOAD)
    fetch([bad.url(F), good.url(F)], tmp_path)
    assert good.hits(F) == 1 and (cache_of(tmp_path) / "f.bin").read_bytes() == PAYLOAD
    assert not bad.seen, "a request was answered over an unverified TLS connection"


# --------------------------------------------------------------------------------------------- resume


def test_206_from_offset_zero_over_a_stale_part_restarts(servers: Callable[..., LoopbackServer],
                                                         tmp_path: Path) -> None:
    srv = servers()
    srv.routes[F] = range_from_zero(PAYLOAD)
    cache_of(tmp_path).mkdir()
    (cache_of(tmp_path) / "f.bin.part").write_bytes(b"stale bytes of an older download" * 30)  # 960 bytes
    fetch([srv.url(F)], tmp_path)
    assert srv.requests == [(F, "bytes=960-")]  # one request: the 206 from 0 restarted the file cleanly
    assert listing(cache_of(tmp_path)) == ["f.bin"]
    assert (cache_of(tmp_path) / "f.bin").read_bytes() == PAYLOAD


def test_200_to_a_range_request_restarts(servers: Callable[..., LoopbackServer], tmp_path: Path) -> None:
    srv = servers()
    srv.routes[F] = lambda h: h.send_body(200, PAYLOAD)  # ignores Range
    cache_of(tmp_path).mkdir()
    (cache_of(tmp_path) / "f.bin.part").write_bytes(b"\0" * 5000)
    fetch([srv.url(F)], tmp_path)
    assert len(srv.seen) == 1 and (cache_of(tmp_path) / "f.bin").read_bytes() == PAYLOAD


def test_a_stale_part_that_is_not_a_prefix_is_downloaded_again(servers: Callable[..., LoopbackServer],
                                                               tmp_path: Path) -> None:
    srv = servers()
    srv.routes[F] = serve(PAYLOAD)  # honours Range: the stale bytes would stay in front
    cache_of(tmp_path).mkdir()
    (cache_of(tmp_path) / "f.bin.part").write_bytes(b"\0" * 5000)
    fetch([srv.url(F)], tmp_path)
    assert srv.requests == [(F, "bytes=5000-"), (F, None)]
    assert (cache_of(tmp_path) / "f.bin").read_bytes() == PAYLOAD


def test_stale_part_longer_than_the_file_is_dropped(servers: Callable[..., LoopbackServer], tmp_path: Path) -> None:
    srv = servers()
    srv.routes[F] = serve(PAYLOAD)
    cache_of(tmp_path).mkdir()
    (cache_of(tmp_path) / "f.bin.part").write_bytes(b"\0" * (len(PAYLOAD) + 1))
    fetch([srv.url(F)], tmp_path, expected_size=len(PAYLOAD))
    assert srv.requests == [(F, None)]


# ------------------------------------------------------------------------------------ every mirror bad


def test_every_mirror_bad_gives_one_line_and_an_empty_cache(servers: Callable[..., LoopbackServer],
                                                            tmp_path: Path, certs: Certs) -> None:
    s = servers()
    s.routes["/scheme"] = redirect("ftp://127.0.0.1/f.bin")
    s.routes["/loop"] = redirect("/loop2")
    s.routes["/loop2"] = redirect("/loop")
    s.routes["/endless"] = endless(s)
    s.routes["/long"] = announce(PAYLOAD, len(PAYLOAD) + 1000)
    s.routes["/gzip"] = broken_gzip(PAYLOAD)
    s.routes["/503"] = status(503)
    tls = servers(certs.untrusted)
    tls.routes[F] = serve(PAYLOAD)
    urls = [s.url("/scheme"), s.url("/loop"), s.url("/endless"), s.url("/long"), s.url("/gzip"), s.url("/503"),
            tls.url(F), closed_port_url(F)]
    err = failure(urls, tmp_path, expected_size=len(PAYLOAD), retries=2)
    assert err.code == ExitCode.DOWNLOAD_ERROR and int(err.code) == 40
    line = err.one_line()
    reasons = ["/scheme: redirect to ftp:// refused", "/loop: redirect loop", "/endless: body longer than 300000",
               "/long: announces 301000 bytes, expected 300000", "/gzip: broken compressed body",
               "/503: HTTP 503 (after 2 attempts)", f"{tls.port}: TLS error: ", ": connection refused"]
    positions = [line.find(r) for r in reasons]
    assert all(p >= 0 for p in positions), line
    assert positions == sorted(positions), "the failures are not named in the mirrors' order"
    assert line.startswith("minisand: could not download f.bin (") and "(hint: " in line


def test_every_mirror_serving_wrong_bytes_is_a_checksum_mismatch(servers: Callable[..., LoopbackServer],
                                                                 tmp_path: Path) -> None:
    s = servers()
    s.routes["/short"] = announce(PAYLOAD, len(PAYLOAD) - 1000)
    s.routes["/other"] = serve(PAYLOAD[::-1])
    err = failure([s.url("/short"), s.url("/other")], tmp_path)
    assert err.code == ExitCode.CHECKSUM_MISMATCH and int(err.code) == 41
    assert err.one_line().count("sha256 mismatch") == 2


# ------------------------------------------------------------------- through binaries and the ISO


def test_binaries_fall_back_and_fail_cleanly(servers: Callable[..., LoopbackServer], home: Path) -> None:
    version, kubelet = "v1.36.4", "/release/v1.36.4/bin/linux/amd64/kubelet"
    mirror = servers()
    mirror.routes[kubelet + ".sha256"] = redirect(kubelet + ".sha256")  # a loop on the checksum file
    mirror.routes[kubelet] = serve(PAYLOAD)
    h = Home.from_env()
    with pytest.raises(MinisandError) as e:
        fetch_one(h, "kubelet", version, "amd64", MirrorConfig(binary_mirror=mirror.base, offline=True))
    assert e.value.code == ExitCode.DOWNLOAD_ERROR
    assert "could not download kubelet v1.36.4" in e.value.message and "checksum file: redirect loop" in e.value.message
    assert mirror.hits(kubelet) == 0
    cache = h.binaries_cache("amd64", version)
    assert listing(cache) == []
    mirror.routes[kubelet + ".sha256"] = serve(f"{SHA}\n".encode())
    got = fetch_one(h, "kubelet", version, "amd64", MirrorConfig(binary_mirror=mirror.base, offline=True))
    assert got.path.read_bytes() == PAYLOAD and got.sha256 == SHA
    assert listing(cache) == ["kubelet", "kubelet.sha256"]


def test_iso_release_falls_back_to_the_next_mirror(servers: Callable[..., LoopbackServer], home: Path,
                                                   tmp_path: Path) -> None:
    from tests.unit.test_iso_download import make_iso

    iso = make_iso()
    name = iso_name()
    bad, mirror = servers(), servers()
    bad.routes[f"/{name}.sha256"] = serve(f"{hashlib.sha256(iso).hexdigest()}  {name}\n".encode())
    bad.routes[f"/{name}"] = broken_gzip(iso)
    mirror.routes[f"/{name}"] = serve(iso)
    h = Home.from_env()
    got = acquire_iso(h, None, None, default_urls=[bad.url(f"/{name}"), mirror.url(f"/{name}")],
                      build_cache=tmp_path / "none", progress=None)
    assert got.read_bytes() == iso and bad.hits(f"/{name}") == 1 and mirror.hits(f"/{name}") == 1
    assert not [p for p in h.iso_cache.iterdir() if p.suffix in (".part", ".lock")]


# ------------------------------------------------------------------------- plain-HTTP warning and lock


def test_plain_http_from_a_remote_host_warns_once(servers: Callable[..., LoopbackServer], home: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    """mirror.example is reached through a loopback proxy: the URL is remote, the traffic stays on 127.0.0.1."""
    version, kubelet = "v1.36.4", "/release/v1.36.4/bin/linux/amd64/kubelet"
    proxy = servers()
    proxy.routes[kubelet] = serve(PAYLOAD)
    proxy.routes[kubelet + ".sha256"] = serve(f"{SHA}\n".encode())
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, proxy.base)
    fetch_one(Home.from_env(), "kubelet", version, "amd64",
              MirrorConfig(binary_mirror="http://mirror.example", offline=True))
    assert {s.host for s in proxy.seen} == {"mirror.example"}
    warnings = [ln for ln in capfd.readouterr().err.splitlines() if "plain HTTP" in ln]
    assert len(warnings) == 1, warnings
    assert "kubelet v1.36.4 and its checksum came over plain HTTP from mirror.example" in warnings[0]
    assert "only guards against corruption" in warnings[0]
    # the same file from a loopback mirror, or with a checksum that did not come over the network: no warning
    download(f"http://mirror.example{kubelet}", home / "other" / "kubelet", sha256=SHA, progress=None)
    direct = servers()
    direct.routes[F] = serve(PAYLOAD)
    direct.routes[F + ".sha256"] = serve(f"{SHA}\n".encode())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    fetch_verified([Source(direct.url(F), checksum_url=direct.url(F + ".sha256"))], home / "third" / "f.bin",
                   kind=FileKind.BINARY)
    assert "plain HTTP" not in capfd.readouterr().err


def test_lock_held_by_another_process_times_out_with_its_pid(servers: Callable[..., LoopbackServer],
                                                              good: LoopbackServer, tmp_path: Path) -> None:
    dest = cache_of(tmp_path) / "f.bin"
    dest.parent.mkdir()
    holder_code = ("import fcntl, os, sys, time\n"
                   "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
                   "fcntl.flock(fd, fcntl.LOCK_EX)\n"
                   "os.write(fd, str(os.getpid()).encode())\n"
                   "print('locked', flush=True)\n"
                   "time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", holder_code, str(lock_path(dest))], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(MinisandError) as e:
            fetch([good.url(F)], tmp_path, lock_timeout=0.5)
        line = e.value.one_line()
        assert e.value.code == ExitCode.DOWNLOAD_ERROR
        assert "timed out after 0.5s waiting for another download of f.bin" in line
        assert f"pid {holder.pid} (" in line and str(lock_path(dest)) in line
        assert good.hits(F) == 0
    finally:
        holder.kill()
        holder.wait(10)
    fetch([good.url(F)], tmp_path, lock_timeout=5)  # the holder is gone: its lock went with it
    assert listing(cache_of(tmp_path)) == ["f.bin"]
