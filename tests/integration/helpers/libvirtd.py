"""A libvirtd (and virtlogd) started by a test, libvirtd inside the test's network namespace so that its NAT
networks, bridges, dnsmasq and guests live there; stopped by PID at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.helpers.netns import NetNS, network_namespace


class Libvirtd:
    """libvirtd (and virtlogd) started by the test, libvirtd inside the test's network namespace so that its NAT
    network, bridge, dnsmasq and guests live there; stopped by PID at the end."""

    def __init__(self, ns: NetNS, run_dir: Path) -> None:
        self.ns = ns
        self.pidfiles = {"virtlogd": run_dir / "virtlogd.pid", "libvirtd": run_dir / "libvirtd.pid"}
        self.log = run_dir / "libvirtd.log"  # info level, with timestamps: where a slow libvirt call spent its time

    def start(self) -> None:
        if Path("/run/libvirt/libvirt-sock").exists() and subprocess.run(
                ["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=20).returncode == 0:
            raise RuntimeError("a libvirtd is already running on this host; the test needs its own inside a netns")
        subprocess.run(["virtlogd", "--daemon", "--pid-file", str(self.pidfiles["virtlogd"])], check=True, timeout=30)
        env = {**os.environ, "LIBVIRT_LOG_OUTPUTS": f"2:file:{self.log}",
               "LIBVIRT_LOG_FILTERS": "1:qemu.qemu_process 1:util.cgroup 1:util.systemd 1:util.process"}
        placeholder = self.log.with_name("no-kvm")
        placeholder.write_text("")
        qemu_conf = self.log.with_name("qemu.conf")
        qemu_conf.write_text(Path("/etc/libvirt/qemu.conf").read_text() + "\nnamespaces = []\n")
        # libvirtd in its own mount namespace without a usable /dev/kvm (see helpers/nokvm.py), and in the
        # test's network namespace.
        argv = ["unshare", "--mount", "--propagation", "private", "--",
                *self.ns.argv(sys.executable, "-m", "tests.integration.helpers.nokvm", str(placeholder),
                              str(qemu_conf), "--", "libvirtd", "--daemon", "--pid-file",
                              str(self.pidfiles["libvirtd"]))]
        subprocess.run(argv, check=True, timeout=30, env=env, cwd=Path(__file__).resolve().parents[3])
        deadline = time.monotonic() + 60
        while subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True,
                             timeout=20).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError("libvirtd did not answer within 60s")
            time.sleep(0.5)

    def stop(self) -> None:
        for pidfile in sorted(Path("/run/libvirt/network").glob("*.pid")):  # dnsmasq of libvirt networks
            _kill(pidfile)
        for name in ("libvirtd", "virtlogd"):
            _kill(self.pidfiles[name])


def _kill(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def libvirtd_in_netns(run_dir: Path, prefix: str = "lv") -> Iterator[Libvirtd]:
    with network_namespace(prefix) as ns:
        d = Libvirtd(ns, run_dir)
        try:
            d.start()
            yield d
        finally:
            d.stop()


def libvirt_objects() -> tuple[str, str]:
    doms = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True,
                          text=True, timeout=30).stdout
    nets = subprocess.run(["virsh", "-c", "qemu:///system", "net-list", "--all", "--name"], capture_output=True,
                          text=True, timeout=30).stdout
    return doms, nets
