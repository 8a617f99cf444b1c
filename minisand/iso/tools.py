"""Host commands of the ISO build: argv lists only, output appended to the build log, failures as
MinisandError(ISO_ERROR) naming the command and the log."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from minisand import hosttools
from minisand.errors import ExitCode, MinisandError

log = logging.getLogger(__name__)

def require_tools(names: Sequence[str]) -> None:
    """Refuses to build when a host tool is missing, naming its package (minisand.hosttools)."""
    registry = hosttools.by_program()
    gone = [registry[n] for n in names if hosttools.locate(n) is None]
    if gone:
        what, hint = hosttools.describe_missing(gone)
        raise MinisandError(f"building the ISO needs {what} on this host", hint=hint, code=ExitCode.ISO_ERROR)


class BuildLog:
    """Appends every command, its output and its duration to one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def note(self, text: str) -> None:
        with self.path.open("a") as f:
            f.write(f"# {time.strftime('%H:%M:%S')} {text}\n")

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 3600, capture: bool = False) -> str:
        """Runs argv; returns its stdout when capture=True (stderr still goes to the log)."""
        start = time.monotonic()
        self.note("$ " + " ".join(argv))
        with self.path.open("a") as logf:
            try:
                proc = subprocess.run(list(argv), env=dict(env) if env else None, cwd=cwd, timeout=timeout,
                                      stdin=subprocess.DEVNULL, check=False, text=True,
                                      stdout=subprocess.PIPE if capture else logf, stderr=logf)
            except FileNotFoundError as e:
                req = hosttools.by_program().get(Path(argv[0]).name)
                raise MinisandError(f"{argv[0]} is not installed",
                                    hint=req.install_hint() if req else f"install {argv[0]}",
                                    code=ExitCode.ISO_ERROR) from e
            except subprocess.TimeoutExpired as e:
                raise MinisandError(f"`{argv[0]}` timed out after {timeout:.0f}s",
                                    hint=f"see {self.path}", code=ExitCode.ISO_ERROR) from e
        took = time.monotonic() - start
        self.note(f"exit {proc.returncode} after {took:.1f}s")
        log.info("iso build: %s exited %d after %.1fs", argv[0], proc.returncode, took)
        if proc.returncode != 0:
            raise MinisandError(f"`{' '.join(argv[:4])}{' …' if len(argv) > 4 else ''}` failed "
                                f"(exit {proc.returncode})", hint=f"the build log is {self.path}",
                                code=ExitCode.ISO_ERROR)
        return proc.stdout if capture else ""
