"""Fixtures for whole-cluster tests: the offline lab (session), the guest ISO, kubectl and minisand runners.
Each e2e test uses its own profile and MINISAND_HOME, and collects guest journals on failure."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.lab import Lab
from e2e.lab.endpoints import LabEndpoints
from tests.integration.helpers.cli import CLI


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(run_dir=tmp_path_factory.mktemp("lab"))
    lab.start()
    try:
        yield lab
    finally:
        assert lab.stop() == []


@pytest.fixture(scope="session")
def lab_endpoints(lab: Lab) -> LabEndpoints:
    assert lab.endpoints is not None
    return lab.endpoints


class Kubectl:
    """The cached kubectl minisand downloaded, against the profile's context (what `minisand kubectl` runs)."""

    def __init__(self, cli: CLI) -> None:
        self.cli = cli

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.cli.prefix, self._minisand(), "kubectl", "--", *args],
                              capture_output=True, text=True, timeout=timeout, env=self.cli.env(), check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc

    def _minisand(self) -> str:
        from tests.integration.helpers.cli import VENV_BIN

        return str(VENV_BIN / "minisand")

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def wait(self, what: str, condition: str, timeout: float = 900, namespace: str = "default") -> None:
        self.run("wait", "-n", namespace, f"--for={condition}", what, f"--timeout={int(timeout)}s",
                 timeout=timeout + 60)

    def apply(self, manifest: str) -> None:
        proc = subprocess.run([*self.cli.prefix, self._minisand(), "kubectl", "--", "apply", "-f", "-"],
                              input=manifest, capture_output=True, text=True, timeout=300, env=self.cli.env(),
                              check=False)
        assert proc.returncode == 0, proc.stderr


def wait_until(fn: object, timeout: float, interval: float = 2.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if callable(fn) and fn():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout:.0f}s")
        time.sleep(interval)


def collect_journals(cli: CLI, dest: Path) -> None:
    """On failure: minisand's log and the node's journals, into the test's directory (and stderr)."""
    proc = cli.run("logs", "--length", "200")
    dest.write_text(proc.stdout + proc.stderr)
    print(f"--- journals saved to {dest}\n{proc.stdout[-6000:]}")


