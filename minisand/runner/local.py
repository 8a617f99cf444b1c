"""Runs commands on the local host (the none driver, and host-side tools)."""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import BinaryIO

from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandError, RunResult, sudo_argv, write_file_argv


class LocalRunner:
    def __init__(self, prefix: Sequence[str] = ()) -> None:
        """prefix: argv run before every command, e.g. ["nsenter", "--net=/run/netns/x", "--"]."""
        self._prefix = list(prefix)
        self._is_root = os.geteuid() == 0

    @property
    def where(self) -> str:
        return "the local host"

    @property
    def prefix(self) -> list[str]:
        return list(self._prefix)

    def _argv(self, argv: Sequence[str], sudo: bool) -> list[str]:
        return sudo_argv([*self._prefix, *argv], sudo, self._is_root)

    def run(self, argv: Sequence[str], *, sudo: bool = False, input: bytes | None = None,
            timeout: float | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> RunResult:
        full = self._argv(argv, sudo)
        start = time.monotonic()
        merged_env = {**os.environ, **env} if env else None
        try:
            proc = subprocess.run(full, input=input, capture_output=True, timeout=timeout, env=merged_env,
                                  check=False, stdin=None if input is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            raise MinisandError(f"{full[0]!r} is not installed on the local host",
                                hint=f"install the package that provides {full[0]}",
                                code=ExitCode.GUEST_ERROR) from None
        except subprocess.TimeoutExpired as exc:
            raise MinisandError(f"`{' '.join(full)}` timed out after {timeout:.0f}s",
                                hint="`minisand logs` shows the command log", code=ExitCode.GUEST_ERROR) from exc
        result = RunResult(tuple(full), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
        if check and not result.ok:
            raise CommandError(result, self.where)
        return result

    def stream(self, argv: Sequence[str], *, sudo: bool = False, stdin: BinaryIO | None = None,
               stdout: BinaryIO, stderr: BinaryIO, timeout: float | None = None) -> int:
        full = self._argv(argv, sudo)
        proc = subprocess.Popen(full, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None

        def pump(src: BinaryIO, dst: BinaryIO) -> None:
            for chunk in iter(lambda: src.read1(65536) if hasattr(src, "read1") else src.read(65536), b""):
                dst.write(chunk)
                dst.flush()

        threads = [threading.Thread(target=pump, args=(proc.stdout, stdout), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, stderr), daemon=True)]
        for t in threads:
            t.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        for t in threads:
            t.join()
        return code

    def write_file(self, dest: PurePosixPath, data: bytes, *, mode: int = 0o644, sudo: bool = True) -> None:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        self.run(write_file_argv(dest, tmp, mode), sudo=sudo, input=data)

    def read_file(self, path: PurePosixPath, *, sudo: bool = True) -> bytes:
        return self.run(["cat", "--", str(path)], sudo=sudo).stdout

    def close(self) -> None:
        return None
