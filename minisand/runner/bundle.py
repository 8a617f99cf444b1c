"""Several files into one folder on a machine in one command: a tar stream, checked on the host before it
travels (each file against its expected digest), unpacked on the machine into a temporary folder beside the
destination and moved into place one by one, the file named `last` (a checksum list) after all the others.

Under emulation every command costs the guest a process start or three (sudo, sh, the program): one transfer
instead of a write per file, and no hashing inside the guest."""

from __future__ import annotations

import hashlib
import io
import secrets
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, cast

from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandRunner

# A constant script: the folders, the name of the file moved last and the stream's compression (gzip or none)
# arrive as positional parameters.
_INSTALL = ('set -e; z=; [ "$4" = gzip ] && z=-z; mkdir -p -- "$1" "$2"; '
            'tar -x $z -f - -C "$2" --no-same-owner --no-same-permissions; '
            'for f in "$2"/*; do [ -e "$f" ] || continue; [ "${f##*/}" = "$3" ] || mv -f -- "$f" "$1"/; '
            'done; if [ -n "$3" ] && [ -e "$2/$3" ]; then mv -f -- "$2/$3" "$1"/; fi; rmdir -- "$2"')


SUMS_NAME = "SHA256SUMS"
# A constant script: prints the checksum list ($1), then `missing PATH` for each file ($2...) that is not there.
_INSTALLED = 'cat -- "$1" 2>/dev/null; shift; for f in "$@"; do [ -e "$f" ] || echo "missing $f"; done; true'


def sums_text(digests: dict[str, str]) -> str:
    """sha256sum's (or sha512sum's) format, sorted by name: what the node compares instead of hashing."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items()))


def parse_sums(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) in (64, 128) and all(c in "0123456789abcdef" for c in parts[0]):
            out[PurePosixPath(parts[1]).name] = parts[0]
    return out


def installed_sums(runner: CommandRunner, folder: PurePosixPath, names: list[str],
                   sums_name: str = SUMS_NAME) -> dict[str, str]:
    """name -> digest of the files in folder, from the checksum list installed with them (one command and no
    hashing on the node: under emulation sha256sum of ~200 MB takes many seconds); a file that is not there
    does not count."""
    res = runner.run(["sh", "-c", _INSTALLED, "minisand-sums", str(folder / sums_name),
                      *(str(folder / n) for n in names)], sudo=True, check=False, timeout=60)
    sums = parse_sums(res.out)
    for line in res.out.splitlines():
        if line.startswith("missing "):
            sums.pop(PurePosixPath(line.split(" ", 1)[1]).name, None)
    return sums


@dataclass(frozen=True)
class BundleFile:
    name: str  # a plain file name (no folder)
    mode: int
    data: bytes | None = None
    source: Path | None = None  # read from here when data is None
    digest: str = ""  # "sha256:HEX" or "sha512:HEX": checked while the file is packed


def install_argv(dest: PurePosixPath, tmp: PurePosixPath, last: str = "", compression: str = "none") -> list[str]:
    return ["sh", "-c", _INSTALL, "minisand-install", str(dest), str(tmp), last, compression]


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a plain file name: {name!r}")


def _add(tf: tarfile.TarFile, f: BundleFile) -> int:
    _check_name(f.name)
    if f.data is not None:
        data = f.data
    elif f.source is not None:
        data = f.source.read_bytes()
    else:
        raise ValueError(f"{f.name}: no data and no source")
    if f.digest:
        algo, _, want = f.digest.partition(":")
        if hashlib.new(algo, data).hexdigest() != want:
            where = str(f.source) if f.source else f.name
            raise MinisandError(f"{where} does not match its checksum", code=ExitCode.CHECKSUM_MISMATCH,
                                hint=f"remove {f.source.parent if f.source else 'the cache'} and try again")
    info = tarfile.TarInfo(f.name)
    info.size = len(data)
    info.mode = f.mode
    tf.addfile(info, io.BytesIO(data))
    return len(data)


def pack(files: list[BundleFile], out: IO[bytes], gzip_level: int = 0) -> int:
    """Writes the tar stream of files to out (gzip-compressed at gzip_level when > 0); returns the bytes of file
    content packed."""
    import gzip

    total = 0
    sink: IO[bytes] = out
    if gzip_level:
        sink = cast(IO[bytes], gzip.GzipFile(fileobj=out, mode="wb", compresslevel=gzip_level, mtime=0))
    try:
        with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for f in files:
                total += _add(tf, f)
    finally:
        if sink is not out:
            sink.close()
    return total


def install(runner: CommandRunner, dest: PurePosixPath, files: list[BundleFile], *, last: str = "",
            gzip_level: int = 0) -> int:
    """Installs files into dest on the machine in one command; returns the bytes of file content sent. With
    gzip_level > 0 the stream travels compressed (worth it where the link, not the machine, is the slow part:
    SSH into an emulated guest moves a few MB/s, its gzip unpacks faster than that)."""
    if not files:
        return 0
    tmp = dest.parent / f".{dest.name}.minisand-{secrets.token_hex(4)}"
    with tempfile.TemporaryFile() as stream:
        sent = pack(files, stream, gzip_level)
        stream.seek(0)
        out, err = io.BytesIO(), io.BytesIO()
        argv = install_argv(dest, tmp, last, "gzip" if gzip_level else "none")
        code = runner.stream(argv, sudo=True, stdin=stream, stdout=out, stderr=err, timeout=900)
    if code != 0:
        detail = " | ".join(err.getvalue().decode(errors="replace").strip().splitlines()[-3:])
        raise MinisandError(f"installing {', '.join(f.name for f in files)} into {dest} failed on {runner.where}"
                            f" (exit {code}){': ' + detail if detail else ''}", code=ExitCode.GUEST_ERROR,
                            hint="`minisand logs` shows the command log")
    return sent
