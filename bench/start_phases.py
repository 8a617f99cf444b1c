"""Where `minisand start` spends its time, per phase (iso, boot, provision, binaries, preload, kubeadm, wait,
addons), for a cold cache, a warm cache (a new cluster after the first) and a restart (stop, then start), with
the bytes each start downloaded (target for a warm start: 0). Offline, against the lab.

    python -m bench.start_phases [--driver none|qemu] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from e2e.lab import Lab
from tests.integration.helpers.cli import CLI

PHASES = ("iso", "boot", "provision", "binaries", "preload", "kubeadm", "wait", "addons")


def _flags_none(ep: Any) -> list[str]:
    reg = f"http://{ep.registry}"
    return ["--driver=none", f"--binary-mirror={ep.binary_mirror}", "--offline",
            f"--registry-mirror=registry.k8s.io={reg}", f"--registry-mirror=docker.io={reg}"]


def _flags_qemu(ep: Any) -> list[str]:
    from minisand.iso.build import build_iso

    iso = build_iso(None)
    reg = "http://10.0.2.100:5000"
    return ["--driver=qemu", f"--iso-url=file://{iso.iso}", f"--iso-checksum=sha256:{iso.sha256}", "--memory=4g",
            "--no-guest-egress", f"--guest-forward=10.0.2.100:5000=127.0.0.1:{ep.registry.rsplit(':', 1)[1]}",
            f"--registry-mirror=registry.k8s.io={reg}", f"--registry-mirror=docker.io={reg}",
            f"--binary-mirror={ep.binary_mirror}", "--offline", "--wait-timeout=40m"]


def _measure(cli: CLI, flags: list[str], label: str) -> dict[str, Any]:
    t0 = time.monotonic()
    cli.ok("start", *flags)
    wall = time.monotonic() - t0
    data: dict[str, Any] = json.loads((cli.home / "profiles" / cli.profile / "last-start.json").read_text())
    data["wall"] = round(wall, 1)
    data["label"] = label
    return data


def run_qemu() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="minisand-bench-") as tmp, Lab(run_dir=Path(tmp) / "lab") as ep:
        home = Path(tmp) / "home"
        return _series(CLI(home, "bench-a"), CLI(home, "bench-b"), _flags_qemu(ep))


def _series(first: CLI, second: CLI, flags: list[str]) -> list[dict[str, Any]]:
    out = [_measure(first, flags, "cold cache (first cluster)")]
    first.ok("delete")
    out.append(_measure(second, flags, "warm cache (new cluster)"))
    second.ok("stop")
    out.append(_measure(second, flags, "restart (stop, start)"))
    second.ok("delete")
    return out


def run_none() -> list[dict[str, Any]]:
    from e2e.netenv import host_leftovers, host_state_created_here, node_namespace

    if host_leftovers():
        raise SystemExit(f"this host has cluster state in {host_leftovers()}: the none benchmark needs a clean host")

    with tempfile.TemporaryDirectory(prefix="minisand-bench-") as tmp:
        lab = Lab(run_dir=Path(tmp) / "lab")
        lab.start()
        try:
            with host_state_created_here(), node_namespace("bench") as ns:
                inside = lab.expose_in_netns(ns.path)
                home = Path(tmp) / "home"
                return _series(CLI(home, "bench-a", prefix=ns.argv()), CLI(home, "bench-b", prefix=ns.argv()),
                               _flags_none(inside))
        finally:
            lab.stop()


def table(results: list[dict[str, Any]]) -> str:
    head = f"{'start':<28}" + "".join(f"{p:>10}" for p in PHASES) + f"{'total':>9}{'downloaded':>13}"
    lines = [head]
    for r in results:
        phases = r["phases"]
        lines.append(f"{r['label']:<28}" + "".join(f"{phases.get(p, 0.0):>10.1f}" for p in PHASES)
                     + f"{r['total']:>9.1f}{r['counters'].get('downloaded_bytes', 0):>13,}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--driver", choices=("none", "qemu"), default="none")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = run_none() if args.driver == "none" else run_qemu()
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
