"""The shared fakes of the unit tests, at the platform boundary only (minikube's pkg/minikube/command pattern):

- FakeRunner: the machine behind a CommandRunner. A tiny in-memory filesystem (write_file/read_file, and the file
  commands minisand runs: `test`, `cat`, `rm`, `rmdir`) plus scripted results for every other command. It records
  every call (argv, sudo, env) and every write, and refuses a command nobody scripted, so a test sees exactly what
  the code under test did to the node.
- FakeServices: the node's service manager (systemd or minisand's process supervisor), recording each call.
- FakeDriver and fake_node(): a cluster Node built from the two (the driver only answers its name and record).

Nothing here runs a process or touches the host."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from minisand.drivers.base import MachineRecord
from minisand.nodefacts import NodeFacts
from minisand.runner.base import CommandError, RunResult

if TYPE_CHECKING:
    from minisand.drivers.qemu.cmdline import QemuSettings
    from minisand.node import Node


@dataclass(frozen=True)
class Reply:
    """A scripted command result."""

    exit_code: int = 0
    out: str | bytes = ""
    err: str = ""
    seconds: float = 0.0  # the duration the result reports


@dataclass(frozen=True)
class Call:
    argv: tuple[str, ...]
    sudo: bool = False
    env: Mapping[str, str] | None = None
    input: bytes | None = None


Handler = Callable[[list[str]], "Reply | str | int"]


class FakeRunner:
    """A CommandRunner over an in-memory machine. Script commands with on(): the latest matching prefix wins."""

    def __init__(self, files: Mapping[str, bytes | str] | None = None, *, paths: Sequence[str] = (),
                 where: str = "the fake machine") -> None:
        self.files: dict[str, bytes] = {k: v.encode() if isinstance(v, str) else v for k, v in (files or {}).items()}
        self.modes: dict[str, int] = {}
        self.paths: set[str] = set(paths)  # what `test -e/-c/-x` finds besides the files (devices, binaries)
        self.calls: list[Call] = []
        self.writes: list[str] = []
        self.closed = False
        self._where = where
        self._scripts: list[tuple[tuple[str, ...], Handler]] = []

    # -- scripting and inspection -------------------------------------------------------------------------
    def on(self, *prefix: str, reply: Reply | str | int | Handler = "") -> FakeRunner:
        """Commands whose argv starts with prefix get reply: a Reply, stdout text, an exit code, or a function of
        the argv that returns one of those."""
        if callable(reply):
            handler = reply
        else:
            fixed = reply

            def handler(_argv: list[str]) -> Reply | str | int:
                return fixed
        self._scripts.append((prefix, handler))
        return self

    @property
    def commands(self) -> list[list[str]]:
        return [list(c.argv) for c in self.calls]

    def ran(self, *prefix: str) -> list[list[str]]:
        """The commands run whose argv starts with prefix, in order."""
        return [c for c in self.commands if tuple(c[:len(prefix)]) == prefix]

    def text(self, path: str | PurePosixPath) -> str:
        return self.files[str(path)].decode()

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.paths or any(f.startswith(path.rstrip("/") + "/")
                                                                for f in self.files)

    # -- the CommandRunner protocol -----------------------------------------------------------------------
    @property
    def where(self) -> str:
        return self._where

    def run(self, argv: Sequence[str], *, sudo: bool = False, input: bytes | None = None,
            timeout: float | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> RunResult:
        if any(not isinstance(a, str) for a in argv):
            raise TypeError(f"argv items must be str: {argv!r}")  # as the real runners
        args = list(argv)
        self.calls.append(Call(tuple(args), sudo, env, input))
        reply = self._answer(args, input)
        out = reply.out if isinstance(reply.out, bytes) else reply.out.encode()
        result = RunResult(tuple(args), reply.exit_code, out, reply.err.encode(), reply.seconds)
        if check and not result.ok:
            raise CommandError(result, self.where)
        return result

    def stream(self, argv: Sequence[str], *, sudo: bool = False, stdin: BinaryIO | None = None,
               stdout: BinaryIO, stderr: BinaryIO, timeout: float | None = None) -> int:
        result = self.run(argv, sudo=sudo, input=stdin.read() if stdin else None, check=False)
        stdout.write(result.stdout)
        stderr.write(result.stderr)
        return result.exit_code

    def write_file(self, dest: PurePosixPath, data: bytes, *, mode: int = 0o644, sudo: bool = True) -> None:
        self.files[str(dest)] = bytes(data)
        self.modes[str(dest)] = mode
        self.writes.append(str(dest))

    def read_file(self, path: PurePosixPath, *, sudo: bool = True) -> bytes:
        return self.run(["cat", "--", str(path)], sudo=sudo).stdout

    def close(self) -> None:
        self.closed = True

    # -- answers ------------------------------------------------------------------------------------------
    def _answer(self, argv: list[str], input: bytes | None = None) -> Reply:
        for prefix, handler in reversed(self._scripts):
            if tuple(argv[:len(prefix)]) == prefix:
                return _reply(handler(argv))
        builtin = self._builtin(argv) or self._files_script(argv, input)
        if builtin is None:
            raise AssertionError(f"{self.where}: nobody scripted {argv!r} (use FakeRunner.on)")
        return builtin

    def _builtin(self, argv: list[str]) -> Reply | None:
        prog, args = argv[0], [a for a in argv[1:] if a != "--"]
        if prog == "test" and len(args) == 2:
            return Reply(0 if self.exists(args[1]) else 1)
        if prog == "cat" and len(args) == 1:
            if args[0] in self.files:
                return Reply(0, self.files[args[0]])  # the bytes as they are
            return Reply(1, err=f"cat: {args[0]}: No such file or directory")
        if prog == "rm":
            recursive = any(a.startswith("-") and "r" in a for a in args)
            for path in (a for a in args if not a.startswith("-")):
                self.files.pop(path, None)
                if recursive:
                    for f in [f for f in self.files if f.startswith(path.rstrip("/") + "/")]:
                        del self.files[f]
            return Reply(0)
        if prog == "rmdir":
            return Reply(0)
        return None

    def _files_script(self, argv: list[str], input: bytes | None) -> Reply | None:
        """minisand.runner.files' two constant scripts: many files read as one tar stream, many written from one."""
        from minisand.runner.files import FileSpec, pack, parse_tar, read_argv, write_argv

        if argv[:3] == read_argv([])[:3]:
            present = [(p.lstrip("/"), FileSpec(self.files[p], self.modes.get(p, 0o644)))
                       for p in argv[4:] if p in self.files]
            return Reply(0, pack(present) if present else b"")
        if argv[:3] == write_argv(PurePosixPath("/"), [])[:3]:
            members = {p.name: data for p, data in parse_tar(input or b"").items()}
            pairs = argv[5:]
            for name, dest in zip(pairs[::2], pairs[1::2], strict=True):
                self.files[dest] = members[name]
                self.writes.append(dest)
            return Reply(0)
        return None


def _reply(value: Reply | str | int) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, int):
        return Reply(value)
    return Reply(0, value)


@dataclass
class FakeServices:
    """The node's service manager: which services run, and every call made to it."""

    active: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def _start(self, verb: str, name: str) -> None:
        self.calls.append((verb, name))
        self.active.add(name)

    def start(self, name: str) -> None:
        self._start("start", name)

    def restart(self, name: str) -> None:
        self._start("restart", name)

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))
        self.active.discard(name)

    def is_active(self, name: str) -> bool:
        return name in self.active

    def enable(self, name: str) -> None:
        self.calls.append(("enable", name))

    def daemon_reload(self) -> None:
        self.calls.append(("daemon-reload", ""))


class FakeDriver:
    """A driver of a given name whose machine exists with a record (no process, no VM)."""

    def __init__(self, name: str, record: MachineRecord | None = None) -> None:
        self.name = name
        self._record = record

    def record(self) -> MachineRecord | None:
        return self._record


GUEST_FACTS = NodeFacts(systemd=True, cgroup_v2=True, cap_sys_resource=True,
                        containerd_version="containerd github.com/containerd/containerd/v2 2.1.9+unknown",
                        ip="10.0.2.15", kernel="7.2.12+deb14-amd64")


def fake_node(machine: str = "m01", driver: str = "qemu", *, runner: FakeRunner | None = None,
              services: FakeServices | None = None, facts: NodeFacts = GUEST_FACTS,
              record: MachineRecord | None = None, control_plane: bool = True) -> Node:
    from minisand.node import Node

    return Node(machine=machine, driver=FakeDriver(driver, record),  # type: ignore[arg-type]
                runner=runner or FakeRunner(where=f"fake {machine}"), services=services or FakeServices(),
                facts=facts, control_plane=control_plane)


def qemu_settings(tmp_path: Path, **kw: object) -> QemuSettings:
    """A qemu launch's settings with fixed test paths; kw overrides fields."""
    from minisand.drivers.qemu.cmdline import GuestForward, QemuSettings

    base: dict[str, object] = dict(
        qemu="qemu-system-x86_64", name="dev", accel="tcg", cpus=2, memory_mb=2048, disk=tmp_path / "d.qcow2",
        iso=tmp_path / "m.iso", kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd", append="console=ttyS0",
        ssh_port=40022, apiserver_port=40443, restrict=True,
        guest_forwards=(GuestForward.parse("10.0.2.100:5000=127.0.0.1:5001"),),
        fw_cfg_files=(("opt/minisand/authorized_keys", tmp_path / "k"),), fw_cfg_strings=(),
        serial_log=tmp_path / "serial.log", qmp_socket=tmp_path / "qmp.sock", pidfile=tmp_path / "qemu.pid")
    base.update(kw)
    return QemuSettings(**base)  # type: ignore[arg-type]
