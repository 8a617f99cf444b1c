"""`minisand start --dry-run`: the plan, without creating anything."""

from __future__ import annotations

import json
from typing import Any

from minisand.cluster.context import Context
from minisand.cluster.start import plan
from minisand.cluster.startconfig import StartRequest
from minisand.config.model import to_dict


def build(ctx: Context, req: StartRequest) -> dict[str, Any]:
    resolved, info, notes = plan(ctx, req)
    return {"profile": ctx.profile, "driver": info.name, "driverNotes": notes, "warnings": resolved.warnings,
            "config": to_dict(resolved.config), "files": {}}


def render(data: dict[str, Any], output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=True)
    lines = [f"Profile: {data['profile']}", f"Driver: {data['driver']}"]
    lines += [f"  skipped {n}" for n in data["driverNotes"]]
    lines += [f"Warning: {w}" for w in data["warnings"]]
    for path, content in data["files"].items():
        lines.append(f"--- {path}")
        lines.append(content.rstrip("\n"))
    return "\n".join(lines)
