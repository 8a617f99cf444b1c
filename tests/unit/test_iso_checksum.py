"""`--iso-checksum sha512:HEX` is verified with sha512 (not accepted and then ignored): the right digest gives a
cached ISO whose recorded sha256 later starts check, a wrong one keeps nothing. file:// URLs: no network."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from minisand.errors import ExitCode, MinisandError
from minisand.iso.acquire import acquire_iso, verified
from minisand.paths import Home
from tests.unit.test_iso_download import make_iso


@pytest.fixture()
def iso_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "minisand-9.iso"
    path.parent.mkdir()
    path.write_bytes(make_iso())
    return path


def test_sha512_checksum_is_verified_and_cached(home: Path, iso_file: Path) -> None:
    data = iso_file.read_bytes()
    h = Home.from_env()
    iso = acquire_iso(h, iso_file.as_uri(), f"sha512:{hashlib.sha512(data).hexdigest()}")
    assert iso.read_bytes() == data and iso.parent == h.iso_cache
    assert iso.name == f"minisand-9-{hashlib.sha512(data).hexdigest()[:16]}.iso"
    sidecar = iso.with_name(iso.name + ".sha256").read_text().split()[0]
    assert sidecar == hashlib.sha256(data).hexdigest() and verified(iso)
    assert acquire_iso(h, iso_file.as_uri(), "sha512:" + hashlib.sha512(data).hexdigest().upper()) == iso


def test_wrong_sha512_keeps_nothing(home: Path, iso_file: Path) -> None:
    wrong = hashlib.sha512(b"something else").hexdigest()
    with pytest.raises(MinisandError) as exc:
        acquire_iso(Home.from_env(), iso_file.as_uri(), f"sha512:{wrong}")
    assert exc.value.code == ExitCode.CHECKSUM_MISMATCH
    cache = Home.from_env().iso_cache
    assert not cache.exists() or [p.name for p in cache.iterdir() if p.name != ".lock"] == []


def test_a_sha256_digest_of_the_sha512_length_is_not_confused(home: Path, iso_file: Path) -> None:
    """A bare 128-hex digest is a sha512, checked as one."""
    data = iso_file.read_bytes()
    iso = acquire_iso(Home.from_env(), iso_file.as_uri(), hashlib.sha512(data).hexdigest())
    assert iso.read_bytes() == data
