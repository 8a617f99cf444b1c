"""Checksums: `sha256:HEX`/`sha512:HEX` values, sha256sum-format files, and file digests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from minisand.errors import ExitCode, MinisandError

CHUNK = 1 << 20  # file reads and hashing
DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}


@dataclass(frozen=True)
class Checksum:
    algo: str  # "sha256" | "sha512"
    hexdigest: str

    @classmethod
    def parse(cls, text: str) -> Checksum:
        """`sha256:HEX`, `sha512:HEX`, or a bare hex digest (its length tells the algorithm)."""
        algo, _, digest = text.strip().rpartition(":")
        digest = digest.lower()
        if not algo:
            algo = {64: "sha256", 128: "sha512"}.get(len(digest), "")
        want = DIGEST_LENGTHS.get(algo.lower())
        if want is None or len(digest) != want or any(c not in "0123456789abcdef" for c in digest):
            raise MinisandError(f"{text!r} is not a checksum", hint="use sha256:<64 hex digits>",
                                code=ExitCode.BAD_INPUT)
        return cls(algo.lower(), digest)

    def new(self) -> hashlib._Hash:
        return hashlib.new(self.algo)

    def matches(self, path: Path) -> bool:
        return path.is_file() and file_digest(path, self.algo) == self.hexdigest

    def __str__(self) -> str:
        return f"{self.algo}:{self.hexdigest}"


def parse_checksum_file(text: str, filename: str | None = None) -> str:
    """The digest from a sha256sum/sha512sum-format file (`HEX  name` lines, or a bare `HEX`)."""
    candidates: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        name = parts[1].lstrip("*") if len(parts) > 1 else None
        if filename is None or name is None or Path(name).name == filename:
            candidates.append(parts[0])
    if not candidates:
        raise MinisandError(f"no checksum for {filename or 'the file'} in the checksum file",
                            hint="pass the checksum explicitly", code=ExitCode.CHECKSUM_MISMATCH)
    return candidates[0]


def published_checksum(text: str, algo: str, filename: str | None = None) -> Checksum:
    """The `algo` digest a checksum file publishes for `filename`; MinisandError (CHECKSUM_MISMATCH) when the
    file holds none."""
    digest = parse_checksum_file(text, filename).lower()
    if len(digest) != DIGEST_LENGTHS[algo] or any(c not in "0123456789abcdef" for c in digest):
        raise MinisandError(f"the checksum file holds no {algo} digest", code=ExitCode.CHECKSUM_MISMATCH,
                            hint=f"the mirror serves a broken .{algo} file")
    return Checksum(algo, digest)


def file_digest(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
