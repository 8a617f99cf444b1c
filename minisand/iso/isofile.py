"""Reading a minisand ISO with pycdlib (pure Python): its layout check, and the kernel and initramfs that
drivers boot directly, extracted once per ISO (keyed by its sha256)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minisand.download.fetch import file_digest
from minisand.errors import ExitCode, MinisandError
from minisand.iso.layout import iso_layout


@contextlib.contextmanager
def _opened(iso: Path) -> Iterator[Any]:
    import pycdlib

    cd = pycdlib.PyCdlib()
    try:
        cd.open(str(iso))
    except (pycdlib.pycdlibexception.PyCdlibException, OSError, ValueError, IndexError) as e:
        raise MinisandError(f"{iso.name} is not a readable ISO 9660 image ({e})",
                            hint="the file is damaged or not an ISO; download it again", code=ExitCode.ISO_ERROR) from e
    try:
        yield cd
    finally:
        cd.close()


def _record(cd: Any, path: str) -> Any:
    import pycdlib

    for kind in ("rr_path", "joliet_path", "iso_path"):
        lookup = path if kind != "iso_path" else path.upper() + ";1"
        try:
            return cd.get_record(**{kind: lookup})
        except (pycdlib.pycdlibexception.PyCdlibException, KeyError):
            continue
    return None


def validate_iso(iso: Path) -> None:
    """A minisand ISO: volume label, kernel, initramfs and squashfs present and wholly inside the file
    (a truncated download fails here even when its checksum was published for the truncated file)."""
    layout = iso_layout()
    size = iso.stat().st_size
    with _opened(iso) as cd:
        label = cd.pvd.volume_identifier.decode(errors="replace").strip()
        if label != layout.volume_label:
            raise MinisandError(f"{iso.name} is not a minisand ISO (volume label {label!r})",
                                hint="use an ISO built by `minisand iso build`", code=ExitCode.ISO_ERROR)
        # pycdlib clamps file lengths to what is there: the volume size in the PVD tells the truth
        volume = cd.pvd.space_size * cd.pvd.logical_block_size()
        if volume > size:
            raise MinisandError(f"{iso.name} is truncated ({size} of {volume} bytes)", hint="download it again",
                                code=ExitCode.ISO_ERROR)
        for path in (layout.kernel_path, layout.initrd_path, layout.squashfs_path):
            if _record(cd, path) is None:
                raise MinisandError(f"{iso.name} has no {path}", hint="use an ISO built by `minisand iso build`",
                                    code=ExitCode.ISO_ERROR)


def iso_sha256(iso: Path) -> str:
    """From the `.sha256` recorded next to the ISO when it is not older than the ISO, else computed."""
    sums = iso.with_name(iso.name + ".sha256")
    with contextlib.suppress(OSError, IndexError):
        if sums.stat().st_mtime >= iso.stat().st_mtime:
            digest = sums.read_text().split()[0]
            if len(digest) == 64:
                return digest
    return file_digest(iso)


def extract_boot_files(iso: Path, dest_dir: Path) -> tuple[Path, Path]:
    """(kernel, initrd) from the ISO into dest_dir/<sha256 prefix>/, reused while the ISO is the same."""
    out = dest_dir / iso_sha256(iso)[:16]
    kernel, initrd = out / "vmlinuz", out / "initrd.img"
    if kernel.is_file() and initrd.is_file():
        return kernel, initrd
    out.mkdir(parents=True, exist_ok=True)
    layout = iso_layout()
    with _opened(iso) as cd:
        for src, dest in ((layout.kernel_path, kernel), (layout.initrd_path, initrd)):
            rec = _record(cd, src)
            if rec is None:
                raise MinisandError(f"{iso.name} has no {src}", hint="use an ISO built by `minisand iso build`",
                                    code=ExitCode.ISO_ERROR)
            tmp = dest.with_name(f".{dest.name}.tmp")
            with tmp.open("wb") as f:
                _extract(cd, src, f)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(dest)
    return kernel, initrd


def _extract(cd: Any, path: str, fp: Any) -> None:
    import pycdlib

    for kind in ("rr_path", "joliet_path", "iso_path"):
        lookup = path if kind != "iso_path" else path.upper() + ";1"
        try:
            cd.get_file_from_iso_fp(fp, **{kind: lookup})
            return
        except pycdlib.pycdlibexception.PyCdlibException:
            fp.seek(0)
            fp.truncate()
    raise MinisandError(f"cannot read {path} from the ISO", code=ExitCode.ISO_ERROR)
