"""Issue 11, item 3, on real file systems: a MINISAND_HOME on a full disk and on a read-only file system gives
the one-line error with exit 14 (or, for the log alone, one warning), never a traceback, and leaves the home
as it was. Each case runs in a private mount namespace with a small tmpfs (helpers/smallfs.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from minisand.config.model import ClusterConfig
from minisand.config.store import ProfileStore
from minisand.errors import ExitCode
from minisand.paths import Home

pytestmark = [pytest.mark.root]


def _run(tmp_path: Path, commands: list[list[str]], **spec: Any) -> list[dict[str, Any]]:
    seed = tmp_path / "seed"
    ProfileStore(Home(seed)).save(ClusterConfig(name="dev", driver="qemu"))
    (tmp_path / "mnt").mkdir()
    full = {"mountpoint": str(tmp_path / "mnt"), "size": "512k", "seed": str(seed), "commands": commands, **spec}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-m",
                           "tests.integration.helpers.smallfs", json.dumps(full)], capture_output=True, text=True,
                          timeout=600, check=False, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("minisand: ") and "(hint: " in lines[0], stderr
    return lines[0]


def test_a_full_disk(tmp_path: Path) -> None:
    results = _run(tmp_path, [["config", "set", "memory", "6g"], ["-p", "dev", "addons", "enable", "gvisor"],
                              ["-p", "dev", "stop"]], fill=True)
    config_set, enable, stop = results
    assert config_set["code"] == ExitCode.FILESYSTEM_ERROR
    assert "No space left on device" in _one_line(config_set["stderr"])
    assert config_set["changed"] == []
    assert "Traceback" not in enable["stderr"] and enable["code"] != ExitCode.FAILURE, enable
    # stop writes nothing but its log and lock: the log that cannot be written is said once, in one line
    assert stop["code"] == 0, json.dumps(stop)
    assert stop["stderr"].count("cannot write the log") == 1 and "Traceback" not in stop["stderr"]


def test_a_read_only_home(tmp_path: Path) -> None:
    results = _run(tmp_path, [["config", "set", "memory", "6g"], ["-p", "dev", "stop"], ["-p", "dev", "delete"],
                              ["-p", "dev", "start", "--driver", "qemu"], ["delete", "--all", "--purge"]],
                   readonly=True)
    for r in results:
        assert r["code"] == ExitCode.FILESYSTEM_ERROR, json.dumps(r)
        assert "read-only" in _one_line(r["stderr"]), r
        assert r["changed"] == [], r
