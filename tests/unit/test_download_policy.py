"""The pure pieces of minisand.download: the redirect policy, size caps, Content-Range handling, the one-line
summary of failed sources, published checksums, TLS error wording and the destination lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from minisand.download.checksum import Checksum, published_checksum
from minisand.download.failures import Failure, SourceFailed, source_names, summary
from minisand.download.httpget import tls_reason
from minisand.download.limits import HARD_LIMITS, FileKind, cap, check_expected
from minisand.download.lock import dest_lock, lock_path
from minisand.download.ranges import Resume, parse_content_range, resume_plan, unsatisfied_total
from minisand.download.redirects import RedirectRefused, is_loopback_host, next_hop, plain_http_remote
from minisand.errors import ExitCode, MinisandError

# ------------------------------------------------------------------------------------------- redirects

FOLLOWED = [
    ("https://dl.k8s.io/release/v1/kubelet", "https://cdn.dl.k8s.io/release/v1/kubelet",
     "https://cdn.dl.k8s.io/release/v1/kubelet"),  # https cross-origin: a CDN hand-off
    ("https://a.example/x", "/y", "https://a.example/y"),  # relative
    ("https://a.example/d/x", "z", "https://a.example/d/z"),
    ("http://127.0.0.1:8000/x", "/mirror/x", "http://127.0.0.1:8000/mirror/x"),  # same origin over http
    ("http://127.0.0.1/x", "http://127.0.0.1:80/y", "http://127.0.0.1:80/y"),  # default port: same origin
    ("https://a.example/x", "https://a.example/y#frag", "https://a.example/y"),
]


@pytest.mark.parametrize(("current", "location", "want"), FOLLOWED)
def test_redirects_that_are_followed(current: str, location: str, want: str) -> None:
    assert next_hop(current, location, [current]) == want


REFUSED = [
    ("https://a.example/x", "http://a.example/x", "downgrade"),
    ("http://127.0.0.1:8000/x", "file:///etc/passwd", "file://"),
    ("http://127.0.0.1:8000/x", "ftp://127.0.0.1/x", "ftp://"),
    ("https://a.example/x", "ftp://a.example/x", "ftp://"),
    ("http://127.0.0.1:8000/x", "https://127.0.0.1:8443/x", "https://"),  # no scheme change, not even up
    ("http://127.0.0.1:8000/x", "http://127.0.0.1:8001/x", "cross-origin"),  # another port over http
    ("http://127.0.0.1:8000/x", "http://10.0.0.1:8000/x", "cross-origin"),
    ("http://127.0.0.1:8000/x", "//evil.example/x", "cross-origin"),  # scheme-relative
    ("https://a.example/x", "", "without a Location"),
    ("https://a.example/x", None, "without a Location"),
    ("https://a.example/x", "https://:443/x", "without a host"),
    ("https://a.example/x", "https://user:pw@b.example/x", "credentials"),
    ("https://a.example/x", "https://b.example:99999/x", "malformed"),
    ("https://a.example/x", "javascript:alert(1)", "javascript://"),
    ("https://a.example/x", "https://[::1/x", "malformed"),
]


@pytest.mark.parametrize(("current", "location", "why"), REFUSED)
def test_redirects_that_are_refused(current: str, location: str | None, why: str) -> None:
    with pytest.raises(RedirectRefused) as e:
        next_hop(current, location, [current])
    assert why in str(e.value)
    assert e.value.code == ExitCode.DOWNLOAD_ERROR


def test_redirect_loops_and_chains_are_bounded() -> None:
    a, b = "https://a.example/x", "https://b.example/x"
    with pytest.raises(RedirectRefused, match="loop"):
        next_hop(b, a, [a, b])
    with pytest.raises(RedirectRefused, match="loop"):
        next_hop(a, a, [a])
    chain = [f"https://a.example/{i}" for i in range(6)]  # the first URL and five redirects followed
    assert next_hop(chain[4], chain[5], chain[:5]) == chain[5]
    with pytest.raises(RedirectRefused, match="more than 5 redirects"):
        next_hop(chain[5], "https://a.example/6", chain)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST.", True), ("mirror.localhost", True), ("10.0.0.1", False), ("192.168.1.1", False),
    ("dl.k8s.io", False), ("127.0.0.1.nip.io", False), ("", False), (None, False),
])
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_plain_http_remote() -> None:
    assert plain_http_remote("http://mirror.example/kubelet")
    assert plain_http_remote("http://10.1.2.3:8080/kubelet")
    assert not plain_http_remote("http://127.0.0.1:8080/kubelet")
    assert not plain_http_remote("http://localhost/kubelet")
    assert not plain_http_remote("https://mirror.example/kubelet")
    assert not plain_http_remote("file:///srv/kubelet")


# ------------------------------------------------------------------------------------------------ sizes


def test_size_cap_prefers_expected_then_announced_then_the_hard_limit() -> None:
    assert cap(FileKind.BINARY, 300_000) == 300_000
    assert cap(FileKind.BINARY, 300_000, 300_000) == 300_000
    assert cap(FileKind.BINARY, None, 1234) == 1234
    assert cap(FileKind.BINARY, None) == HARD_LIMITS[FileKind.BINARY]
    assert cap(FileKind.CHECKSUM, None) == 4096
    assert HARD_LIMITS[FileKind.CHECKSUM] < HARD_LIMITS[FileKind.BINARY] < HARD_LIMITS[FileKind.ISO]


def test_size_cap_refuses_a_contradicting_or_oversized_announcement() -> None:
    with pytest.raises(SourceFailed, match="announces 40000000 bytes, expected 300000"):
        cap(FileKind.BINARY, 300_000, 40_000_000)
    with pytest.raises(SourceFailed, match="over the 4 KiB limit for a checksum file"):
        cap(FileKind.CHECKSUM, None, 5000)
    with pytest.raises(SourceFailed, match="limit for a binary"):
        cap(FileKind.BINARY, None, HARD_LIMITS[FileKind.BINARY] + 1)


def test_expected_size_must_fit_the_kind() -> None:
    check_expected(FileKind.CHECKSUM, 4096)
    for bad in (-1, 4097):
        with pytest.raises(ValueError):
            check_expected(FileKind.CHECKSUM, bad)


# ----------------------------------------------------------------------------------------- Content-Range


@pytest.mark.parametrize(("header", "want"), [
    ("bytes 0-99/100", (0, 99, 100)),
    ("bytes 100-199/*", (100, 199, None)),
    ("BYTES 5-5/6", (5, 5, 6)),
    (" bytes 10-19/20 ", (10, 19, 20)),
    ("bytes 10-9/20", None),  # end before start
    ("bytes 0-100/100", None),  # end past the total
    ("bytes */100", None),
    ("items 0-1/2", None),
    ("bytes -5-10/20", None),
    ("", None),
    (None, None),
])
def test_parse_content_range(header: str | None, want: tuple[int, int, int | None] | None) -> None:
    rng = parse_content_range(header)
    assert (None if rng is None else (rng.start, rng.end, rng.total)) == want


def test_unsatisfied_total() -> None:
    assert unsatisfied_total("bytes */1000") == 1000
    assert unsatisfied_total("bytes 0-1/2") is None
    assert unsatisfied_total(None) is None


@pytest.mark.parametrize(("have", "status", "content_range", "want"), [
    (0, 200, None, Resume.RESTART),
    (1000, 200, None, Resume.RESTART),  # a 200 to a Range request: the whole file again
    (1000, 206, "bytes 1000-1999/2000", Resume.APPEND),
    (1000, 206, "bytes 1000-1499/2000", Resume.APPEND),  # a shorter range: the rest is resumed later
    (1000, 206, "bytes 0-1999/2000", Resume.RESTART),  # 206 from offset 0 over a stale .part
    (0, 206, "bytes 0-1999/2000", Resume.RESTART),
    (1000, 206, "bytes 500-1999/2000", Resume.INVALID),  # does not continue the .part
    (0, 206, "bytes 500-1999/2000", Resume.INVALID),
    (1000, 206, None, Resume.INVALID),
    (1000, 206, "garbage", Resume.INVALID),
    (1000, 204, None, Resume.INVALID),
])
def test_resume_plan(have: int, status: int, content_range: str | None, want: Resume) -> None:
    assert resume_plan(have, status, content_range) is want


# ---------------------------------------------------------------------------------------------- summary


def test_source_names_are_short_and_tell_sources_apart() -> None:
    assert source_names(["https://dl.k8s.io/release/v1/bin/linux/amd64/kubelet",
                         "http://127.0.0.1:8080/release/v1/bin/linux/amd64/kubelet", "file:///srv/m/kubelet"]) == \
        ["dl.k8s.io", "127.0.0.1:8080", "/srv/m/kubelet"]
    assert source_names(["http://h/a/f", "http://h/b/f"]) == ["h/a/f", "h/b/f"]
    assert source_names(["https://u:p@h/f"]) == ["h"]


def test_summary_is_one_line_naming_each_source() -> None:
    failures = [Failure("http://127.0.0.1:1/f", "redirect to ftp:// refused\n(a redirect never changes it)",
                        ExitCode.DOWNLOAD_ERROR),
                Failure("http://127.0.0.1:2/f", "x" * 1000, ExitCode.DOWNLOAD_ERROR)]
    err = summary("kubelet v1", failures)
    line = err.one_line()
    assert err.code == ExitCode.DOWNLOAD_ERROR
    assert "\n" not in line and len(line) < 500
    assert line.startswith("minisand: could not download kubelet v1 (127.0.0.1:1: redirect to ftp:// refused")
    assert "127.0.0.1:2: xxx" in line and "(hint: " in line
    mismatch = summary("f", [*failures, Failure("http://127.0.0.1:3/f", "sha256 mismatch", ExitCode.CHECKSUM_MISMATCH)])
    assert mismatch.code == ExitCode.CHECKSUM_MISMATCH and "checksum is wrong" in mismatch.hint
    assert summary("f", failures, hint="check --binary-mirror").hint == "check --binary-mirror"


# -------------------------------------------------------------------------------------------- checksums


def test_published_checksum() -> None:
    digest = "ab" * 32
    assert published_checksum(f"{digest}\n", "sha256") == Checksum("sha256", digest)
    assert published_checksum(f"{digest.upper()}  kubelet\n", "sha256", "kubelet").hexdigest == digest
    assert published_checksum(f"{'cd' * 64}  runsc\n", "sha512", "runsc").algo == "sha512"
    for text, algo in ((f"{digest}\n", "sha512"), ("<html>not found</html>", "sha256"), ("zz" * 32, "sha256")):
        with pytest.raises(MinisandError) as e:
            published_checksum(text, algo, "kubelet")
        assert e.value.code == ExitCode.CHECKSUM_MISMATCH


def test_tls_reasons_are_compact() -> None:
    long = ("HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /f (Caused by "
            "SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
            "self-signed certificate (_ssl.c:1006)')))")
    assert tls_reason(Exception(long)) == "self-signed certificate"
    assert tls_reason(Exception("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")) == \
        "wrong version number"
    assert tls_reason(Exception("EOF occurred")) == "handshake failed"


# ------------------------------------------------------------------------------------------------- lock


def test_lock_times_out_with_a_clear_message(tmp_path: Path) -> None:
    dest = tmp_path / "kubelet"
    waited: list[str] = []
    with dest_lock(dest, timeout=1):
        assert lock_path(dest).read_text().strip().isdigit()
        t0 = time.monotonic()
        with pytest.raises(MinisandError) as e, dest_lock(dest, timeout=0.3, on_wait=waited.append):
            pass
        assert 0.25 < time.monotonic() - t0 < 2
    assert e.value.code == ExitCode.DOWNLOAD_ERROR
    line = e.value.one_line()
    assert "timed out after 0.3s waiting for another download of kubelet" in line
    assert str(lock_path(dest)) in line and "(this minisand)" in line and "busy" not in line
    assert waited and waited[0].startswith("pid ")
    assert not lock_path(dest).exists()  # released and removed


def test_lock_is_handed_over_to_a_waiter(tmp_path: Path) -> None:
    dest = tmp_path / "kubelet"
    order: list[str] = []
    first = threading.Event()

    def holder() -> None:
        with dest_lock(dest, timeout=5):
            first.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=holder)
    thread.start()
    assert first.wait(5)
    with dest_lock(dest, timeout=5):
        order.append("second in")
    thread.join(5)
    assert order == ["first done", "second in"]
    assert not lock_path(dest).exists()
