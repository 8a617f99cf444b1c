"""The one registry of addons (data), and what enabled addons contribute to containerd."""

from __future__ import annotations

from minisand.addons.spec import AddonSpec
from minisand.config.model import ClusterConfig
from minisand.cruntime.config import RuntimeHandler
from minisand.errors import ExitCode, MinisandError


def addons() -> dict[str, AddonSpec]:
    from minisand.addons import gvisor, headlamp, kata

    return {s.name: s for s in (gvisor.SPEC, headlamp.SPEC, kata.SPEC)}


def get(name: str) -> AddonSpec:
    known = addons()
    if name not in known:
        raise MinisandError(f"unknown addon {name!r}", hint=f"known addons: {', '.join(sorted(known))}",
                            code=ExitCode.BAD_INPUT, reason="ADDON_UNKNOWN")
    return known[name]


def runtime_handlers(cfg: ClusterConfig) -> tuple[RuntimeHandler, ...]:
    out: list[RuntimeHandler] = []
    for name in cfg.addons:
        spec = addons().get(name)
        if spec is not None:
            out.extend(spec.handlers(cfg))
    return tuple(out)
