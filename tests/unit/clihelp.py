"""Running the CLI in-process and checking its one-line errors (shared by the CLI and addon unit tests)."""

from __future__ import annotations

import pytest

from minisand.cli.app import run


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The error is exactly one line, `minisand: ... (hint: ...)`, and never a traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("minisand: ") and "hint:" in lines[0]
    assert "Traceback" not in err
    return lines[0]
