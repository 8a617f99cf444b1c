"""The none driver refuses a host that lacks a registered tool (minisand.hosttools) before it changes anything:
`minisand start --driver=none` on a PATH without kmod's modprobe exits 20 naming the package, and leaves the host
and MINISAND_HOME as they were."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from e2e.netenv import HOST_DIRS
from minisand.errors import ExitCode
from tests.integration.helpers.cli import VENV_BIN

pytestmark = [pytest.mark.root]


def _path_without(tmp: Path, hidden: str) -> str:
    """A PATH of one folder holding a link to every program on the real PATH except `hidden`."""
    tmp.mkdir()
    for folder in [*os.environ["PATH"].split(os.pathsep), "/usr/sbin", "/sbin"]:
        if not Path(folder).is_dir():
            continue
        for prog in Path(folder).iterdir():
            if prog.name != hidden and not (tmp / prog.name).exists() and os.access(prog, os.X_OK):
                (tmp / prog.name).symlink_to(prog)
    return str(tmp)


def _host_state() -> dict[str, bool]:
    return {d: Path(d).exists() for d in HOST_DIRS}


def test_none_start_without_modprobe_is_refused_before_anything_changes(tmp_path: Path) -> None:
    assert shutil.which("modprobe"), "this test hides kmod's modprobe, so the host must have it"
    path = _path_without(tmp_path / "bin", "modprobe")
    assert shutil.which("modprobe", path=path) is None and shutil.which("containerd", path=path)
    home = tmp_path / "home"
    before = _host_state()
    env = {**os.environ, "PATH": path, "MINISAND_HOME": str(home), "MINISAND_PROFILE": "nomodprobe"}
    proc = subprocess.run([str(VENV_BIN / "minisand"), "start", "--driver=none", "--no-kubernetes"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == ExitCode.DRIVER_UNAVAILABLE, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "modprobe" in lines[0] and "apt-get install kmod" in lines[0], proc.stderr
    assert _host_state() == before
    assert not (home / "profiles" / "nomodprobe").exists()
    assert not (home / "machines" / "nomodprobe").exists()
