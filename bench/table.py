"""One command, one run, one cache per driver: what a user waits for with the qemu driver (TCG here) next to the
none driver (this host, native: the reference), and the ratio qemu/none. Offline against the lab.

    python -m bench.table [--drivers qemu,none] [--json FILE] [--settle S]

Per driver, on a fresh MINISAND_HOME (so the first start has an empty cache):
  cold start (empty cache) -> delete -> new cluster (warm cache) -> idle memory -> `addons enable gvisor` -> first
  gVisor pod Ready -> `stop` -> `start` (a resume where the driver saves state) -> a new pod Running ->
  `pause`/`unpause` (when minisand has them) -> `stop --cold` (else `stop`) -> `start` -> delete ->
  a bare machine (`start --no-kubernetes`: boot to SSH, idle memory) -> delete.
Every step records its exit code: a failing step is reported, not hidden, and the run goes on where it can.
Bytes downloaded come from the lab's access logs (binary mirror + registry), so the guest's own pulls count.

Root (qemu, the none driver's host daemons, the lab's registry). Run it under the VM lock:
    flock /tmp/minisand-vm.lock .venv/bin/python -m bench.table --json /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.lab import Lab
from e2e.lab.endpoints import LabEndpoints
from tests.integration.helpers.cli import CLI

GUEST_REGISTRY = "10.0.2.100:5000"
CLUSTER_PROCS = ("containerd", "kubelet", "etcd", "kube-apiserver", "kube-controller", "kube-scheduler",
                 "kube-proxy", "coredns", "containerd-shim", "runsc", "pause")
_BYTES = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "[A-Z]+ \S+ [^"]*" \d{3} (\d+)')

# (key, label, unit): the rows of the table, in order
ROWS = (
    ("cold_start", "cold start, empty cache", "s"),
    ("warm_start", "new cluster, warm cache", "s"),
    ("preload_phase", "  preload phase of it", "s"),
    ("boot_to_ssh", "  boot to SSH (first boot)", "s"),
    ("stop", "stop", "s"),
    ("start_after_stop", "start after stop (resume)", "s"),
    ("answers_after_start", "  + a new pod Running", "s"),
    ("pause", "pause", "s"),
    ("unpause", "unpause", "s"),
    ("cold_stop", "stop --cold", "s"),
    ("cold_restart", "start after a cold stop", "s"),
    ("addons_enable_gvisor", "addons enable gvisor", "s"),
    ("gvisor_pod_ready", "first gVisor pod Ready", "s"),
    ("bare_boot_to_ssh", "boot to SSH (bare machine)", "s"),
    ("idle_memory_bare", "idle memory, bare machine", "MiB"),
    ("idle_memory_cluster", "idle memory, cluster", "MiB"),
    ("bytes_cold", "bytes downloaded, cold start", "MB"),
    ("bytes_warm", "bytes downloaded, warm start", "MB"),
)


@dataclass
class Step:
    seconds: float
    exit: int
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        # the 1-minute load average when the step ended: on a shared 2-core machine, other work skews TCG timings
        return {"seconds": round(self.seconds, 1), "exit": self.exit, "load": round(os.getloadavg()[0], 1),
                **({"error": self.error} if self.error else {})}


@dataclass
class Driver:
    name: str
    lab: Lab
    ep: LabEndpoints  # as the minisand process sees it
    home: Path
    prefix: list[str]
    flags: list[str]
    results: dict[str, Any] = field(default_factory=dict)

    def cli(self, profile: str) -> CLI:
        return CLI(self.home, profile, prefix=self.prefix)

    def step(self, key: str, cli: CLI, *args: str, stdin: str | None = None) -> Step:
        t0 = time.monotonic()
        proc = cli.run(*args, stdin=stdin)
        s = Step(time.monotonic() - t0, proc.returncode,
                 "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1][:300])
        self.results[key] = s.as_dict()
        return s

    def downloaded(self) -> int:
        return sum(r.bytes for r in self.lab.binary_requests()) + _registry_bytes(self.lab.registry_log)


def _registry_bytes(log: Path) -> int:
    if not log.is_file():
        return 0
    total = 0
    for line in log.read_text(errors="replace").splitlines():
        m = _BYTES.match(line)
        if m:
            total += int(m.group(1))
    return total


def _phases(cli: CLI) -> dict[str, Any]:
    path = cli.home / "profiles" / cli.profile / "last-start.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return data


def _has_command(cli: CLI, *args: str) -> bool:
    return cli.run(*args, "--help").returncode == 0


def _pod(name: str, runtime_class: str | None = None) -> str:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "docker.io/library/busybox:1.35.0",
                                            "command": ["sleep", "3600"]}], "terminationGracePeriodSeconds": 0}
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def _pod_ready(d: Driver, cli: CLI, key: str, name: str, runtime_class: str | None = None) -> None:
    """Seconds from `kubectl apply` of a pod to its Ready condition."""
    t0 = time.monotonic()
    applied = cli.run("kubectl", "--", "apply", "-f", "-", stdin=_pod(name, runtime_class))
    waited = cli.run("kubectl", "--", "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=900s")
    code = applied.returncode or waited.returncode
    d.results[key] = Step(time.monotonic() - t0, code, "" if code == 0 else
                          (waited.stderr or applied.stderr).strip()[-300:]).as_dict()
    cli.run("kubectl", "--", "delete", "pod", name, "--grace-period=0", "--force", "--wait=false")


def _memory(d: Driver, cli: CLI, key: str, settle: float) -> None:
    time.sleep(settle)
    if d.name == "none":
        d.results[key] = round(_rss_mib(CLUSTER_PROCS), 1)
        return
    proc = cli.run("ssh", "--", "free", "-m")
    lines = proc.stdout.splitlines()
    d.results[key] = int(lines[1].split()[2]) if proc.returncode == 0 and len(lines) > 1 else None


def _rss_mib(names: tuple[str, ...]) -> float:
    """The none driver's memory: the resident set of the cluster's processes on this host."""
    total = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            comm = (p / "comm").read_text().strip()
            if not any(comm.startswith(n) for n in names):
                continue
            for line in (p / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def series(d: Driver, settle: float) -> dict[str, Any]:
    """The whole measurement for one driver (see the module docstring)."""
    a, b, bare = d.cli("bench-a"), d.cli("bench-b"), d.cli("bench-bare")
    mark = d.downloaded()
    d.step("cold_start", a, "start", *d.flags)
    d.results["bytes_cold"] = d.downloaded() - mark
    d.results["cold_start_phases"] = _phases(a)
    a.run("delete")
    mark = d.downloaded()
    if d.step("warm_start", b, "start", *d.flags).exit != 0:
        b.run("delete")
        return d.results
    d.results["bytes_warm"] = d.downloaded() - mark
    phases = _phases(b)
    d.results["warm_start_phases"] = phases
    d.results["preload_phase"] = phases.get("phases", {}).get("preload")
    d.results["boot_to_ssh"] = phases.get("phases", {}).get("boot") if d.name != "none" else None
    _memory(d, b, "idle_memory_cluster", settle)
    if d.step("addons_enable_gvisor", b, "addons", "enable", "gvisor").exit == 0:
        addon = d.home / "profiles" / b.profile / "addon-gvisor.json"
        if addon.exists():
            d.results["gvisor_probes"] = json.loads(addon.read_text())
        _pod_ready(d, b, "gvisor_pod_ready", "bench-gvisor", "gvisor")
    _restarts(d, b)
    b.run("delete")
    d.step("bare_start", bare, "start", *d.flags, "--no-kubernetes")
    d.results["bare_boot_to_ssh"] = _phases(bare).get("phases", {}).get("boot") if d.name != "none" else None
    _memory(d, bare, "idle_memory_bare", settle)
    bare.run("delete")
    return d.results


def _restarts(d: Driver, b: CLI) -> None:
    d.step("stop", b, "stop")
    d.results["status_after_stop"] = b.run("status", "-o", "json").stdout[-600:]
    d.step("start_after_stop", b, "start", *d.flags)
    d.results["start_after_stop_phases"] = _phases(b)
    _pod_ready(d, b, "answers_after_start", "bench-after-start")
    if _has_command(b, "pause"):
        d.step("pause", b, "pause")
        d.step("unpause", b, "unpause")
        _pod_ready(d, b, "answers_after_unpause", "bench-after-unpause")
    cold = "--cold" in b.run("stop", "--help").stdout
    d.results["cold_stop_kind"] = "stop --cold" if cold else "stop (no --cold in this minisand)"
    d.step("cold_stop", b, "stop", *(["--cold"] if cold else []))
    d.step("cold_restart", b, "start", *d.flags)
    d.results["cold_restart_phases"] = _phases(b)
    _pod_ready(d, b, "answers_after_cold_restart", "bench-after-cold")


def qemu_flags(ep: LabEndpoints) -> list[str]:
    """The seed demo's flags: cn preset, everything through the lab, no guest egress."""
    from minisand.iso.build import build_iso

    iso = build_iso(None)
    reg = f"http://{GUEST_REGISTRY}"
    return ["--driver=qemu", "--container-runtime=containerd", f"--iso-url=file://{iso.iso}",
            f"--iso-checksum=sha256:{iso.sha256}", "--memory=4g", "--no-guest-egress",
            f"--guest-forward={GUEST_REGISTRY}=127.0.0.1:{ep.registry.rsplit(':', 1)[1]}",
            "--image-mirror-country=cn", f"--registry-mirror=registry.cn-hangzhou.aliyuncs.com={reg}",
            f"--registry-mirror=docker.io={reg}", f"--binary-mirror={ep.binary_mirror}",
            f"--gvisor-mirror={ep.gvisor_mirror}", "--offline", "--wait-timeout=40m"]


def none_flags(ep: LabEndpoints) -> list[str]:
    reg = f"http://{ep.registry}"
    return ["--driver=none", "--container-runtime=containerd", "--image-mirror-country=cn",
            f"--registry-mirror=registry.cn-hangzhou.aliyuncs.com={reg}", f"--registry-mirror=docker.io={reg}",
            f"--binary-mirror={ep.binary_mirror}", f"--gvisor-mirror={ep.gvisor_mirror}", "--offline",
            "--wait-timeout=15m"]


def run_qemu(lab: Lab, ep: LabEndpoints, tmp: Path, settle: float) -> dict[str, Any]:
    d = Driver("qemu", lab, ep, tmp / "qemu-home", [], qemu_flags(ep))
    try:
        return series(d, settle)
    finally:
        d.cli("bench-a").run("delete", "--all")


@contextmanager
def _none_host(lab: Lab) -> Iterator[tuple[list[str], LabEndpoints]]:
    from e2e.netenv import host_leftovers, host_state_created_here, node_namespace

    if host_leftovers():
        raise SystemExit(f"this host has cluster state in {host_leftovers()}: the none benchmark needs a clean host")
    with host_state_created_here(), node_namespace("bench") as ns:
        yield ns.argv(), lab.expose_in_netns(ns.path)


def run_none(lab: Lab, tmp: Path, settle: float) -> dict[str, Any]:
    with _none_host(lab) as (prefix, inside):
        d = Driver("none", lab, inside, tmp / "none-home", prefix, none_flags(inside))
        try:
            return series(d, settle)
        finally:
            d.cli("bench-a").run("delete", "--all")
            _kill_leftovers()


def _kill_leftovers() -> None:
    """The none driver's delete stops its daemons; anything of the cluster still alive (a failed step) is killed
    by PID, and said."""
    import signal

    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            comm = (p / "comm").read_text().strip()
            zombie = (p / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            continue
        if not zombie and any(comm.startswith(n) for n in CLUSTER_PROCS if n != "pause"):
            print(f"bench: killing leftover {comm} ({p.name})", file=sys.stderr)
            os.kill(int(p.name), signal.SIGKILL)


def _value(results: dict[str, Any], key: str) -> float | None:
    v = results.get(key)
    if isinstance(v, dict):
        return float(v["seconds"]) if v.get("exit") == 0 else None
    if key.startswith("bytes_") and isinstance(v, int):
        return v / 1e6
    return float(v) if isinstance(v, (int, float)) else None


def _cell(results: dict[str, Any], key: str) -> str:
    v = results.get(key)
    if isinstance(v, dict) and v.get("exit") != 0:
        return f"exit {v.get('exit')}"
    x = _value(results, key)
    return "-" if x is None else f"{x:.1f}"


def table(report: dict[str, dict[str, Any]]) -> str:
    q, n = report.get("qemu", {}), report.get("none", {})
    lines = [f"{'':<34}{'qemu':>10}{'none':>10}{'qemu/none':>11}", "-" * 65]
    loads = [v["load"] for res in report.values() for v in res.values() if isinstance(v, dict) and "load" in v]
    for key, label, unit in ROWS:
        qv, nv = _value(q, key), _value(n, key)
        ratio = f"{qv / nv:.1f}x" if qv is not None and nv else "-"
        lines.append(f"{label + f' ({unit})':<34}{_cell(q, key):>10}{_cell(n, key):>10}{ratio:>11}")
    if loads:
        lines.append(f"load average (1 min) at the end of the steps: {min(loads)}-{max(loads)} on "
                     f"{os.cpu_count()} CPUs")
    for name, res in report.items():
        for k in ("cold_start_phases", "warm_start_phases", "start_after_stop_phases", "cold_restart_phases"):
            ph = res.get(k, {}).get("phases")
            if ph:
                lines.append(f"{name} {k}: " + ", ".join(f"{p} {s:.1f}" for p, s in ph.items()))
        if "gvisor_probes" in res:
            lines.append(f"{name} gvisor probes: {res['gvisor_probes']}")
        if "cold_stop_kind" in res:
            lines.append(f"{name} cold stop: {res['cold_stop_kind']}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drivers", default="qemu,none", help="comma-separated: qemu, none")
    parser.add_argument("--json", type=Path, help="write the measurements here too")
    parser.add_argument("--settle", type=float, default=30.0, help="idle seconds before reading memory")
    args = parser.parse_args()
    drivers = [x for x in args.drivers.split(",") if x]
    runs: dict[str, Callable[[Lab, LabEndpoints, Path], dict[str, Any]]] = {
        "qemu": lambda lab, ep, tmp: run_qemu(lab, ep, tmp, args.settle),
        "none": lambda lab, ep, tmp: run_none(lab, tmp, args.settle),
    }
    report: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="minisand-bench-") as tmp:
        lab = Lab(run_dir=Path(tmp) / "lab")
        ep = lab.start()
        try:
            for name in drivers:
                t0 = time.monotonic()
                report[name] = runs[name](lab, ep, Path(tmp))
                report[name]["bench_seconds"] = round(time.monotonic() - t0, 1)
                if args.json:
                    args.json.write_text(json.dumps(report, indent=2))
        finally:
            stuck = lab.stop()
    print(table(report))
    leftovers = subprocess.run(["sh", "-c", "ps -eo pid,comm | grep -E 'qemu|containerd|kubelet|regist' || true"],
                               capture_output=True, text=True, check=False).stdout.strip()
    print(f"processes left: {leftovers or 'none'}{f' (lab: {stuck})' if stuck else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
