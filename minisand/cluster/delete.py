"""`minisand delete`: a profile's machines (only those it owns), its kubeconfig context and its folder, from any
state; `--all` every profile and every machine left under machines/; `--purge` then what minisand created in
MINISAND_HOME.

Nothing here follows a symlink to remove what it points at, and every path comes from paths.Home (checked names,
resolved under MINISAND_HOME). A machine belongs to the profile its record names (MachineRecord.profile); a
record without one belongs to the profile the machine is named after."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from pathlib import Path

from minisand import ui
from minisand.cluster.context import Context
from minisand.cluster.nodes import driver_for, owner
from minisand.config.model import ClusterConfig
from minisand.drivers.base import Driver, MachineRecord
from minisand.errors import ExitCode, MinisandError
from minisand.paths import check_machine_name, profile_of_machine


def _record(ctx: Context, machine: str) -> MachineRecord | None:
    try:
        return MachineRecord.load(ctx.home.machine_dir(machine))
    except MinisandError as exc:
        ui.warn(f"{exc.message}; deleting the machine folder as it is")
        return None


def _machine_names(ctx: Context) -> list[str]:
    """Entries under machines/ whose names minisand could have given (others are never touched)."""
    try:
        entries = sorted(p.name for p in ctx.home.machines.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for name in entries:
        with contextlib.suppress(MinisandError):
            out.append(check_machine_name(name))
    return out


def machines_of(ctx: Context, profile: str, cfg: ClusterConfig | None) -> list[str]:
    found = set(cfg.machine_names() if cfg else [])
    for m in _machine_names(ctx):
        if profile_of_machine(m) == profile:
            found.add(m)
        elif ctx.home.machine_entry(m).is_dir() and not ctx.home.machine_entry(m).is_symlink():
            with contextlib.suppress(MinisandError):
                if owner(MachineRecord.load(ctx.home.machine_dir(m)), m) == profile:
                    found.add(m)
    return sorted(found)


def _driver(ctx: Context, machine: str, rec: MachineRecord | None, cfg: ClusterConfig | None) -> Driver | None:
    name = rec.driver if rec is not None else cfg.driver if cfg is not None else None
    if name is None:
        return None
    base = cfg or ClusterConfig(name=owner(rec, machine), driver=name)
    try:
        return driver_for(ctx, dataclasses.replace(base, driver=name), machine)
    except MinisandError as exc:
        ui.warn(f"machine {machine!r}: {exc.message}; deleting its folder only")
        return None


def _unlink_stray(path: Path, what: str) -> None:
    kind = "a symlink" if path.is_symlink() else "not a folder"
    ui.warn(f"{path} is {kind}: removing only it, not what it points at ({what})")
    path.unlink()


def remove_machine(ctx: Context, machine: str, profile: str | None, cfg: ClusterConfig | None) -> bool:
    """Removes machines/<machine> when `profile` owns it (None: whoever does, for machines no profile has
    any more); True when something was removed."""
    entry = ctx.home.machine_entry(machine)
    if not os.path.lexists(entry):
        drv = _driver(ctx, machine, None, cfg) if cfg is not None else None
        if drv is not None:  # what lives outside the folder (a libvirt domain) goes even when the folder is gone
            drv.remove()
        return False
    if entry.is_symlink() or not entry.is_dir():
        _unlink_stray(entry, f"machine {machine!r}")
        return True
    rec = _record(ctx, machine)
    if profile is not None and owner(rec, machine) != profile:
        ui.warn(f"machine {machine!r} belongs to profile {owner(rec, machine)!r}, not {profile!r}: left alone")
        return False
    drv = _driver(ctx, machine, rec, cfg)
    ui.step(f"Deleting node {machine!r} ...")
    if drv is not None:
        drv.remove()
    if os.path.lexists(entry):
        shutil.rmtree(ctx.home.machine_dir(machine))
    return True


def _load(ctx: Context, name: str) -> ClusterConfig | None:
    try:
        return ctx.store.load(name)
    except MinisandError as exc:
        if exc.code == ExitCode.PROFILE_NOT_FOUND:
            return None
        if exc.code == ExitCode.PROFILE_CORRUPT:
            ui.warn(f"{exc.message}; deleting what belongs to profile {name!r}")
            return None
        raise


def _machines_usable(ctx: Context) -> bool:
    try:
        ctx.home.inside(ctx.home.machines)
    except MinisandError as exc:
        ui.warn(f"{exc.message}: no machine is deleted through it")
        return False
    return True


def delete_profile(ctx: Context, name: str) -> bool:
    """Removes the profile's machines, its kubeconfig context and its folder; works from any state."""
    entry = ctx.home.profile_entry(name)
    ctx.home.inside(ctx.home.profiles)
    stray = entry.is_symlink() or (os.path.lexists(entry) and not entry.is_dir())
    cfg = None if stray else _load(ctx, name)
    machines = machines_of(ctx, name, cfg) if _machines_usable(ctx) else []
    present = [m for m in machines if os.path.lexists(ctx.home.machine_entry(m))]
    if cfg is None and not present and not os.path.lexists(entry):
        return False
    if stray:
        _unlink_stray(entry, f"profile {name!r}")
    with contextlib.nullcontext() if stray else ctx.store.lock(name):
        for m in reversed(machines):
            remove_machine(ctx, m, name, cfg)
        _remove_kubeconfig(name)
    if not stray:
        ctx.store.remove(name)
    return True


def _remove_kubeconfig(name: str) -> None:
    try:
        from minisand.bootstrap.kubeconfig import remove_context
    except ImportError:
        return
    try:
        remove_context(name)
    except MinisandError as exc:
        ui.warn(f"the kubeconfig context {name!r} was not removed: {exc.message}")


def _orphan_machines(ctx: Context) -> list[str]:
    """Machines left once every profile is gone; a stray entry with a name minisand never gives is reported."""
    if not _machines_usable(ctx):
        return []
    valid = set(_machine_names(ctx))
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for p in sorted(ctx.home.machines.iterdir()):
            if p.name not in valid:
                ui.warn(f"left {p}: not a machine minisand created (`--purge` removes it)")
    return [m for m in sorted(valid) if remove_machine(ctx, m, None, None)]


def _purge(ctx: Context) -> None:
    home = ctx.home
    if not home.root.is_dir():
        return
    for path in home.layout():
        if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(home.inside(path))
    left = sorted(p.name for p in home.root.iterdir())
    if left:
        ui.warn(f"kept {home.root}: it holds files minisand did not create ({', '.join(left)})")
    elif home.root.is_symlink():
        ui.warn(f"kept {home.root}: it is a symlink (to {home.root.resolve()}, now empty)")
    else:
        home.root.rmdir()
        ui.done(f"Purged {home.root}")
        return
    ui.done(f"Purged what minisand created in {home.root}")


def delete(ctx: Context, all_profiles: bool, purge: bool) -> None:
    if all_profiles:
        names = ctx.store.names()
        for entry in ctx.store.entries():
            if entry not in names:
                ui.warn(f"left {ctx.home.profiles / entry}: not a profile name (`--purge` removes it)")
    else:
        names = [ctx.profile]
    deleted = [n for n in names if delete_profile(ctx, n)]
    if all_profiles:
        for m in _orphan_machines(ctx):
            ui.done(f"Removed the machine {m!r}, which no profile had.")
    if not all_profiles and not deleted:
        ui.info(f"profile {ctx.profile!r} does not exist: nothing to delete")
    for n in deleted:
        ui.done(f"Removed all traces of the {n!r} cluster.")
    if purge:
        _purge(ctx)
