"""Unit tests run without root, network or subprocesses (cloud-init's rule): a unit test that shells out fails
unless it is marked `allow_subprocess`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

_real_popen_init = subprocess.Popen.__init__


@pytest.fixture(autouse=True)
def _no_subprocess(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("allow_subprocess"):
        return

    def guarded(self: subprocess.Popen[bytes], args: object, *a: object, **kw: object) -> None:
        raise AssertionError(f"unit test tried to run a subprocess: {args!r} (mark it allow_subprocess)")

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "home"
    monkeypatch.setenv("MINISAND_HOME", str(root))
    monkeypatch.delenv("MINISAND_PROFILE", raising=False)
    return root


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """With MINISAND_UPDATE_GOLDEN=1, name the golden files this run did not render (stale after a rename, when
    the whole unit suite ran)."""
    from tests.unit import golden

    if golden.updating() and golden.RENDERED:
        stale = golden.unrendered()
        if stale:
            terminalreporter.write_line(f"{golden.UPDATE_ENV}=1: golden files no test rendered in this run "
                                        "(delete them if the whole unit suite ran):")
            for path in stale:
                terminalreporter.write_line(f"  {path.relative_to(golden.HERE)}")
