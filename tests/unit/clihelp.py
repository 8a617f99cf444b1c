"""Running the CLI in-process and checking its one-line errors (shared by the CLI and addon unit tests)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

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


Snapshot = dict[str, tuple[str, int, bytes]]


def snapshot(root: Path, ignore: tuple[str, ...] = ()) -> Snapshot:
    """Every path under root (root included) with its kind, mode and content (a symlink's target), without
    following symlinks: compare two to prove a failed command left MINISAND_HOME byte-identical. `ignore` names
    top-level entries left out (`logs`, for a command that fails after it began writing the profile's log)."""
    out: Snapshot = {}
    if not os.path.lexists(root):
        return out
    paths = [root, *sorted(root.rglob("*"))] if root.is_dir() and not root.is_symlink() else [root]
    for p in paths:
        st = p.lstat()
        rel = str(p.relative_to(root))
        if rel.split(os.sep)[0] in ignore:
            continue
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", stat.S_IMODE(st.st_mode), os.readlink(p).encode())
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
        elif stat.S_ISREG(st.st_mode):
            out[rel] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes())
        else:
            out[rel] = ("other", st.st_mode, b"")
    return out


def assert_unchanged(root: Path, before: Snapshot, ignore: tuple[str, ...] = ()) -> None:
    after = snapshot(root, ignore)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"MINISAND_HOME changed: {changed}"
