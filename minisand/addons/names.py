"""The names of minisand's addons as plain data, so `start --addons` and `config` can check a name up front
without importing the addons themselves (tests/unit/test_addons.py keeps this in step with registry.addons())."""

from __future__ import annotations

NAMES: tuple[str, ...] = ("gvisor", "headlamp", "kata")
