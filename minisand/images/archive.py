"""Image archives (a docker-archive from `docker save`, or an OCI layout tar), checked before they are streamed:
the first 512-byte block must be a tar header with a valid checksum. A gzip-compressed archive is decompressed on
the fly. Nothing is read beyond the first block before the stream is handed on; the whole archive is never held
in memory."""

from __future__ import annotations

import io
import tarfile
import zlib
from typing import BinaryIO

from minisand.errors import bad_input

BLOCK = 512
CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

HINT = ("give a tar from `docker save IMAGE -o FILE`, `podman save`, `ctr images export FILE IMAGE` or "
        "`skopeo copy ... oci-archive:FILE:NAME:TAG`")


class Gunzip(io.RawIOBase):
    """A streaming gzip decoder over a binary stream (multi-member, like gzip -d)."""

    def __init__(self, src: BinaryIO, head: bytes = b"") -> None:
        self._src = src
        self._head = head
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buf = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def _feed(self) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        return self._src.read(CHUNK)

    def _decode(self, data: bytes) -> bytes:
        try:
            if self._z.eof:  # a member ended exactly at a chunk boundary: the next one starts here
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = self._z.decompress(data)
            while self._z.eof and self._z.unused_data:  # another gzip member follows in this chunk
                rest = self._z.unused_data
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out += self._z.decompress(rest)
        except zlib.error as exc:
            raise bad_input(f"the image archive is not valid gzip: {exc}", HINT,
                            reason="IMAGE_ARCHIVE_CORRUPT") from None
        return out

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        while not self._buf and not self._eof:
            data = self._feed()
            if not data:
                self._eof = True
                if not self._z.eof:
                    raise bad_input("the image archive's gzip stream is cut short", HINT,
                                    reason="IMAGE_ARCHIVE_CORRUPT")
                break
            self._buf = self._decode(data)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class Prefixed(io.RawIOBase):
    """head, then the rest of src: what was peeked is handed on unchanged."""

    def __init__(self, head: bytes, src: BinaryIO) -> None:
        self._head = head
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._src.read(len(b))
        b[: len(data)] = data
        return len(data)


def _read_exactly(src: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        data = src.read(n - len(out))
        if not data:
            break
        out += data
    return out


def check_header(block: bytes, what: str) -> None:
    """Raises BAD_INPUT unless block is a tar header block (valid checksum)."""
    if not block:
        raise bad_input(f"{what} is empty", HINT, reason="IMAGE_ARCHIVE_CORRUPT")
    if len(block) < BLOCK:
        raise bad_input(f"{what} is not an image archive: {len(block)} bytes, shorter than one tar block", HINT,
                        reason="IMAGE_ARCHIVE_CORRUPT")
    if block.startswith(ZSTD_MAGIC):
        raise bad_input(f"{what} is zstd-compressed", "decompress it first (`zstd -d`), or give the plain tar",
                        reason="IMAGE_ARCHIVE_CORRUPT")
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        raise bad_input(f"{what} is not a tar archive ({exc})", HINT, reason="IMAGE_ARCHIVE_CORRUPT") from None


def open_checked(src: BinaryIO, what: str) -> BinaryIO:
    """src as a stream of tar bytes (gunzipped when needed), after checking its first block; raises BAD_INPUT
    (one line) for an empty, short, zstd or non-tar input."""
    head = _read_exactly(src, BLOCK)
    if head.startswith(GZIP_MAGIC):
        src = io.BufferedReader(Gunzip(src, head), CHUNK)
        head = _read_exactly(src, BLOCK)
    check_header(head, what)
    return io.BufferedReader(Prefixed(head, src), CHUNK)
