"""The profile configuration the nodes were last brought in line with: written when a `start` finishes (and
carried over by an addon's enable/disable that finishes on a converged cluster), removed when one begins. A
machine resumed from a state saved after that, with the profile unchanged since, is that converged state: its
`start` only refreshes the kubeconfig and waits."""

from __future__ import annotations

import hashlib
import json

from minisand.cluster.context import Context
from minisand.config.model import ClusterConfig, to_dict
from minisand.fsutil import atomic_write_text

FILE = "converged.json"


def digest(cfg: ClusterConfig) -> str:
    return hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest()


def mark(ctx: Context, cfg: ClusterConfig) -> None:
    atomic_write_text(ctx.home.profile_dir(cfg.name) / FILE, json.dumps({"config_sha256": digest(cfg)}) + "\n",
                      mode=0o600)


def clear(ctx: Context, name: str) -> None:
    (ctx.home.profile_dir(name) / FILE).unlink(missing_ok=True)


def unmark(ctx: Context, cfg: ClusterConfig) -> bool:
    """Removes the mark before a change to the nodes; returns whether cfg was converged (then the caller marks the
    changed configuration once the change has finished)."""
    was = matches(ctx, cfg)
    clear(ctx, cfg.name)
    return was


def matches(ctx: Context, cfg: ClusterConfig) -> bool:
    try:
        data = json.loads((ctx.home.profile_dir(cfg.name) / FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("config_sha256") == digest(cfg)
