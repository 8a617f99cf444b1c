"""How one source fails, and the one-line error when every source failed.

A source failure never escapes the mirror loop: SourceFailed moves on to the next source, Retryable tries the same
URL again (bounded) and becomes SourceFailed when the attempts run out. Only the summary reaches the caller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from minisand.errors import ExitCode, MinisandError

MAX_REASON = 160  # characters of one source's reason in the summary


class SourceFailed(Exception):
    """This source cannot serve the file: try the next one."""

    def __init__(self, message: str, code: ExitCode = ExitCode.DOWNLOAD_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Retryable(Exception):
    """A transient failure: the same URL is tried again (resuming the .part file when it is a valid prefix)."""


@dataclass(frozen=True)
class Failure:
    url: str
    reason: str
    code: ExitCode


def source_names(urls: Sequence[str]) -> list[str]:
    """Short names for the sources: host[:port] when that tells them apart, else host[:port]/path."""
    hosts = [_label(u) for u in urls]
    return [h if hosts.count(h) == 1 else _label(u, with_path=True) for u, h in zip(urls, hosts, strict=True)]


def _label(url: str, with_path: bool = False) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme == "file" or not parts.netloc:
        return unquote(parts.path) or url or "(empty URL)"
    return parts.netloc.rpartition("@")[2] + (parts.path if with_path else "")


def short(reason: str) -> str:
    text = " ".join(reason.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def summary(what: str, failures: Sequence[Failure], hint: str | None = None) -> MinisandError:
    """One line naming each source's failure. CHECKSUM_MISMATCH when any source served wrong content (the file
    or the checksum may be wrong), else DOWNLOAD_ERROR."""
    names = source_names([f.url for f in failures])
    code = ExitCode.CHECKSUM_MISMATCH if any(f.code == ExitCode.CHECKSUM_MISMATCH for f in failures) \
        else ExitCode.DOWNLOAD_ERROR
    if hint is None:
        hint = "check the mirrors and your network; nothing from this attempt was kept in the cache"
        if code == ExitCode.CHECKSUM_MISMATCH:
            hint = "the file is corrupt or the checksum is wrong; nothing was kept in the cache"
    detail = "; ".join(f"{n}: {short(f.reason)}" for n, f in zip(names, failures, strict=True))
    return MinisandError(f"could not download {what} ({detail})", hint=hint, code=code)
