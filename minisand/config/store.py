"""Profile store: atomic JSON config per profile and a per-profile lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from minisand.config.model import ClusterConfig, cluster_from_dict, to_dict
from minisand.config.validate import check_profile_name
from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text
from minisand.paths import Home


class ProfileStore:
    def __init__(self, home: Home) -> None:
        self.home = home

    def exists(self, name: str) -> bool:
        return self.home.profile_config(name).is_file()

    def names(self) -> list[str]:
        if not self.home.profiles.is_dir():
            return []
        return sorted(p.parent.name for p in self.home.profiles.glob("*/config.json"))

    def load(self, name: str) -> ClusterConfig:
        check_profile_name(name)
        path = self.home.profile_config(name)
        try:
            text = path.read_text()
        except FileNotFoundError:
            known = self.names()
            hint = f"known profiles: {', '.join(known)}" if known else "create it with `minisand start`"
            raise MinisandError(f"profile {name!r} does not exist", hint=hint,
                                code=ExitCode.PROFILE_NOT_FOUND) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MinisandError(f"profile config {path} is not valid JSON: {exc.msg} at line {exc.lineno}",
                                hint="fix the file or run `minisand delete` for this profile",
                                code=ExitCode.PROFILE_CORRUPT) from None
        if not isinstance(data, dict):
            raise MinisandError(f"profile config {path} is not a JSON object",
                                hint="run `minisand delete` for this profile", code=ExitCode.PROFILE_CORRUPT)
        return cluster_from_dict(data, str(path))

    def save(self, cfg: ClusterConfig) -> None:
        check_profile_name(cfg.name)
        self.home.profile_dir(cfg.name).mkdir(parents=True, exist_ok=True, mode=0o700)
        text = json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n"
        atomic_write_text(self.home.profile_config(cfg.name), text, mode=0o600)

    def remove(self, name: str) -> None:
        shutil.rmtree(self.home.profile_dir(name), ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive, non-blocking: a second mutating command on the same profile fails at once."""
        check_profile_name(name)
        pdir = self.home.profile_dir(name)
        created = not pdir.exists()
        pdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.home.profile_lock(name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = Path(path).read_text().strip() or "another process"
                raise MinisandError(
                    f"profile {name!r} is busy: another minisand command (pid {holder}) is working on it",
                    hint="wait for it to finish, or stop it; then run the command again",
                    code=ExitCode.PROFILE_BUSY) from None
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)
            # a lock taken for a profile that never got a config leaves nothing behind
            if created and not self.exists(name) and pdir.is_dir():
                shutil.rmtree(pdir, ignore_errors=True)
