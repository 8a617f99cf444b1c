"""Runs a command in the calling process's (private) mount namespace with /dev/kvm replaced by a read-only
regular file, so the command sees "no usable KVM":

    unshare --mount --propagation private -- python -m tests.integration.helpers.nokvm PLACEHOLDER QEMU_CONF -- CMD...

QEMU_CONF (bind-mounted over /etc/libvirt/qemu.conf, in that namespace only) must set `namespaces = []`: libvirt's
per-domain /dev namespace would try to move the /dev/kvm bind mount into each qemu's /dev and fail.

Why: on this host /dev/kvm exists but nested KVM does not work. libvirt 9 then finds the device "usable" while
its qemu probe reports KVM unavailable, treats its capabilities cache as stale on every lookup and re-probes
qemu each time (~2-4 s a probe, dozens of lookups per defineXML: minutes per domain operation). With the device
hidden from the test's libvirtd, the cache stays valid; the domains run under TCG (domain type 'qemu', which is
what minisand's KVM probe chooses here anyway)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: nokvm PLACEHOLDER QEMU_CONF -- CMD...", file=sys.stderr)
        return 2
    placeholder, qemu_conf, cmd = argv[0], argv[1], argv[3:]
    if Path("/dev/kvm").exists():
        _bind_ro(placeholder, "/dev/kvm")
    _bind_ro(qemu_conf, "/etc/libvirt/qemu.conf")
    os.execvp(cmd[0], cmd)


def _bind_ro(source: str, target: str) -> None:
    subprocess.run(["mount", "--bind", source, target], check=True, timeout=30)
    subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True, timeout=30)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
