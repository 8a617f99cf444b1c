"""How many bytes a download may write: the expected size when the caller knows it, else what the server
announces, and never more than a hard limit for the kind of file."""

from __future__ import annotations

from enum import StrEnum

from minisand.download.failures import SourceFailed

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class FileKind(StrEnum):
    BINARY = "binary"  # kubelet/kubeadm/kubectl (~60-120 MB), runsc (~60 MB)
    ISO = "ISO"  # the guest ISO (a few hundred MB)
    CHECKSUM = "checksum file"  # `.sha256`/`.sha512`: one line, or a few for a SUMS file


HARD_LIMITS: dict[FileKind, int] = {
    FileKind.BINARY: 512 * MiB,
    FileKind.ISO: 4 * GiB,
    FileKind.CHECKSUM: 4 * KiB,
}


def human(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def check_expected(kind: FileKind, expected: int | None) -> None:
    """A caller's expected size must fit the kind's hard limit (a programming error otherwise)."""
    if expected is not None and not 0 <= expected <= HARD_LIMITS[kind]:
        raise ValueError(f"expected size {expected} is outside 0..{HARD_LIMITS[kind]} for a {kind}")


def cap(kind: FileKind, expected: int | None, announced: int | None = None) -> int:
    """The most bytes the whole file may have. `announced` is the full size the server states (Content-Length of
    a 200, the total of a Content-Range); raises SourceFailed when it contradicts `expected` or exceeds the hard
    limit."""
    hard = HARD_LIMITS[kind]
    if announced is not None:
        if expected is not None and announced != expected:
            raise SourceFailed(f"announces {announced} bytes, expected {expected}")
        if announced > hard:
            raise SourceFailed(f"announces {announced} bytes, over the {human(hard)} limit for a {kind}")
    if expected is not None:
        return expected
    if announced is not None:
        return announced
    return hard


def over_cap(written: int, limit: int) -> SourceFailed:
    return SourceFailed(f"body longer than {limit} bytes: cut off")
