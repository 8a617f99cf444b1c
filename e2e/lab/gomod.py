"""Building Go programs from their published modules through the Go module proxy.

A wrapper module (go.mod + a tools.go importing the wanted main packages) pins the upstream module; `go mod tidy`
resolves it; one `go build -o DIR/ pkg...` builds every binary at once so they share compilation. The default
GOCACHE is reused, so a rebuild after a cache wipe of the lab is fast.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from e2e.lab.cache import log
from e2e.lab.errors import LabError

GO_LANG_VERSION = "1.26"
MODULE_PREFIX = "minisand.lab"


@dataclass(frozen=True)
class GoProgram:
    name: str  # also the wrapper module's last path element, so a main_source binary is named after it
    requires: tuple[tuple[str, str], ...]  # (module, version)
    packages: tuple[str, ...]  # main packages to build from the required modules
    replaces: tuple[tuple[str, str], ...] = ()  # (module, version)
    ldflags: tuple[str, ...] = ()  # beyond -s -w
    main_source: str | None = None  # a main.go of the wrapper module itself, built as binary `name`
    renames: tuple[tuple[str, str], ...] = ()  # (built name, served name)


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod -buildvcs=false",
                "GOOS": "linux", "GOARCH": "amd64"})
    return env


def run_go(args: list[str], cwd: Path, logfile: Path) -> float:
    """Run `go ARGS` in cwd, appending its output to logfile; return the wall time."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with logfile.open("a") as out:
        out.write(f"\n$ go {' '.join(args)}  (in {cwd})\n")
        out.flush()
        proc = subprocess.run(["go", *args], cwd=cwd, env=go_env(), stdout=out, stderr=subprocess.STDOUT,
                              check=False)
    elapsed = time.monotonic() - start
    with logfile.open("a") as out:
        out.write(f"# exit {proc.returncode} after {elapsed:.1f}s\n")
    if proc.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-15:]
        raise LabError(f"go {args[0]} failed in {cwd}:\n" + "\n".join(tail), f"see {logfile}")
    return elapsed


def module_info(module: str, version: str, workdir: Path) -> dict[str, object]:
    """`go mod download -json module@version`: paths of its .info/.mod files and the module directory."""
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=workdir, env=go_env(),
                          capture_output=True, text=True, check=False)
    try:
        info: dict[str, object] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise LabError(f"go mod download {module}@{version} failed: {proc.stderr.strip()[-400:]}",
                       "check the version exists on the Go module proxy and in the checksum database") from None
    if proc.returncode != 0 or info.get("Error"):
        raise LabError(f"go mod download {module}@{version} failed: {info.get('Error') or proc.stderr.strip()}",
                       "check the version exists on the Go module proxy and in the checksum database")
    return info


def origin_hash(module: str, version: str, workdir: Path) -> str:
    """The VCS commit the proxy recorded for module@version (empty when the proxy did not record it)."""
    info = module_info(module, version, workdir)
    path = info.get("Info")
    if not isinstance(path, str):
        return ""
    data = json.loads(Path(path).read_text())
    origin = data.get("Origin") or {}
    value = origin.get("Hash", "") if isinstance(origin, dict) else ""
    return str(value)


def render_go_mod(prog: GoProgram) -> str:
    lines = [f"module {MODULE_PREFIX}/{prog.name}", "", f"go {GO_LANG_VERSION}", "", "require ("]
    lines += [f"\t{mod} {ver}" for mod, ver in prog.requires]
    lines.append(")")
    if prog.replaces:
        lines += ["", "replace ("]
        lines += [f"\t{mod} => {mod} {ver}" for mod, ver in prog.replaces]
        lines.append(")")
    return "\n".join(lines) + "\n"


def render_tools_go(prog: GoProgram) -> str:
    imports = "\n".join(f'\t_ "{pkg}"' for pkg in prog.packages)
    return f"//go:build tools\n\npackage main\n\nimport (\n{imports}\n)\n"


def build_go_program(prog: GoProgram, srcdir: Path, outdir: Path, logfile: Path) -> dict[str, float]:
    """Write the wrapper module into srcdir, tidy it and build every binary into outdir. Returns timings."""
    srcdir.mkdir(parents=True, exist_ok=True)
    outdir.mkdir(parents=True, exist_ok=True)
    (srcdir / "go.mod").write_text(render_go_mod(prog))
    if prog.packages:
        (srcdir / "tools.go").write_text(render_tools_go(prog))
    if prog.main_source is not None:
        (srcdir / "main.go").write_text(prog.main_source)
    timings = {"tidy": run_go(["mod", "tidy"], srcdir, logfile)}
    targets = list(prog.packages) + (["."] if prog.main_source is not None else [])
    ldflags = " ".join(["-s", "-w", *prog.ldflags])
    log(f"{prog.name}: go build {len(targets)} package(s)")
    timings["build"] = run_go(["build", "-trimpath", "-ldflags", ldflags, "-o", f"{outdir}/", *targets],
                              srcdir, logfile)
    for built, served in prog.renames:
        (outdir / built).rename(outdir / served)
    return timings


def build_go_test(prog: GoProgram, package: str, srcdir: Path, outfile: Path, logfile: Path,
                  test_source: str | None = None) -> dict[str, float]:
    """`go test -c` of package (a package of a required module, or "." with test_source as the wrapper module's
    own _test.go) into outfile. Returns timings. Test-only dependencies of a required module's package are not
    in the module graph after tidy: -mod=mod (go_env) lets `go test` add them."""
    srcdir.mkdir(parents=True, exist_ok=True)
    outfile.parent.mkdir(parents=True, exist_ok=True)
    (srcdir / "go.mod").write_text(render_go_mod(prog))
    if prog.packages:
        (srcdir / "tools.go").write_text(render_tools_go(prog))
    if test_source is not None:
        found = re.search(r"^package (\w+)$", test_source, re.MULTILINE)
        if found is None:
            raise LabError("the wrapper test source has no package clause", "fix e2e/lab/data")
        pkg = found.group(1)
        (srcdir / "doc.go").write_text(f"// Package {pkg} holds only a test main.\npackage {pkg}\n")
        (srcdir / f"{pkg}_test.go").write_text(test_source)
    timings = {"tidy": run_go(["mod", "tidy"], srcdir, logfile)}
    ldflags = " ".join(["-s", "-w", *prog.ldflags])
    log(f"{prog.name}: go test -c {package}")
    timings["test-c"] = run_go(["test", "-c", "-trimpath", "-ldflags", ldflags, "-o", str(outfile), package],
                               srcdir, logfile)
    return timings
