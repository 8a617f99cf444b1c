"""`minisand logs`: minisand's own log for the profile, the node's console, and its service journals."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from minisand.cluster.context import Context
from minisand.cluster.nodes import driver_for, node_of
from minisand.drivers.base import MachineState
from minisand.errors import MinisandError


def _tail(path: Path, n: int) -> list[str]:
    try:
        with path.open(errors="replace") as f:
            return list(deque(f, maxlen=n))
    except FileNotFoundError:
        return []


def collect(ctx: Context, *, length: int, node: str | None, console: bool, commands_only: bool) -> str:
    cfg = ctx.store.load(ctx.profile)
    machine = node_of(cfg, node)
    parts: list[str] = []
    log_path = ctx.home.profile_log(ctx.profile)
    lines = _tail(log_path, length * 4 if commands_only else length)
    if commands_only:
        lines = [ln for ln in lines if " minisand.commands: " in ln][-length:]
    parts.append(f"==> minisand log ({log_path}) <==\n" + "".join(lines))
    if commands_only:
        return "\n".join(parts)
    drv = driver_for(ctx, cfg, machine)
    cons = drv.console_log()
    state = drv.state()
    if cons is not None and (console or state != MachineState.RUNNING):
        parts.append(f"==> {machine} console ({cons}) <==\n" + "".join(_tail(cons, length)))
    service_logs = drv.spec.machine_dir / "services"
    if service_logs.is_dir():  # the none driver without systemd: supervised processes log to files
        for log_file in sorted(service_logs.glob("*.log")):
            parts.append(f"==> {machine} {log_file.stem} ({log_file}) <==\n" + "".join(_tail(log_file, length)))
    elif state == MachineState.RUNNING:
        try:
            runner = drv.runner()
            for unit in ("containerd", "kubelet"):
                res = runner.run(["journalctl", "-u", unit, "-n", str(length), "--no-pager", "-o", "short-iso"],
                                 sudo=True, check=False, timeout=30)
                parts.append(f"==> {machine} journal: {unit} <==\n{res.out}")
            runner.close()
        except MinisandError as exc:
            parts.append(f"==> {machine} journal unavailable: {exc.message} <==")
    else:
        parts.append(f"==> {machine} is {state.value}: no guest journal <==")
    return "\n".join(parts)
