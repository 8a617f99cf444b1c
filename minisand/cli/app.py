"""minisand's command line (placeholder while the foundation lands)."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("minisand: CLI arrives with the foundation commit")
