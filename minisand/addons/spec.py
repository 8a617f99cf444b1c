"""An addon is data: name, description, manifests (jinja2 templates), images, required runtime, what it adds to
containerd, and hooks (validate, install on a node, verify, remove). One registry holds them all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minisand.config.model import ClusterConfig
from minisand.cruntime.config import RuntimeHandler

if TYPE_CHECKING:
    from minisand.addons.context import AddonContext


@dataclass(frozen=True)
class AddonSpec:
    name: str
    description: str
    manifests: tuple[str, ...] = ()  # template names under templates/addons/
    images: tuple[str, ...] = ()  # images the addon's manifests use (rewritten by the mirror rules)
    runtime: str = "containerd"  # the container runtime it needs
    handlers: Callable[[ClusterConfig], tuple[RuntimeHandler, ...]] = lambda _cfg: ()
    validate: Callable[[AddonContext], None] = lambda _ctx: None  # requirements; raise ADDON_ERROR
    prepare: Callable[[AddonContext], None] = lambda _ctx: None  # host-side downloads and checks; nodes untouched
    install: Callable[[AddonContext], None] = lambda _ctx: None  # on every node, idempotent
    verify: Callable[[AddonContext], dict[str, Any]] = lambda _ctx: {}  # after enable; returns measurements
    check: Callable[[AddonContext], list[str]] = lambda _ctx: []  # cheap re-check at start: problems found
    remove: Callable[[AddonContext], None] = lambda _ctx: None  # undo install, on every node
    in_use: Callable[[AddonContext], Sequence[str]] = lambda _ctx: ()  # what still uses it (pods), for disable
    template_vars: Callable[[AddonContext], dict[str, Any]] = field(default=lambda _ctx: {})
