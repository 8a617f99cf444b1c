"""The initramfs decides from the data disk's ext4 superblock whether `e2fsck -p` has anything to do. The shell
function is taken from iso/initramfs/init and run with busybox (the initramfs's shell) against real ext4 images
made by mke2fs; the superblock fields are then changed the way an unclean shutdown, a recorded error or a due
mount-count check would change them."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from minisand.iso.recipe import recipe_dir

BUSYBOX = shutil.which("busybox")
MKE2FS = shutil.which("mke2fs") or shutil.which("mke2fs", path="/usr/sbin:/sbin")

pytestmark = pytest.mark.allow_subprocess  # busybox-static and e2fsprogs come with scripts/setup

SB = 1024  # the superblock's offset on the device


def _function() -> str:
    text = (recipe_dir() / "initramfs" / "init").read_text()
    start = text.index("ext4_clean() {")
    end = text.index("\n}\n", start) + 3
    return text[start:end]


def _clean(dev: Path) -> bool:
    script = _function() + 'ext4_clean "$1"\n'
    assert BUSYBOX is not None, "busybox is missing: run scripts/setup"
    proc = subprocess.run([BUSYBOX, "sh", "-c", script, "sh", str(dev)], capture_output=True, text=True, timeout=30)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode == 0


def _patch(dev: Path, offset: int, fmt: str, value: int) -> None:
    with dev.open("r+b") as f:
        f.seek(SB + offset)
        f.write(struct.pack(fmt, value))


def _field(dev: Path, offset: int, fmt: str) -> int:
    with dev.open("rb") as f:
        f.seek(SB + offset)
        return int(struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0])


@pytest.fixture()
def ext4(tmp_path: Path) -> Path:
    dev = tmp_path / "data.img"
    with dev.open("wb") as f:
        f.truncate(64 * 2**20)
    assert MKE2FS is not None, "mke2fs is missing: run scripts/setup"
    subprocess.run([MKE2FS, "-q", "-F", "-t", "ext4", "-L", "minisand-data", str(dev)], check=True, timeout=60)
    return dev


def test_a_freshly_made_filesystem_needs_no_check(ext4: Path) -> None:
    assert _field(ext4, 56, "<H") == 0xEF53
    assert _clean(ext4)


def test_an_unclean_or_damaged_filesystem_is_checked(ext4: Path, tmp_path: Path) -> None:
    state = _field(ext4, 58, "<H")
    _patch(ext4, 58, "<H", state & ~1)  # not cleanly unmounted
    assert not _clean(ext4)
    _patch(ext4, 58, "<H", state | 2)  # errors recorded by the kernel
    assert not _clean(ext4)
    _patch(ext4, 58, "<H", state)
    assert _clean(ext4)


def test_a_journal_to_replay_is_checked(ext4: Path) -> None:
    incompat = _field(ext4, 96, "<I")
    _patch(ext4, 96, "<I", incompat | 4)  # INCOMPAT_RECOVER: the machine went down with the disk mounted
    assert not _clean(ext4)


def test_a_due_mount_count_check_is_honoured(ext4: Path) -> None:
    _patch(ext4, 54, "<h", 5)  # s_max_mnt_count
    _patch(ext4, 52, "<H", 2)
    assert _clean(ext4)
    _patch(ext4, 52, "<H", 5)
    assert not _clean(ext4)
    _patch(ext4, 54, "<h", -1)  # checks by mount count disabled (mke2fs's default)
    assert _clean(ext4)


def test_not_ext4_or_too_short_is_checked(tmp_path: Path) -> None:
    zeros = tmp_path / "zeros.img"
    zeros.write_bytes(bytes(4096))
    assert not _clean(zeros)
    short = tmp_path / "short.img"
    short.write_bytes(bytes(1100))
    assert not _clean(short)
