"""Golden files for every rendered artifact, one folder per area (tests/unit/golden/<area>/<name>), and recorded
upstream output (tests/unit/fixtures/). One switch regenerates them all: MINISAND_UPDATE_GOLDEN=1 rewrites each
golden file a test renders differently; without it a difference fails the test. Review a regenerated file before
committing it (`git diff tests/unit/golden`): a golden file is only as right as the last person who read it."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
FIXTURES = HERE / "fixtures"
UPDATE_ENV = "MINISAND_UPDATE_GOLDEN"
_PART = re.compile(r"[a-z0-9][a-z0-9._-]*")
RENDERED: set[Path] = set()  # golden files compared in this run (conftest reports the others when updating)


def _part(kind: str, value: str) -> str:
    if not _PART.fullmatch(value) or ".." in value:
        raise ValueError(f"golden {kind} {value!r}: lower-case letters, digits, '.', '_' and '-' only")
    return value


def golden_path(area: str, name: str) -> Path:
    return GOLDEN / _part("area", area) / _part("name", name)


def updating() -> bool:
    return os.environ.get(UPDATE_ENV) == "1"


def assert_golden(area: str, name: str, text: str) -> None:
    """text must equal golden/<area>/<name>; with MINISAND_UPDATE_GOLDEN=1 the file is (re)written first."""
    path = golden_path(area, name)
    RENDERED.add(path)
    if updating() and (not path.exists() or path.read_text() != text):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"golden file golden/{area}/{name} is missing: run with {UPDATE_ENV}=1 and review it"
    want = path.read_text()
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(keepends=True), text.splitlines(keepends=True),
                                            f"golden/{area}/{name}", "rendered", n=2))
        raise AssertionError(f"{area}/{name} differs from its golden file ({UPDATE_ENV}=1 to accept):\n{diff}")


def unrendered() -> list[Path]:
    """Golden files no test compared in this run: stale ones, when the whole unit suite ran."""
    return sorted(p for p in GOLDEN.rglob("*") if p.is_file() and p not in RENDERED)


def fixture_path(name: str) -> Path:
    """A recorded input under fixtures/ (e.g. `kubeadm-images/v1.36.4-registry.k8s.io.txt`)."""
    parts = name.split("/")
    return FIXTURES.joinpath(*(_part("fixture", p) for p in parts))


def fixture(name: str) -> str:
    return fixture_path(name).read_text()
