"""Per-phase timings of `start` (boot, provision, binaries, preload, kubeadm, wait), kept in the profile for
`bench/` and the log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from minisand.fsutil import atomic_write_text

log = logging.getLogger(__name__)


class PhaseTimer:
    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.counters: dict[str, int] = {}
        self._start = time.monotonic()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - t0
            log.info("phase %s: %.2fs", name, self.phases[name])

    def count(self, name: str, n: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def save(self, path: Path) -> None:
        data = {"total": round(time.monotonic() - self._start, 3),
                "phases": {k: round(v, 3) for k, v in self.phases.items()}, "counters": self.counters}
        atomic_write_text(path, json.dumps(data, indent=2) + "\n", mode=0o600)
