"""The golden helper itself: a difference fails with a diff, the switch rewrites, names stay inside their area."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit import golden


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(golden, "GOLDEN", tmp_path)
    monkeypatch.delenv(golden.UPDATE_ENV, raising=False)
    return tmp_path


def test_equal_text_passes_and_a_difference_fails_with_a_diff(folder: Path) -> None:
    (folder / "area").mkdir()
    (folder / "area" / "f.txt").write_text("one\ntwo\n")
    golden.assert_golden("area", "f.txt", "one\ntwo\n")
    with pytest.raises(AssertionError) as exc:
        golden.assert_golden("area", "f.txt", "one\nthree\n")
    assert "-two" in str(exc.value) and "+three" in str(exc.value) and golden.UPDATE_ENV in str(exc.value)
    assert (folder / "area" / "f.txt").read_text() == "one\ntwo\n"  # never rewritten without the switch


def test_a_missing_golden_file_fails_unless_updating(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AssertionError, match="missing"):
        golden.assert_golden("area", "new.txt", "x\n")
    assert not (folder / "area").exists()
    monkeypatch.setenv(golden.UPDATE_ENV, "1")
    golden.assert_golden("area", "new.txt", "x\n")
    golden.assert_golden("area", "new.txt", "y\n")
    assert (folder / "area" / "new.txt").read_text() == "y\n"
    assert golden.unrendered() == []


@pytest.mark.parametrize(("area", "name"), [("../x", "f"), ("a/b", "f"), ("a", "../f"), ("a", "f/g"), ("A", "f"),
                                            ("a", ".hidden"), ("", "f")])
def test_areas_and_names_are_plain_names(folder: Path, area: str, name: str) -> None:
    with pytest.raises(ValueError):
        golden.assert_golden(area, name, "x")
