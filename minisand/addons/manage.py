"""Addon management (arrives with the addons framework)."""

from __future__ import annotations

from typing import Any

from minisand.cluster.context import Context
from minisand.config.model import ClusterConfig
from minisand.errors import not_available


def list_addons(ctx: Context) -> list[dict[str, object]]:
    raise not_available("addons")


def enable(ctx: Context, name: str) -> None:
    raise not_available("addons")


def disable(ctx: Context, name: str, *, force: bool) -> None:
    raise not_available("addons")


def reconcile(ctx: Context, cfg: ClusterConfig, nodes: list[Any]) -> None:
    if cfg.addons:
        raise not_available("addons")
