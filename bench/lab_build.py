"""Benchmark of the lab's build: per-step wall time, cold or warm, and the cache's disk usage.

    python bench/lab_build.py            # warm: the normal cache (an unchanged version only reads the cache)
    python bench/lab_build.py --cold     # cold: a fresh lab cache AND a fresh GOCACHE (Go modules stay cached)
    python bench/lab_build.py --cold --only pause,etcd   # cold for some Go programs only
    python bench/lab_build.py --cold --pieces ""         # the core lab only (no registry/headlamp/conformance)

Prints one JSON object: steps (name, seconds, cached), total seconds, cache bytes. A cold run costs tens of
minutes of both cores: run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from e2e.lab import programs  # noqa: E402
from e2e.lab.artifacts import go_artifact  # noqa: E402
from e2e.lab.builder import build  # noqa: E402
from e2e.lab.cache import LabCache  # noqa: E402
from e2e.lab.extras import PIECES  # noqa: E402
from e2e.lab.gomod import GoProgram, origin_hash  # noqa: E402
from e2e.lab.versions import Versions  # noqa: E402


def disk_usage(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out else 0


def steps_since(cache: LabCache, since: float) -> list[dict[str, object]]:
    path = cache.timings_file()
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: r[k] for k in ("step", "seconds", "cached")} for r in rows if r["time"] >= since]


def build_only(cache: LabCache, names: list[str], versions: Versions) -> None:
    """Cold-build some Go programs by themselves (versions of etcd/coredns/pause as kubeadm v1.36 expects)."""
    work = cache.root / "gomod"
    recipes: dict[str, Callable[[], tuple[GoProgram, str]]] = {
        "pause": lambda: (programs.pause("3.10.2"), "3.10.2"),
        "etcd": lambda: (programs.etcd("v3.6.8", origin_hash("go.etcd.io/etcd/server/v3", "v3.6.8", work)),
                         "v3.6.8"),
        "coredns": lambda: (programs.coredns("v1.14.2", ""), "v1.14.2"),
        "crictl": lambda: (programs.crictl(versions.crictl), versions.crictl),
        "gvisor": lambda: (programs.gvisor(versions.gvisor, versions.gvisor_release), versions.gvisor),
    }
    for name in names:
        prog, version = recipes[name]()
        go_artifact(cache, prog, version)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cold", action="store_true", help="fresh lab cache and fresh GOCACHE")
    p.add_argument("--only", default="", help="comma-separated Go programs to build (pause,etcd,...)")
    p.add_argument("--pieces", default=",".join(PIECES), help="comma-separated optional pieces (default: all)")
    args = p.parse_args()
    versions = Versions()
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        if args.cold:
            os.environ["GOCACHE"] = str(Path(tmp) / "gocache")
            cache = LabCache(Path(tmp) / "lab")
        else:
            cache = LabCache.default()
        start = time.time()
        t0 = time.monotonic()
        if args.only:
            build_only(cache, args.only.split(","), versions)
        else:
            build(cache, versions, tuple(p for p in args.pieces.split(",") if p))
        result = {"mode": "cold" if args.cold else "warm", "total_seconds": round(time.monotonic() - t0, 1),
                  "steps": steps_since(cache, start), "lab_cache_bytes": disk_usage(cache.root)}
        if args.cold:
            result["gocache_bytes"] = disk_usage(Path(tmp) / "gocache")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
