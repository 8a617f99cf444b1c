"""Host tools for the none driver on a Debian 12 host: containerd 2.x from Debian forky (bookworm's
containerd 1.6 is too old for Kubernetes 1.36), and crictl — installed into /usr/local/bin, as a user of the none
driver would install them. `python -m e2e.hosttools install` (idempotent) / `status`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.integration.helpers.tools import CONTAINERD_2, crictl_bin, deb_tool

DEST = Path("/usr/local/bin")


def install() -> list[Path]:
    root = deb_tool(CONTAINERD_2) / "usr" / "bin"
    items = [root / n for n in ("containerd", "containerd-shim-runc-v2", "ctr")]
    # forky's runc needs glibc 2.38; Debian 12's own runc (apt package runc) is used on this host
    items.append(crictl_bin())
    out = []
    for src in items:
        dst = DEST / src.name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            tmp = dst.with_name(dst.name + ".new")
            shutil.copy2(src, tmp)
            tmp.chmod(0o755)
            tmp.replace(dst)
        out.append(dst)
    return out


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "status"
    if cmd == "install":
        for p in install():
            print(p)
        return 0
    if cmd == "status":
        for n in ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "crictl"):
            print(f"{n}: {shutil.which(n) or 'missing'}")
        return 0
    print("usage: python -m e2e.hosttools install|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
