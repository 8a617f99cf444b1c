"""The only module that knows the host-side directory layout under MINISAND_HOME.

Every path built from a profile or machine name goes through here: the name is checked (lowercase letters,
digits and '-', so no separators and no `..`) and the path must resolve under MINISAND_HOME (symlinks
included). A profile is its folder: profiles/<name>/."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from minisand.errors import ExitCode, MinisandError, bad_input
from minisand.fsutil import make_dirs

DEFAULT_PROFILE = "minisand"

_PROFILE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,40}[a-z0-9])?$")
_MACHINE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,60}[a-z0-9])?$")
_NODE_SUFFIX = re.compile(r"-m(\d{2,})\Z")


def check_profile_name(name: str) -> str:
    if not _PROFILE.fullmatch(name):
        raise bad_input(f"profile name {name!r} is invalid",
                        "use lowercase letters, digits and '-', starting and ending with a letter or digit")
    if _NODE_SUFFIX.search(name):
        raise bad_input(f"profile name {name!r} ends like a node name (-mNN), the machine of another "
                        "profile's extra node", "choose a name that does not end in -m and digits")
    return name


def check_machine_name(name: str) -> str:
    if not _MACHINE.fullmatch(name):
        raise bad_input(f"node name {name!r} is invalid",
                        "node names are the profile's name, then <profile>-m02, -m03, ... (`minisand status`)")
    return name


def profile_of_machine(machine: str) -> str:
    """The profile a machine is named after: dev for dev and dev-m02 (profiles never end in -mNN)."""
    return _NODE_SUFFIX.sub("", machine)


def usable_home_error(root: Path, detail: str, hint: str = "") -> MinisandError:
    return MinisandError(f"MINISAND_HOME {root} is unusable: {detail}",
                         hint=hint or "set MINISAND_HOME to a folder you can write, e.g. ~/.minisand",
                         code=ExitCode.FILESYSTEM_ERROR)


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls) -> Home:
        env = os.environ.get("MINISAND_HOME")
        root = Path(env) if env else Path.home() / ".minisand"
        return cls(root.expanduser().absolute())

    # -- containment --------------------------------------------------------------------------------------
    def contains(self, path: Path) -> bool:
        """path is MINISAND_HOME or lies under it: as written (a link in the home may lead elsewhere) or once
        symlinks are resolved (a link elsewhere may lead into the home)."""
        path = path.expanduser()
        lexical = (Path(os.path.normpath(self.root.absolute())), Path(os.path.normpath(path.absolute())))
        pairs = ((self.root.resolve(), path.resolve()), lexical)
        return any(p == root or root in p.parents for root, p in pairs)

    def refuse_output_inside(self, path: Path, flag: str) -> None:
        """A file the user names for output (`logs --file`, `cp NODE:SRC DST`) must not overwrite minisand's own
        files: a profile's config, a disk, the log being read."""
        if self.contains(path):
            raise bad_input(f"{flag} {path} is inside MINISAND_HOME ({self.root})",
                            "write it outside MINISAND_HOME, e.g. to ./")

    def inside(self, path: Path) -> Path:
        """path, once symlinks are resolved, lies under MINISAND_HOME (itself resolved: the home may be a link)."""
        root = self.root.resolve()
        real = path.resolve()
        if real != root and root not in real.parents:
            raise MinisandError(f"{path} leads outside MINISAND_HOME (to {real})",
                                hint=f"remove the link {path}; minisand only works inside {self.root}",
                                code=ExitCode.PROFILE_CORRUPT)
        return path

    def check_usable(self) -> None:
        """MINISAND_HOME is a folder, or can become one (its nearest existing ancestor is a folder)."""
        p = self.root
        while not os.path.lexists(p) and p.parent != p:
            p = p.parent
        if p == self.root:
            if not self.root.is_dir():
                raise usable_home_error(self.root, "it is not a folder")
        elif not p.is_dir():
            raise usable_home_error(self.root, f"{p} is not a folder, so it cannot be created")

    def ensure(self, *folders: Path) -> None:
        """Creates MINISAND_HOME (and any missing parent) and the given folders of it (default: all), each 0700;
        only what a command is about to use, so a command that fails early leaves the home as it was."""
        self.check_usable()
        make_dirs(self.root)
        for d in folders or (self.profiles, self.machines, self.logs, self.cache):
            d.mkdir(mode=0o700, exist_ok=True)

    # profiles/<name>/config.json, profiles/<name>/.lock
    @property
    def profiles(self) -> Path:
        return self.root / "profiles"

    def profile_entry(self, name: str) -> Path:
        """profiles/<name> as a name (checked, not resolved): what `delete` unlinks when it is a stray link."""
        return self.profiles / check_profile_name(name)

    def profile_dir(self, name: str) -> Path:
        return self.inside(self.profile_entry(name))

    def profile_config(self, name: str) -> Path:
        return self.inside(self.profile_dir(name) / "config.json")

    def profile_lock(self, name: str) -> Path:
        return self.inside(self.profile_dir(name) / ".lock")

    # machines/<machine>/: disks, keys, serial log, sockets
    @property
    def machines(self) -> Path:
        return self.root / "machines"

    def machine_entry(self, machine: str) -> Path:
        return self.machines / check_machine_name(machine)

    def machine_dir(self, machine: str) -> Path:
        return self.inside(self.machine_entry(machine))

    # logs/<profile>.log: every remote command (argv, duration, exit code) and each step
    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def profile_log(self, name: str) -> Path:
        return self.inside(self.logs / f"{check_profile_name(name)}.log")

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

    def layout(self) -> tuple[Path, ...]:
        """Everything minisand itself creates directly under MINISAND_HOME (what `delete --all --purge` removes)."""
        return (self.profiles, self.machines, self.logs, self.cache, self.settings)
