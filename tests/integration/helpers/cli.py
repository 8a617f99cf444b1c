"""Running the minisand CLI the way a user does (a subprocess, its exit code and output), optionally inside a
network namespace the test created."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


@dataclass
class CLI:
    home: Path
    profile: str
    prefix: list[str] = field(default_factory=list)  # e.g. ["nsenter", "--net=/run/netns/x", "--"]
    timings: dict[str, float] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, "MINISAND_HOME": str(self.home), "MINISAND_PROFILE": self.profile,
                "KUBECONFIG": str(self.home / "kubeconfig")}

    def run(self, *args: str, timeout: float = 3600, stdin: str | None = None, stdin_file: Path | None = None,
            label: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [*self.prefix, str(VENV_BIN / "minisand"), *args]
        t0 = time.monotonic()
        if stdin_file is not None:
            with stdin_file.open("rb") as f:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env(), stdin=f,
                                      check=False)
        else:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env(),
                                  input=stdin, check=False)
        if label:
            self.timings[label] = time.monotonic() - t0
        sys.stderr.write(f"$ minisand {' '.join(args)} -> {proc.returncode} ({time.monotonic() - t0:.1f}s)\n"
                         f"{proc.stderr[-3000:]}")
        return proc

    def ok(self, *args: str, timeout: float = 3600, label: str | None = None) -> str:
        proc = self.run(*args, timeout=timeout, label=label)
        assert proc.returncode == 0, f"minisand {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}"
        return proc.stdout


def qemu_pids(marker: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and b"qemu-system" in cmd[0] and any(marker.encode() in a for a in cmd):
                out.append(int(d.name))
    return out
