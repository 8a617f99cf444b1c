"""The CommandRunner contract. Argv lists only: nothing is ever joined into a shell string."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO, Protocol

from minisand.errors import ExitCode, MinisandError


@dataclass(frozen=True)
class RunResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: bytes
    stderr: bytes
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")


class CommandError(MinisandError):
    def __init__(self, result: RunResult, where: str) -> None:
        tail = (result.err.strip() or result.out.strip()).splitlines()[-3:]
        detail = " | ".join(tail)
        super().__init__(
            f"`{shlex.join(result.argv)}` failed on {where} with exit code {result.exit_code}"
            + (f": {detail}" if detail else ""),
            hint="`minisand logs` shows the full command log",
            code=ExitCode.GUEST_ERROR,
        )
        self.result = result


class CommandRunner(Protocol):
    """Runs argv lists on one machine and moves files to and from it."""

    @property
    def where(self) -> str: ...

    def run(self, argv: Sequence[str], *, sudo: bool = False, input: bytes | None = None,
            timeout: float | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> RunResult: ...

    def stream(self, argv: Sequence[str], *, sudo: bool = False, stdin: BinaryIO | None = None,
               stdout: BinaryIO, stderr: BinaryIO, timeout: float | None = None) -> int:
        """Runs argv with its stdout and stderr copied as they arrive; returns its exit code."""
        ...

    def write_file(self, dest: PurePosixPath, data: bytes, *, mode: int = 0o644, sudo: bool = True) -> None:
        """Writes atomically (temporary file + rename), creating parent directories."""
        ...

    def read_file(self, path: PurePosixPath, *, sudo: bool = True) -> bytes: ...

    def close(self) -> None: ...


def sudo_argv(argv: Sequence[str], sudo: bool, is_root: bool) -> list[str]:
    if any(not isinstance(a, str) for a in argv):
        raise TypeError(f"argv items must be str: {argv!r}")
    if sudo and not is_root:
        return ["sudo", "-n", "--", *argv]
    return list(argv)


# A constant script: the paths and mode arrive as positional parameters, never spliced into the text.
_WRITE_SCRIPT = 'set -e; mkdir -p -- "$1"; umask 077; cat > "$2"; chmod "$3" -- "$2"; mv -f -- "$2" "$4"'


def write_file_argv(dest: PurePosixPath, tmp: PurePosixPath, mode: int) -> list[str]:
    """One command that installs stdin at dest atomically (temporary file in the same directory, then rename)."""
    return ["sh", "-c", _WRITE_SCRIPT, "minisand-write", str(dest.parent), str(tmp), f"{mode:04o}", str(dest)]
