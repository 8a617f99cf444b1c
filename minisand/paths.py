"""The only module that knows the host-side directory layout under MINISAND_HOME."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PROFILE = "minisand"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls) -> Home:
        env = os.environ.get("MINISAND_HOME")
        root = Path(env) if env else Path.home() / ".minisand"
        return cls(root.expanduser().absolute())

    # profiles/<name>/config.json, profiles/<name>/.lock
    @property
    def profiles(self) -> Path:
        return self.root / "profiles"

    def profile_dir(self, name: str) -> Path:
        return self.profiles / name

    def profile_config(self, name: str) -> Path:
        return self.profile_dir(name) / "config.json"

    def profile_lock(self, name: str) -> Path:
        return self.profile_dir(name) / ".lock"

    # machines/<machine>/: disks, keys, serial log, sockets
    @property
    def machines(self) -> Path:
        return self.root / "machines"

    def machine_dir(self, machine: str) -> Path:
        return self.machines / machine

    # logs/<profile>.log: every remote command (argv, duration, exit code) and each step
    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def profile_log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    # cache/: downloads (ISOs, Kubernetes binaries, preloads), probe verdicts
    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def iso_cache(self) -> Path:
        return self.cache / "iso"

    def binaries_cache(self, arch: str, version: str) -> Path:
        return self.cache / "linux" / arch / version

    @property
    def preload_cache(self) -> Path:
        return self.cache / "preloaded-tarball"

    @property
    def settings(self) -> Path:
        """Global settings written by `minisand config set` without a profile scope."""
        return self.root / "config.json"

    def ensure(self) -> None:
        for d in (self.root, self.profiles, self.machines, self.logs, self.cache):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
