"""A runner wrapper that logs every command (argv, duration, exit code) to the profile's log file."""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import BinaryIO

from minisand.runner.base import CommandError, CommandRunner, RunResult

log = logging.getLogger("minisand.commands")


class LoggedRunner:
    def __init__(self, inner: CommandRunner, machine: str) -> None:
        self.inner = inner
        self.machine = machine

    @property
    def where(self) -> str:
        return self.inner.where

    def _record(self, argv: Sequence[str], code: int | None, duration: float, extra: str = "") -> None:
        log.info("%s", json.dumps({"machine": self.machine, "argv": list(argv), "exit": code,
                                   "seconds": round(duration, 3), **({"note": extra} if extra else {})}))

    def run(self, argv: Sequence[str], *, sudo: bool = False, input: bytes | None = None,
            timeout: float | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> RunResult:
        start = time.monotonic()
        log.debug("%s", json.dumps({"machine": self.machine, "argv": list(argv), "event": "start"}))
        try:
            result = self.inner.run(argv, sudo=sudo, input=input, timeout=timeout, check=check, env=env)
        except CommandError as exc:
            self._record(exc.result.argv, exc.result.exit_code, exc.result.duration,
                         exc.result.err.strip()[-500:])
            raise
        except Exception as exc:
            self._record(argv, None, time.monotonic() - start, f"{type(exc).__name__}: {exc}")
            raise
        self._record(result.argv, result.exit_code, result.duration,
                     result.err.strip()[-500:] if not result.ok else "")
        return result

    def stream(self, argv: Sequence[str], *, sudo: bool = False, stdin: BinaryIO | None = None,
               stdout: BinaryIO, stderr: BinaryIO, timeout: float | None = None) -> int:
        start = time.monotonic()
        code = self.inner.stream(argv, sudo=sudo, stdin=stdin, stdout=stdout, stderr=stderr, timeout=timeout)
        self._record(argv, code, time.monotonic() - start, "streamed")
        return code

    def write_file(self, dest: PurePosixPath, data: bytes, *, mode: int = 0o644, sudo: bool = True) -> None:
        start = time.monotonic()
        self.inner.write_file(dest, data, mode=mode, sudo=sudo)
        self._record(["<write>", str(dest), f"{len(data)} bytes", f"mode {mode:04o}"], 0,
                     time.monotonic() - start)

    def read_file(self, path: PurePosixPath, *, sudo: bool = True) -> bytes:
        return self.inner.read_file(path, sudo=sudo)

    def close(self) -> None:
        self.inner.close()


def describe(argv: Sequence[str]) -> str:
    return shlex.join(argv)
