"""e2e.test, Kubernetes' end-to-end test binary, compiled from the k8s.io/kubernetes module with `go test -c`.

Two variants, both in the lab's Kubernetes wrapper module (staging replaces, version ldflags):
- "full": upstream's own test/e2e package, every spec of the suite (the `e2e.test` Kubernetes releases ship);
- "node": data/e2e_subset_test.go, the same runner (flags, embedded files, suite setup) with only the node-level
  specs compiled in (test/e2e/common/{node,network,storage} and test/e2e/node): the conformance subset's specs
  at a fraction of the compile time.
It is a host program (the conformance runner starts it against a cluster), cached but not served.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from e2e.lab import programs
from e2e.lab.cache import LabCache, build_step, recipe_hash
from e2e.lab.errors import LabError
from e2e.lab.gomod import GoProgram, build_go_test, render_go_mod

E2E_PACKAGE = "k8s.io/kubernetes/test/e2e"
VARIANTS = ("full", "node")
DEFAULT_VARIANT = "full"
BINARY = "e2e.test"


def e2e_program(variant: str, version: str, kubernetes_go_mod: str, commit: str, build_date: str) -> GoProgram:
    if variant not in VARIANTS:
        raise LabError(f"unknown e2e.test variant {variant!r}", f"use one of: {', '.join(VARIANTS)}")
    base = programs.kubernetes(version, kubernetes_go_mod, commit, build_date)
    if variant == "full":
        return GoProgram(name="e2e-test", requires=base.requires, replaces=base.replaces, packages=(E2E_PACKAGE,),
                         ldflags=base.ldflags)
    return GoProgram(name="e2e-subset", requires=base.requires, replaces=base.replaces, packages=(),
                     ldflags=base.ldflags, main_source=programs.data_text("e2e_subset_test.go"))


def build_e2e_test(cache: LabCache, variant: str, version: str, kubernetes_go_mod: str, commit: str,
                   build_date: str) -> Path:
    """The cached e2e.test of variant for Kubernetes version (built when missing)."""
    prog = e2e_program(variant, version, kubernetes_go_mod, commit, build_date)
    key = f"{version}-{variant}-{recipe_hash(render_go_mod(prog), prog.packages, prog.ldflags, prog.main_source)}"
    logfile = cache.logs / f"go-e2e-test-{key}.log"

    def build(tmp: Path) -> None:
        package = E2E_PACKAGE if variant == "full" else "."
        timings = build_go_test(prog, package, tmp / "src", tmp / "bin" / BINARY, logfile,
                                test_source=prog.main_source)
        (tmp / "timings.json").write_text(json.dumps(timings))
        for step, seconds in timings.items():
            cache.record_timing(f"e2e.test ({variant}) go {step}", seconds, cached=False)
        check_runs(tmp / "bin" / BINARY, version)

    dest = build_step(cache, f"e2e.test {version} ({variant})", cache.artifact("e2e-test", key), build)
    return dest / "bin" / BINARY


def check_runs(binary: Path, version: str) -> None:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0 or version not in out.stdout:
        raise LabError(f"{binary} --version printed {out.stdout.strip()[:200]!r} (exit {out.returncode})",
                       "see the Go log in the lab's logs/")


def list_images(binary: Path) -> list[str]:
    """The images the suite uses (`e2e.test --list-images`), one reference per line."""
    out = subprocess.run([str(binary), "--list-images"], capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise LabError(f"{binary} --list-images failed: {out.stderr.strip()[-300:]}", "rebuild e2e.test")
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]
