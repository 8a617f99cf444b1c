"""python -m e2e.lab build|up|down|status — the offline lab from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from e2e.lab.cache import LabCache
from e2e.lab.e2etest import DEFAULT_VARIANT, VARIANTS
from e2e.lab.errors import LabError
from e2e.lab.extras import DEFAULT_PIECES, PIECES
from e2e.lab.lab import Lab, status_from_state, stop_from_state
from e2e.lab.versions import DEFAULT_CRICTL, DEFAULT_GVISOR, DEFAULT_KUBERNETES, Versions


def default_state(cache: LabCache) -> Path:
    return cache.run / "default" / "state.json"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m e2e.lab", description=__doc__)
    p.add_argument("--kubernetes-version", default=DEFAULT_KUBERNETES)
    p.add_argument("--crictl-version", default=DEFAULT_CRICTL)
    p.add_argument("--gvisor-version", default=DEFAULT_GVISOR, help="gvisor.dev/gvisor pseudo-version")
    p.add_argument("--with", dest="with_", action="append", default=[], choices=PIECES, metavar="PIECE",
                   help=f"add an optional piece (repeatable): {', '.join(PIECES)}; built by default: "
                        f"{', '.join(DEFAULT_PIECES)}")
    p.add_argument("--without", action="append", default=[], choices=PIECES, metavar="PIECE",
                   help="leave an optional piece out (repeatable)")
    p.add_argument("--e2e-test", default=DEFAULT_VARIANT, choices=VARIANTS,
                   help="e2e.test variant: the whole upstream suite (full) or the node-level specs only (node)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build everything the lab serves (cached)")
    up = sub.add_parser("up", help="start the mirrors detached; print the flags to give minisand")
    up.add_argument("--http-port", type=int, default=0)
    up.add_argument("--registry-port", type=int, default=0)
    up.add_argument("--state", type=Path)
    down = sub.add_parser("down", help="stop the mirrors started by up (by PID)")
    down.add_argument("--state", type=Path)
    status = sub.add_parser("status", help="are the mirrors of a state file running?")
    status.add_argument("--state", type=Path)
    return p


def pieces(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(p for p in PIECES if (p in DEFAULT_PIECES or p in args.with_) and p not in args.without)


def cmd_up(args: argparse.Namespace, versions: Versions, cache: LabCache) -> int:
    state = args.state or default_state(cache)
    if state.exists() and any(status_from_state(state).values()):
        raise LabError(f"a lab is already up (state {state})", "run: python -m e2e.lab down")
    run_dir = state.parent if args.state is None else state.parent / f"{state.stem}-run"
    lab = Lab(versions=versions, cache=cache, run_dir=run_dir, http_port=args.http_port,
              registry_port=args.registry_port, detach=True, pieces=pieces(args), e2e_variant=args.e2e_test)
    ep = lab.start()
    lab.write_state(state)
    print(ep.to_json())
    print("\nminisand flags:\n  " + " \\\n  ".join(ep.minisand_flags()), file=sys.stderr)
    return 0


def cmd_down(args: argparse.Namespace, cache: LabCache) -> int:
    state = args.state or default_state(cache)
    if not state.exists():
        print(f"no lab state at {state}: nothing to stop", file=sys.stderr)
        return 0
    leftovers = stop_from_state(state)
    if leftovers:
        raise LabError(f"could not stop: {', '.join(leftovers)}", "check the PIDs in the state file")
    print("lab stopped", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace, cache: LabCache) -> int:
    state = args.state or default_state(cache)
    if not state.exists():
        print(json.dumps({"running": False, "state": str(state)}))
        return 1
    alive = status_from_state(state)
    endpoints = json.loads(state.read_text())["endpoints"]
    print(json.dumps({"running": all(alive.values()), "processes": alive, "endpoints": endpoints}, indent=2))
    return 0 if all(alive.values()) else 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cache = LabCache.default()
    try:
        versions = Versions(args.kubernetes_version, args.crictl_version, args.gvisor_version)
        if args.command == "build":
            Lab(versions=versions, cache=cache, pieces=pieces(args), e2e_variant=args.e2e_test).build()
            return 0
        if args.command == "up":
            return cmd_up(args, versions, cache)
        if args.command == "down":
            return cmd_down(args, cache)
        return cmd_status(args, cache)
    except LabError as exc:
        print(f"lab: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
