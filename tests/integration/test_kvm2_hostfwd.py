"""kvm2 with --network=user: host forwards added at run time through libvirt's qemu monitor passthrough (what
`minisand service` uses there), reachable on 127.0.0.1 inside the test's network namespace (where libvirtd and its
guest live), removed again, and released by stop."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from minisand.cluster.context import Context
from minisand.cluster.nodes import driver_for
from minisand.drivers.kvm2.driver import USER_NETDEV, Kvm2Driver
from minisand.drivers.qemu import hostfwd
from minisand.iso.build import build_iso
from minisand.paths import Home
from minisand.procs import free_port
from tests.integration.helpers.cli import CLI, qemu_pids
from tests.integration.helpers.libvirtd import Libvirtd

pytestmark = [pytest.mark.root, pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1800)]

PROFILE = "kvm-fwd"
READ = ("import socket,sys\ns=socket.create_connection(('127.0.0.1',int(sys.argv[1])),5);s.settimeout(10)\n"
        "print(s.recv(100).decode().strip())")


def _read_in_ns(libvirtd: Libvirtd, port: int) -> str:
    proc = libvirtd.ns.run(sys.executable, "-c", READ, str(port), check=False, timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def test_kvm2_user_network_forward_through_libvirts_monitor(tmp_path: Path, libvirtd: Libvirtd) -> None:
    iso = build_iso(None)
    cli = CLI(tmp_path / "home", PROFILE, prefix=libvirtd.ns.argv())
    try:
        cli.ok("start", "--driver=kvm2", "--network=user", "--no-kubernetes", f"--iso-url=file://{iso.iso}",
               f"--iso-checksum=sha256:{iso.sha256}", "--memory=2g", "--cpus=2", "--no-guest-egress", label="start")
        cli.ok("ssh", "--", "sudo", "systemd-run", "--unit=fwd-echo", "socat", "TCP-LISTEN:30080,reuseaddr,fork",
               "SYSTEM:echo hello-through-libvirt")
        ctx = Context(Home(cli.home), PROFILE)
        drv = driver_for(ctx, ctx.store.load(PROFILE), PROFILE)
        assert isinstance(drv, Kvm2Driver)
        fwd = hostfwd.ensure(drv.dir, drv.hmp, USER_NETDEV, 30080, owner="test", pick_port=free_port)
        deadline = time.monotonic() + 30
        while _read_in_ns(libvirtd, fwd.host_port) != "hello-through-libvirt" and time.monotonic() < deadline:
            time.sleep(1)
        assert _read_in_ns(libvirtd, fwd.host_port) == "hello-through-libvirt"
        hostfwd.remove(drv.dir, drv.hmp, USER_NETDEV, fwd)
        assert _read_in_ns(libvirtd, fwd.host_port) == ""
        again = hostfwd.ensure(drv.dir, drv.hmp, USER_NETDEV, 30080, pick_port=free_port)
        assert _read_in_ns(libvirtd, again.host_port) == "hello-through-libvirt"
        cli.ok("stop", label="stop")
        assert not (drv.dir / "forwards.json").exists()
    finally:
        cli.run("delete")
        assert qemu_pids(f"minisand-{PROFILE}") == []
