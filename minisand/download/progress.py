"""Progress reporting for downloads: a factory of sinks, one per transfer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ProgressSink(Protocol):
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


ProgressFactory = Callable[[str, "int | None"], ProgressSink]


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def no_progress(label: str, total: int | None) -> ProgressSink:
    return _NoProgress()


def default_progress(label: str, total: int | None) -> ProgressSink:
    from minisand.ui import Progress

    return Progress(label, total)
