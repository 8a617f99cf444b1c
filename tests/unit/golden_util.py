"""Golden-file comparison for the driver templates. MINISAND_UPDATE_GOLDEN=1 rewrites the files."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden_drivers"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MINISAND_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"golden file {path} missing: run with MINISAND_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file (MINISAND_UPDATE_GOLDEN=1 to accept)"
