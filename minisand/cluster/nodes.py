"""Node machines of a cluster: their specs and drivers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minisand.cluster.context import Context
from minisand.config.model import ClusterConfig
from minisand.drivers.base import Driver, MachineRecord, MachineSpec, MachineState
from minisand.drivers.registry import lookup
from minisand.errors import ExitCode, MinisandError
from minisand.keys import ensure_client_key
from minisand.paths import profile_of_machine


@dataclass(frozen=True)
class BootMedia:
    iso: Path
    kernel: Path | None
    initrd: Path | None
    data_image: Path | None = None  # the node image new machines' data disks are layered over


def machine_spec(ctx: Context, cfg: ClusterConfig, machine: str, media: BootMedia | None,
                 with_key: bool = True) -> MachineSpec:
    mdir = ctx.home.machine_dir(machine)
    key_path = mdir / "id_ed25519"
    pub = ""
    if with_key:
        check_owner(mdir, machine, cfg.name)
        ctx.home.ensure(ctx.home.machines)
        mdir.mkdir(exist_ok=True, mode=0o700)
        pub = ensure_client_key(key_path, f"minisand@{machine}")
    return MachineSpec(
        machine=machine, profile=cfg.name, machine_dir=mdir, cache_dir=ctx.home.cache, cpus=cfg.cpus,
        memory_mb=cfg.memory_mb, disk_mb=cfg.disk_mb, hostname=machine, ssh_pubkey=pub, ssh_key_path=key_path,
        options=cfg.driver_options, iso=media.iso if media else None, kernel=media.kernel if media else None,
        initrd=media.initrd if media else None, data_image=media.data_image if media else None)


def owner(rec: MachineRecord | None, machine: str) -> str:
    """The profile a machine belongs to: the one its record names, else (a record written before records named
    it, or a machine not created yet) the profile it is named after."""
    return rec.profile if rec is not None and rec.profile else profile_of_machine(machine)


def check_owner(machine_dir: Path, machine: str, profile: str) -> None:
    found = owner(MachineRecord.load(machine_dir), machine)
    if found != profile:
        raise MinisandError(f"machine {machine!r} belongs to profile {found!r}, not {profile!r}",
                            hint=f"delete profile {found!r} first, or use another profile name",
                            code=ExitCode.PROFILE_CORRUPT)


def driver_for(ctx: Context, cfg: ClusterConfig, machine: str, media: BootMedia | None = None,
               with_key: bool = False) -> Driver:
    try:
        info = lookup(cfg.driver)
    except MinisandError as exc:  # the driver was checked when the profile was stored: the file was changed
        raise MinisandError(f"profile {cfg.name!r} names {exc.message}",
                            hint=f"fix its config.json or `minisand delete -p {cfg.name}`",
                            code=ExitCode.PROFILE_CORRUPT) from None
    return info.create(machine_spec(ctx, cfg, machine, media, with_key=with_key))


def node_of(cfg: ClusterConfig, node: str | None) -> str:
    """The machine `--node` names (the first node when None); anything not a node of the profile is refused."""
    machines = cfg.machine_names()
    if node is None:
        return machines[0]
    if node not in machines:
        shown = node if len(node) <= 80 else node[:77] + "..."
        raise MinisandError(f"node {shown!r} is not part of profile {cfg.name!r}",
                            hint=f"nodes: {', '.join(machines)}", code=ExitCode.BAD_INPUT)
    return node


def require_running(ctx: Context, cfg: ClusterConfig) -> None:
    """MACHINE_NOT_RUNNING (one line, nothing written) unless every node of the cluster runs."""
    for machine in cfg.machine_names():
        state = driver_for(ctx, cfg, machine).state()
        if state != MachineState.RUNNING:
            raise MinisandError(f"cluster {cfg.name!r} is not running (node {machine}: {state.value})",
                                hint=f"start it first: `minisand start -p {cfg.name}`",
                                code=ExitCode.MACHINE_NOT_RUNNING)
