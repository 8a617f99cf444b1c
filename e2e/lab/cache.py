"""The lab's cache directory (outside the repository) and resumable, timed build steps.

Every built artifact lives in its own directory keyed by version (and a short recipe hash). A step builds into a
temporary sibling directory and renames it into place only when it succeeded, so a failed or interrupted step
never leaves a half-built artifact behind: the next run simply starts that step again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

COMPLETE = ".complete"


def default_root() -> Path:
    env = os.environ.get("MINISAND_LAB_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "minisand-lab"
    return root.expanduser().absolute()


def recipe_hash(*parts: object) -> str:
    """A short stable hash of whatever defines how an artifact is built."""
    text = json.dumps([str(p) for p in parts], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def log(message: str) -> None:
    print(f"[lab] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LabCache:
    root: Path

    @classmethod
    def default(cls) -> LabCache:
        return cls(default_root())

    def artifact(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    @property
    def debs(self) -> Path:
        return self.root / "debs"

    @property
    def registry_storage(self) -> Path:
        return self.root / "registry"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    def timings_file(self) -> Path:
        return self.logs / "timings.jsonl"

    def record_timing(self, step: str, seconds: float, cached: bool) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"step": step, "seconds": round(seconds, 2), "cached": cached, "time": time.time()})
        with self.timings_file().open("a") as f:
            f.write(line + "\n")


def is_complete(dest: Path) -> bool:
    return (dest / COMPLETE).is_file()


@contextlib.contextmanager
def locked(dest: Path) -> Iterator[None]:
    """An exclusive lock on building dest (two lab builds at once wait for each other)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (dest.parent / f".lock-{dest.name}").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_step(cache: LabCache, step: str, dest: Path, build: Callable[[Path], None]) -> Path:
    """Run build(tmpdir) unless dest is already complete; rename tmpdir to dest on success."""
    start = time.monotonic()
    if is_complete(dest):
        cache.record_timing(step, time.monotonic() - start, cached=True)
        log(f"{step}: cached ({dest})")
        return dest
    with locked(dest):
        if is_complete(dest):
            log(f"{step}: built meanwhile by another process ({dest})")
            return dest
        _build_into(cache, step, dest, build, start)
    return dest


def _build_into(cache: LabCache, step: str, dest: Path, build: Callable[[Path], None], start: float) -> None:
    log(f"{step}: building into {dest}")
    tmp = dest.parent / f".tmp-{dest.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        (tmp / COMPLETE).write_text(f"{time.time()}\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - start
    cache.record_timing(step, elapsed, cached=False)
    log(f"{step}: built in {elapsed:.1f}s")


@contextlib.contextmanager
def timed(cache: LabCache, step: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    cache.record_timing(step, elapsed, cached=False)
    log(f"{step}: {elapsed:.1f}s")
