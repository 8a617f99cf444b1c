"""Where the data shipped with minisand lives: templates/ and iso/ (top level in the source tree, inside
the package as minisand/_data/ once installed from a wheel)."""

from __future__ import annotations

from pathlib import Path

from minisand.errors import ExitCode, MinisandError

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise MinisandError(f"minisand's {name}/ data directory is missing from this installation",
                        hint="reinstall minisand", code=ExitCode.FAILURE)
