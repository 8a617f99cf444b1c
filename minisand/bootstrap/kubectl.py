"""`minisand kubectl -- ...` (arrives with the Kubernetes bootstrap)."""

from __future__ import annotations

from minisand.cluster.context import Context
from minisand.errors import not_available


def run(ctx: Context, args: list[str]) -> int:
    raise not_available("`minisand kubectl`")
