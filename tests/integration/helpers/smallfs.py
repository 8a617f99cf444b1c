"""Runs the minisand CLI against a MINISAND_HOME on a file system of its own, in the calling process's
(private) mount namespace, so a full disk and a read-only file system are real and nothing outside changes:

    unshare --mount --propagation private -- python -m tests.integration.helpers.smallfs SPEC_JSON

SPEC: mountpoint, size (tmpfs size=), seed (a folder copied in as MINISAND_HOME, or null), fill (write a file
until the disk is full, then leave it), readonly (remount read-only), commands (argv lists after `minisand`),
env (added to the environment). Prints one JSON object: for each command its exit code, stdout, stderr and the
paths under MINISAND_HOME it changed (tests/unit/clihelp.snapshot), while the mount still exists."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.unit.clihelp import snapshot

FILLER = "filler"


def _fill(root: Path) -> None:
    fd = os.open(root / FILLER, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 4096) > 0:
                pass
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    mnt = Path(spec["mountpoint"])
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={spec['size']},mode=0700", "tmpfs", str(mnt)],
                   check=True, timeout=30)
    home = mnt / "home"
    if spec.get("seed"):
        shutil.copytree(spec["seed"], home, symlinks=True)
    if spec.get("fill"):
        _fill(mnt)
    if spec.get("readonly"):
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True, timeout=30)
    env = {**os.environ, "MINISAND_HOME": str(home), **spec.get("env", {})}
    results = []
    for cmd in spec["commands"]:
        before = snapshot(mnt)
        proc = subprocess.run([str(Path(sys.executable).parent / "minisand"), *cmd], capture_output=True, text=True,
                              env=env, timeout=120, check=False)
        after = snapshot(mnt)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        results.append({"argv": cmd, "code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
                        "changed": changed})
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
