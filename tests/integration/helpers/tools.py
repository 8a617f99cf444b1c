"""Test tools cached outside the repository, keyed by version: containerd and runc extracted from Debian's
.deb files (fetched with apt-get through a private sources list, so apt verifies the signed Release and the
.deb's checksum), and crictl built from its Go module.

Run `python tests/integration/helpers/tools.py` once to fill the cache (CI's install step does this);
fixtures call the same functions and fetch what is missing unless MINISAND_TOOLS_OFFLINE=1."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("MINISAND_TOOLS_CACHE", Path.home() / ".cache" / "minisand-tools"))
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class DebTool:
    package: str
    suite: str
    version: str  # Debian version string, e.g. 2.1.9+ds1-5

    @property
    def upstream(self) -> str:
        return self.version.split("+")[0].split("~")[0]


CONTAINERD_2 = DebTool("containerd", "forky", "2.1.9+ds1-5")
CONTAINERD_17 = DebTool("containerd", "trixie", "1.7.24~ds1-6+deb13u1")
RUNC = DebTool("runc", "forky", "1.3.6+ds1-1")
CRICTL_VERSION = "v1.36.0"


class ToolUnavailable(RuntimeError):
    pass


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _offline() -> bool:
    return os.environ.get("MINISAND_TOOLS_OFFLINE") == "1"


def _apt_options(root: Path) -> list[str]:
    return [f"-oDir::Etc::SourceList={root / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={root / 'lists'}", f"-oDir::Cache={root / 'cache'}",
            "-oAPT::Get::List-Cleanup=0", "-oDebug::NoLocking=1"]


def _apt_download(tool: DebTool, dest: Path) -> Path:
    root = CACHE / "apt" / tool.suite
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text(f"deb [signed-by={KEYRING}] {MIRROR} {tool.suite} main\n")
    opts = _apt_options(root)
    subprocess.run(["apt-get", *opts, "update", "-q"], check=True, timeout=600, capture_output=True)
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", *opts, "download", f"{tool.package}={tool.version}"], check=True,
                   cwd=dest, timeout=600, capture_output=True)
    debs = sorted(dest.glob(f"{tool.package}_*.deb"))
    if not debs:
        raise ToolUnavailable(f"apt-get download left no .deb for {tool.package}={tool.version}")
    return debs[0]


def deb_tool(tool: DebTool) -> Path:
    """The extracted package root (with usr/bin/...) for tool, fetched and extracted on first use."""
    final = CACHE / tool.package / tool.upstream
    if (final / ".complete").exists():
        return final
    if _offline():
        raise ToolUnavailable(f"{tool.package} {tool.upstream} is not cached under {final}")
    with _locked(f"{tool.package}-{tool.upstream}"):
        if (final / ".complete").exists():
            return final
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            deb = _apt_download(tool, Path(tmp) / "deb")
            root = Path(tmp) / "root"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=300)
            (root / ".complete").write_text(f"{tool.package}={tool.version}\n")
            if final.exists():
                shutil.rmtree(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            root.rename(final)
    return final


def containerd_bin(tool: DebTool = CONTAINERD_2) -> Path:
    return deb_tool(tool) / "usr" / "bin" / "containerd"


def runc_bin() -> Path:
    return deb_tool(RUNC) / "usr" / "sbin" / "runc"


def crictl_bin(version: str = CRICTL_VERSION) -> Path:
    final = CACHE / "crictl" / version / "crictl"
    if final.exists():
        return final
    if _offline():
        raise ToolUnavailable(f"crictl {version} is not cached under {final}")
    if not shutil.which("go"):
        raise ToolUnavailable("go is not installed: crictl cannot be built")
    with _locked(f"crictl-{version}"):
        if final.exists():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOWORK": "off"}
            subprocess.run(["go", "mod", "init", "crictlbuild"], cwd=tmp, env=env, check=True,
                           capture_output=True, timeout=60)
            subprocess.run(["go", "get", f"sigs.k8s.io/cri-tools/cmd/crictl@{version}"], cwd=tmp, env=env, check=True,
                           timeout=1200)
            ldflags = f"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version={version}"
            subprocess.run(["nice", "-n", "10", "go", "build", "-p", "1", "-trimpath", "-ldflags", ldflags,
                            "-o", str(Path(tmp) / "crictl"), "sigs.k8s.io/cri-tools/cmd/crictl"],
                           cwd=tmp, env=env, check=True, timeout=1800)
            shutil.move(str(Path(tmp) / "crictl"), final)
    return final


def main() -> int:
    for tool in (CONTAINERD_2, CONTAINERD_17, RUNC):
        print(deb_tool(tool))
    print(crictl_bin())
    return 0


if __name__ == "__main__":
    sys.exit(main())
