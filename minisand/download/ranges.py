"""Resuming a `.part` file: what a server's answer to `Range: bytes=N-` means (RFC 9110 section 14.4)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int  # inclusive
    total: int | None  # None for `*`

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(header: str | None) -> ContentRange | None:
    """`bytes START-END/TOTAL` (TOTAL may be `*`); None when absent or malformed (END < START, END >= TOTAL)."""
    m = _RANGE.match(header or "")
    if not m:
        return None
    start, end = int(m.group(1)), int(m.group(2))
    total = None if m.group(3) == "*" else int(m.group(3))
    if end < start or (total is not None and end >= total):
        return None
    return ContentRange(start, end, total)


def unsatisfied_total(header: str | None) -> int | None:
    """The full size from a 416's `Content-Range: bytes */TOTAL`."""
    m = _UNSATISFIED.match(header or "")
    return int(m.group(1)) if m else None


class Resume(StrEnum):
    APPEND = "append"  # the body continues the .part
    RESTART = "restart"  # the body is the file from byte 0: truncate the .part and write it
    INVALID = "invalid"  # the answer does not fit the request: drop the .part and try again without Range


def resume_plan(have: int, status: int, content_range: str | None) -> Resume:
    """How to use a 200/206 answer to a request for bytes `have`- (have == 0: no Range was sent)."""
    if status == 200:
        return Resume.RESTART
    rng = parse_content_range(content_range)
    if status != 206 or rng is None:
        return Resume.INVALID
    if rng.start == 0:
        return Resume.RESTART  # from byte 0 (a stale .part, or a server that ignores the offset): start afresh
    if have and rng.start == have:
        return Resume.APPEND
    return Resume.INVALID
