"""The addon registry (filled in by the addons framework)."""

from __future__ import annotations

from minisand.config.model import ClusterConfig
from minisand.cruntime.config import RuntimeHandler


def runtime_handlers(cfg: ClusterConfig) -> tuple[RuntimeHandler, ...]:
    return ()
