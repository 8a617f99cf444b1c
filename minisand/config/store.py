"""Profile store: atomic JSON config per profile and a per-profile lock.

A profile is its folder, profiles/<name>/: a config.json whose `name` differs from the folder is corrupt (it
would point commands at another profile's machines)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from minisand.config.model import ClusterConfig, cluster_from_dict, to_dict
from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text
from minisand.paths import Home, check_profile_name


def _corrupt(path: Path, what: str, name: str) -> MinisandError:
    return MinisandError(f"profile config {path} {what}",
                         hint=f"fix the file, or remove the profile with `minisand delete -p {name}`",
                         code=ExitCode.PROFILE_CORRUPT)


class ProfileStore:
    def __init__(self, home: Home) -> None:
        self.home = home

    def exists(self, name: str) -> bool:
        return self.home.profile_config(name).is_file()

    def entries(self) -> list[str]:
        """Every entry under profiles/, valid profile name or not (sorted)."""
        try:
            return sorted(p.name for p in self.home.profiles.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def names(self) -> list[str]:
        """Profile folders: entries with a valid name (a half-written profile without config.json included)."""
        out = []
        for name in self.entries():
            with contextlib.suppress(MinisandError):
                check_profile_name(name)
                out.append(name)
        return out

    def load(self, name: str) -> ClusterConfig:
        path = self.home.profile_config(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            known = [n for n in self.names() if n != name]
            hint = f"known profiles: {', '.join(known)}" if known else "create it with `minisand start`"
            raise MinisandError(f"profile {name!r} does not exist", hint=hint,
                                code=ExitCode.PROFILE_NOT_FOUND) from None
        except (IsADirectoryError, NotADirectoryError):
            raise _corrupt(path, "is not a file", name) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _corrupt(path, "is a symlink loop", name) from None
            raise
        try:
            data = json.loads(raw.decode())
        except UnicodeDecodeError:
            raise _corrupt(path, "is not UTF-8 text", name) from None
        except json.JSONDecodeError as exc:
            raise _corrupt(path, f"is not valid JSON: {exc.msg} at line {exc.lineno}", name) from None
        if not isinstance(data, dict):
            raise _corrupt(path, "is not a JSON object", name)
        cfg = cluster_from_dict(data, str(path))
        if cfg.name != name:
            raise _corrupt(path, f"names profile {cfg.name!r}, not {name!r} (a profile is its folder)", name)
        return cfg

    def save(self, cfg: ClusterConfig) -> None:
        self.home.ensure(self.home.profiles)
        pdir = self.home.profile_dir(cfg.name)
        pdir.mkdir(exist_ok=True, mode=0o700)
        text = json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n"
        atomic_write_text(self.home.profile_config(cfg.name), text, mode=0o600)
        # the lock file exists from the start, so taking the lock never adds a file to a saved profile
        os.close(os.open(self.home.profile_lock(cfg.name), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))

    def remove(self, name: str) -> None:
        """Removes profiles/<name>; a symlink there is unlinked, never followed."""
        entry = self.home.profile_entry(name)
        if entry.is_symlink() or (os.path.lexists(entry) and not entry.is_dir()):
            entry.unlink()
            return
        if entry.is_dir():
            shutil.rmtree(self.home.profile_dir(name))

    def check_not_busy(self, name: str) -> None:
        """PROFILE_BUSY if another command holds the profile's lock now; creates and changes nothing (a command
        that refuses for another reason first, e.g. a stopped cluster, still reports the busy profile)."""
        path = self.home.profile_lock(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return  # no lock file yet (or none readable): lock() reports what is wrong
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _busy(name, path) from None
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive, non-blocking: a second mutating command on the same profile fails at once."""
        self.home.ensure(self.home.profiles)
        pdir = self.home.profile_dir(name)
        created = not pdir.exists()
        pdir.mkdir(exist_ok=True, mode=0o700)
        path = self.home.profile_lock(name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _busy(name, path) from None
            with contextlib.suppress(OSError):  # the pid only names the holder: a full disk must not stop `stop`
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
        finally:
            os.close(fd)
            # a lock taken for a profile that never got a config leaves nothing behind
            if created and not self.exists(name) and pdir.is_dir():
                shutil.rmtree(pdir, ignore_errors=True)


def _busy(name: str, lock_file: Path) -> MinisandError:
    try:
        holder = lock_file.read_text().strip() or "another process"
    except OSError:
        holder = "another process"
    return MinisandError(f"profile {name!r} is busy: another minisand command (pid {holder}) is working on it",
                         hint="wait for it to finish, or stop it; then run the command again",
                         code=ExitCode.PROFILE_BUSY)
