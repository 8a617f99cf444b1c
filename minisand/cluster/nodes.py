"""Node machines of a cluster: their specs and drivers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minisand.cluster.context import Context
from minisand.config.model import ClusterConfig
from minisand.drivers.base import Driver, MachineSpec
from minisand.drivers.registry import lookup
from minisand.keys import ensure_client_key


@dataclass(frozen=True)
class BootMedia:
    iso: Path
    kernel: Path | None
    initrd: Path | None


def machine_spec(ctx: Context, cfg: ClusterConfig, machine: str, media: BootMedia | None,
                 with_key: bool = True) -> MachineSpec:
    mdir = ctx.home.machine_dir(machine)
    key_path = mdir / "id_ed25519"
    pub = ""
    if with_key:
        mdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pub = ensure_client_key(key_path, f"minisand@{machine}")
    return MachineSpec(
        machine=machine, profile=cfg.name, machine_dir=mdir, cache_dir=ctx.home.cache, cpus=cfg.cpus,
        memory_mb=cfg.memory_mb, disk_mb=cfg.disk_mb, hostname=machine, ssh_pubkey=pub, ssh_key_path=key_path,
        options=cfg.driver_options, iso=media.iso if media else None, kernel=media.kernel if media else None,
        initrd=media.initrd if media else None)


def driver_for(ctx: Context, cfg: ClusterConfig, machine: str, media: BootMedia | None = None,
               with_key: bool = False) -> Driver:
    return lookup(cfg.driver).create(machine_spec(ctx, cfg, machine, media, with_key=with_key))


def drivers(ctx: Context, cfg: ClusterConfig) -> list[tuple[str, Driver]]:
    return [(m, driver_for(ctx, cfg, m)) for m in cfg.machine_names()]
