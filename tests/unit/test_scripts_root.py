"""scripts/lib.sh's as_root: the README's commands work as written on a root machine that has no sudo binary, and a
non-root user without sudo gets one clear line instead."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.allow_subprocess

LIB = Path(__file__).resolve().parents[2] / "scripts" / "lib.sh"


def _path_without_sudo(tmp_path: Path) -> str:
    """A PATH holding only the few programs the snippet needs (no sudo among them)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for prog in ("id", "basename"):
        found = shutil.which(prog)
        assert found
        (bindir / prog).symlink_to(found)
    return str(bindir)


def _run(tmp_path: Path, uid_shim: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": _path_without_sudo(tmp_path)}
    if uid_shim is not None:  # stand in for id(1) to play a non-root user
        (tmp_path / "bin" / "id").unlink()
        (tmp_path / "bin" / "id").write_text(f"#!/bin/sh\necho {uid_shim}\n")
        (tmp_path / "bin" / "id").chmod(0o755)
    script = tmp_path / "demo-like"
    script.write_text(f'. "{LIB}"\nas_root "$@"\necho "ran as root"\n')
    return subprocess.run(["/bin/bash", str(script)], env=env, capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the root path: CI runs as root")
def test_root_without_sudo_runs_the_script_itself(tmp_path: Path) -> None:
    proc = _run(tmp_path, None)
    assert proc.returncode == 0 and proc.stdout.strip() == "ran as root", proc.stderr


def test_non_root_without_sudo_gets_one_line(tmp_path: Path) -> None:
    proc = _run(tmp_path, "1000")
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs root" in lines[0] and "no sudo" in lines[0]
