"""Many small files on a machine in one command each way: read them all (a tar stream of the ones that exist),
write the ones whose content differs (one tar stream, each file then installed atomically: a temporary file in
its own folder, renamed over the old one, in the order given).

Under emulation each command costs the guest an SSH channel, sudo and a shell (about half a second here);
minisand's provisioning reads and writes a dozen small files per node."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from minisand.runner.base import CommandRunner

# Constant scripts: every path arrives as a positional parameter.
_READ = 'tar -c -f - -P -h --hard-dereference --ignore-failed-read -- "$@" 2>/dev/null; true'
_WRITE = ('set -e; s=$1; shift; umask 077; mkdir -p -- "$s"; tar -x -f - -C "$s" --no-same-owner -p; '
          'while [ $# -gt 1 ]; do n=$1; d=$2; shift 2; mkdir -p -- "${d%/*}"; t="${d%/*}/.${d##*/}.minisand-tmp"; '
          'cp -p -- "$s/$n" "$t"; mv -f -- "$t" "$d"; done; rm -rf -- "$s"')
STAGING_DIR = PurePosixPath("/var/tmp")  # where the stream is unpacked first (then removed)


@dataclass(frozen=True)
class FileSpec:
    data: bytes
    mode: int = 0o644


def read_argv(paths: Sequence[PurePosixPath]) -> list[str]:
    return ["sh", "-c", _READ, "minisand-read", *(str(p) for p in paths)]


def write_argv(staging: PurePosixPath, dests: Sequence[PurePosixPath]) -> list[str]:
    pairs = [a for i, d in enumerate(dests) for a in (str(i), str(d))]
    return ["sh", "-c", _WRITE, "minisand-write", str(staging), *pairs]


def parse_tar(data: bytes) -> dict[PurePosixPath, bytes]:
    """The regular files in a tar stream, by absolute path."""
    out: dict[PurePosixPath, bytes] = {}
    if not data:
        return out
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for member in tf.getmembers():
            if member.isfile():
                f = tf.extractfile(member)
                if f is not None:
                    out[PurePosixPath("/" + member.name.lstrip("/"))] = f.read()
    return out


def pack(files: Sequence[tuple[str, FileSpec]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, spec in files:
            info = tarfile.TarInfo(name)
            info.size = len(spec.data)
            info.mode = spec.mode
            tf.addfile(info, io.BytesIO(spec.data))
    return buf.getvalue()


def read_files(runner: CommandRunner, paths: Sequence[PurePosixPath]) -> dict[PurePosixPath, bytes]:
    """The content of each path that is a readable file (following symlinks); missing ones are left out."""
    if not paths:
        return {}
    res = runner.run(read_argv(paths), sudo=True, check=False, timeout=120)
    return parse_tar(res.stdout) if res.ok else {}


def write_files(runner: CommandRunner, files: Mapping[PurePosixPath, FileSpec],
                staging_dir: PurePosixPath = STAGING_DIR) -> None:
    """Writes every file (creating folders), each atomically, in the order of the mapping."""
    if not files:
        return
    import secrets

    dests = list(files)
    staging = staging_dir / f"minisand-files.{secrets.token_hex(4)}"
    data = pack([(str(i), files[d]) for i, d in enumerate(dests)])
    runner.run(write_argv(staging, dests), sudo=True, input=data, timeout=300)


def sync_files(runner: CommandRunner, files: Mapping[PurePosixPath, FileSpec],
               staging_dir: PurePosixPath = STAGING_DIR) -> list[PurePosixPath]:
    """Writes the files whose content differs from the machine's; returns those paths (two commands at most)."""
    current = read_files(runner, list(files))
    changed = {p: spec for p, spec in files.items() if current.get(p) != spec.data}
    write_files(runner, changed, staging_dir)
    return list(changed)
