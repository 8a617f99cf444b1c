"""minisand.download.fetch and minisand.iso.acquire against a loopback HTTP server that each test starts and
stops (tests/loopback_http.py: the network boundary, the fake internet, on 127.0.0.1 only). The faults that make
a source fail (redirects, size, encoding, TLS, ...) are in tests/integration/test_download_faults.py."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from minisand.download.fetch import Checksum, download, parse_checksum_file
from minisand.errors import ExitCode, MinisandError
from minisand.iso.acquire import acquire_iso, extract_boot_files, local_build
from minisand.iso.recipe import iso_name
from minisand.paths import Home
from tests.loopback_http import LoopbackServer, closed_port_url


@pytest.fixture()
def server() -> Iterator[tuple[str, LoopbackServer]]:
    with LoopbackServer() as srv:
        yield srv.base, srv


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = bytes(range(256)) * 5000  # 1.28 MB: several chunks


def only(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# ----------------------------------------------------------------------------------------------- fetch


def test_download_verifies_and_renames(server: tuple[str, LoopbackServer], tmp_path: Path) -> None:
    base, served = server
    served.files["/f.bin"] = PAYLOAD
    dest = download(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD), backoff=0)
    assert dest.read_bytes() == PAYLOAD
    assert only(tmp_path) == ["f.bin"]


def test_download_reuses_a_verified_file_without_traffic(server: tuple[str, LoopbackServer], tmp_path: Path) -> None:
    base, served = server
    (tmp_path / "f.bin").write_bytes(PAYLOAD)
    download(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD), backoff=0)
    assert served.requests == []


def test_wrong_checksum_leaves_nothing(server: tuple[str, LoopbackServer], tmp_path: Path) -> None:
    base, served = server
    served.files["/f.bin"] = PAYLOAD
    with pytest.raises(MinisandError) as e:
        download(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha(b"other"), backoff=0)
    assert e.value.code == ExitCode.CHECKSUM_MISMATCH
    assert only(tmp_path) == []


def test_unreachable_url_fails_fast_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(MinisandError) as e:
        download(closed_port_url(), tmp_path / "f.bin", sha256=sha(PAYLOAD), retries=2, backoff=0)
    assert e.value.code == ExitCode.DOWNLOAD_ERROR
    assert only(tmp_path) == []


def test_malformed_and_unsupported_urls_fail_in_one_line(tmp_path: Path) -> None:
    urls = ["http://", "http://exa mple.com/x", "https://[::1/x", "gopher://x/y", "", "http://127.0.0.1:99999/x",
            (tmp_path / "missing").as_uri(), tmp_path.as_uri()]
    with pytest.raises(MinisandError) as e:
        download(urls, tmp_path / "cache" / "f.bin", sha256=sha(PAYLOAD), retries=1, backoff=0)
    line = e.value.one_line()
    assert e.value.code == ExitCode.DOWNLOAD_ERROR and "\n" not in line
    assert line.count("invalid URL") == 4 and "gopher://" in line and "(empty URL)" in line
    assert "No such file or directory" in line and "Is a directory" in line
    assert only(tmp_path / "cache") == []


def test_mirror_fallback_after_404(server: tuple[str, LoopbackServer], tmp_path: Path) -> None:
    base, served = server
    served.files["/mirror/f.bin"] = PAYLOAD
    download([f"{base}/missing/f.bin", f"{base}/mirror/f.bin"], tmp_path / "f.bin", sha256=sha(PAYLOAD),
             backoff=0)
    assert [p for p, _ in served.requests] == ["/missing/f.bin", "/mirror/f.bin"]
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_cut_connection_is_resumed_with_range(server: tuple[str, LoopbackServer], tmp_path: Path) -> None:
    base, served = server
    served.files["/f.bin"] = PAYLOAD
    served.faults["/f.bin"] = ["cut"]
    download(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD), retries=3, backoff=0)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert served.requests[0][1] is None
    assert served.requests[1][1] is not None and served.requests[1][1].startswith("bytes=")
    assert int(served.requests[1][1][6:].rstrip("-")) > 0


def test_existing_part_file_is_resumed(server: tuple[str, LoopbackServer], tmp_path: Path) -> None:
    base, served = server
    served.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:1000])
    download(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD), backoff=0)
    assert served.requests == [("/f.bin", "bytes=1000-")]
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_server_errors_are_retried(server: tuple[str, LoopbackServer], tmp_path: Path) -> None:
    base, served = server
    served.files["/f.bin"] = PAYLOAD
    served.faults["/f.bin"] = ["503", "503"]
    download(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD), retries=3, backoff=0)
    assert len(served.requests) == 3


def test_retries_are_bounded(server: tuple[str, LoopbackServer], tmp_path: Path) -> None:
    base, served = server
    served.files["/f.bin"] = PAYLOAD
    served.faults["/f.bin"] = ["503"] * 10
    with pytest.raises(MinisandError) as e:
        download(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD), retries=2, backoff=0)
    assert e.value.code == ExitCode.DOWNLOAD_ERROR
    assert len(served.requests) == 2
    assert only(tmp_path) == []


def test_file_url_and_validator(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    cache = tmp_path / "cache"

    def reject(part: Path) -> None:
        assert part.name.endswith(".part") and part.read_bytes() == PAYLOAD
        raise MinisandError("not acceptable", code=ExitCode.ISO_ERROR)

    with pytest.raises(MinisandError) as e:
        download(src.as_uri(), cache / "f.bin", sha256=sha(PAYLOAD), validate=reject)
    assert e.value.code == ExitCode.ISO_ERROR
    assert only(cache) == []
    download(src.as_uri(), cache / "f.bin", sha256=sha(PAYLOAD))
    assert (cache / "f.bin").read_bytes() == PAYLOAD


def test_checksum_parsing() -> None:
    digest = sha(b"x")
    assert Checksum.parse(f"sha256:{digest.upper()}") == Checksum("sha256", digest)
    assert Checksum.parse(digest).algo == "sha256"
    assert Checksum.parse("sha512:" + "a" * 128).algo == "sha512"
    for bad in ("sha256:abc", "md5:" + "a" * 32, "sha256:" + "g" * 64):
        with pytest.raises(MinisandError):
            Checksum.parse(bad)
    text = f"{'0' * 64}  other.iso\n{digest} *minisand-0.1.0.iso\n"
    assert parse_checksum_file(text, "minisand-0.1.0.iso") == digest
    assert parse_checksum_file(digest + "\n", "anything.iso") == digest


# ------------------------------------------------------------------------------------------ acquire


def make_iso(label: str = "MINISAND", kernel: bytes = b"KERNEL" * 1000) -> bytes:
    """A tiny ISO with a minisand ISO's layout, written by pycdlib (pure Python)."""
    import pycdlib

    cd = pycdlib.PyCdlib()
    cd.new(interchange_level=3, rock_ridge="1.09", vol_ident=label)
    for d in ("/BOOT", "/LIVE"):
        cd.add_directory(d, rr_name=d[1:].lower())
    for path, rr, data in (("/BOOT/VMLINUZ.;1", "vmlinuz", kernel), ("/BOOT/INITRD.IMG;1", "initrd.img", b"I" * 3000),
                           ("/LIVE/ROOTFS.SQUASHFS;1", "rootfs.squashfs", b"S" * 300_000)):
        cd.add_fp(io.BytesIO(data), len(data), path, rr_name=rr)
    out = io.BytesIO()
    cd.write_fp(out)
    cd.close()
    return out.getvalue()


@pytest.fixture()
def iso_bytes() -> bytes:
    return make_iso()


def test_acquire_with_checksum_flag_and_extract(server: tuple[str, LoopbackServer], home: Path,
                                                iso_bytes: bytes) -> None:
    base, served = server
    served.files["/minisand-9.iso"] = iso_bytes
    h = Home.from_env()
    iso = acquire_iso(h, f"{base}/minisand-9.iso", f"sha256:{sha(iso_bytes)}")
    assert iso.parent == h.iso_cache and iso.read_bytes() == iso_bytes
    kernel, initrd = extract_boot_files(iso, h.iso_cache / "boot")
    assert kernel.read_bytes() == b"KERNEL" * 1000 and initrd.read_bytes() == b"I" * 3000
    before = kernel.stat().st_mtime_ns
    assert extract_boot_files(iso, h.iso_cache / "boot") == (kernel, initrd)
    assert kernel.stat().st_mtime_ns == before
    # a second start with the same URL downloads nothing
    count = len(served.requests)
    assert acquire_iso(h, f"{base}/minisand-9.iso", f"sha256:{sha(iso_bytes)}") == iso
    assert len(served.requests) == count


def test_acquire_checksum_from_url_sha256(server: tuple[str, LoopbackServer], home: Path, iso_bytes: bytes) -> None:
    base, served = server
    served.files["/dl/minisand-9.iso"] = iso_bytes
    served.files["/dl/minisand-9.iso.sha256"] = f"{sha(iso_bytes)}  minisand-9.iso\n".encode()
    iso = acquire_iso(Home.from_env(), f"{base}/dl/minisand-9.iso", None)
    assert iso.read_bytes() == iso_bytes


def test_truncated_iso_is_rejected(server: tuple[str, LoopbackServer], home: Path, iso_bytes: bytes) -> None:
    base, served = server
    cut = iso_bytes[: len(iso_bytes) - 100_000]
    served.files["/a/minisand-9.iso"] = cut
    h = Home.from_env()
    with pytest.raises(MinisandError) as e:  # the real checksum: mismatch
        acquire_iso(h, f"{base}/a/minisand-9.iso", f"sha256:{sha(iso_bytes)}")
    assert e.value.code == ExitCode.CHECKSUM_MISMATCH
    assert only(h.iso_cache) == []
    served.files["/a/minisand-9.iso.sha256"] = f"{sha(cut)}  minisand-9.iso\n".encode()
    with pytest.raises(MinisandError) as e:  # a checksum published for the truncated file: the layout check
        acquire_iso(h, f"{base}/a/minisand-9.iso", None)
    assert e.value.code == ExitCode.ISO_ERROR and "truncated" in e.value.message
    assert only(h.iso_cache) == []


def test_foreign_iso_is_rejected(server: tuple[str, LoopbackServer], home: Path) -> None:
    base, served = server
    other = make_iso(label="SOMETHING")
    served.files["/o.iso"] = other
    h = Home.from_env()
    with pytest.raises(MinisandError) as e:
        acquire_iso(h, f"{base}/o.iso", f"sha256:{sha(other)}")
    assert e.value.code == ExitCode.ISO_ERROR
    assert only(h.iso_cache) == []


def test_unreachable_iso_url(home: Path) -> None:
    h = Home.from_env()
    with pytest.raises(MinisandError) as e:
        acquire_iso(h, closed_port_url(), f"sha256:{'a' * 64}")
    assert e.value.code == ExitCode.DOWNLOAD_ERROR
    assert only(h.iso_cache) == []
    with pytest.raises(MinisandError) as e:  # no checksum and no URL.sha256 to read
        acquire_iso(h, closed_port_url(), None)
    assert e.value.code == ExitCode.DOWNLOAD_ERROR


def test_default_urls_fall_back_to_the_mirror(server: tuple[str, LoopbackServer], home: Path, iso_bytes: bytes,
                                              tmp_path: Path) -> None:
    base, served = server
    name = iso_name()
    served.files[f"/cn/{name}"] = iso_bytes
    served.files[f"/cn/{name}.sha256"] = f"{sha(iso_bytes)}  {name}\n".encode()
    h = Home.from_env()
    iso = acquire_iso(h, None, None, default_urls=[closed_port_url(f"/gh/{name}"), f"{base}/cn/{name}"],
                      build_cache=tmp_path / "none")
    assert iso.read_bytes() == iso_bytes
    # offline afterwards: the downloaded release ISO is reused without any URL
    assert acquire_iso(h, None, None, default_urls=[closed_port_url()], build_cache=tmp_path / "none") == iso


def test_default_urls_fall_back_to_a_local_build(home: Path, iso_bytes: bytes, tmp_path: Path) -> None:
    h = Home.from_env()
    cache = tmp_path / "build-cache"
    with pytest.raises(MinisandError) as e:
        acquire_iso(h, None, None, default_urls=[closed_port_url(), closed_port_url()], build_cache=cache)
    assert e.value.code == ExitCode.ISO_ERROR and "minisand iso build" in e.value.hint
    built = cache / "0123456789abcdef" / iso_name()
    built.parent.mkdir(parents=True)
    built.write_bytes(iso_bytes)
    built.with_name(built.name + ".sha256").write_text(f"{sha(iso_bytes)}  {built.name}\n")
    assert acquire_iso(h, None, None, default_urls=[closed_port_url()], build_cache=cache) == built
    built.write_bytes(iso_bytes[:-1])  # damaged after the build: not used
    assert local_build(cache) is None
