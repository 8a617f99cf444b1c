"""How fast `minisand --help` answers (target < 0.3 s) and which heavy modules it imports (none).

    python -m bench.cli_help [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "minisand", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    probe = ("import sys; from minisand.cli.app import run; run(['--help']); "
             "print([m for m in ('kubernetes','paramiko','libvirt','requests','jinja2','yaml','rich') "
             "if m in sys.modules], file=sys.stderr)")
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stderr.strip()
    print(f"minisand --help: median {statistics.median(times):.3f}s, min {min(times):.3f}s, max {max(times):.3f}s "
          f"over {args.runs} runs; heavy modules imported: {heavy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
