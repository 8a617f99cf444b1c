"""The VM drivers with real qemu (TCG here) and a real libvirtd: start, ssh (exit codes passed through), stop --cold,
start again on the same disk with the same pinned host key, delete leaving nothing behind."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from minisand.iso.build import BuildResult, build_iso
from tests.integration.helpers.cli import CLI, qemu_pids
from tests.integration.helpers.libvirtd import Libvirtd, libvirt_objects
from tests.integration.helpers.oci import busybox_oci_tar

pytestmark = [pytest.mark.root, pytest.mark.vm, pytest.mark.slow]


@pytest.fixture(scope="module")
def iso() -> BuildResult:
    return build_iso(None)


@pytest.fixture(scope="module")
def oci_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_oci_tar(tmp_path_factory.mktemp("oci"))


def _start_args(iso: BuildResult, driver: str, *extra: str) -> list[str]:
    return ["start", f"--driver={driver}", "--no-kubernetes", f"--iso-url=file://{iso.iso}",
            f"--iso-checksum=sha256:{iso.sha256}", "--memory=2g", "--cpus=2", "--no-guest-egress", *extra]


def _host_key(cli: CLI, machine: str) -> str:
    return str(json.loads((cli.home / "machines" / machine / "machine.json").read_text())["host_key"])


def _containerd_checks(cli: CLI, oci_tar: Path) -> None:
    """The ISO's contract through the driver: containerd active, CRI answering, a local image imported and run."""
    assert cli.ok("ssh", "--", "systemctl", "is-active", "containerd").strip() == "active"
    assert '"RuntimeReady"' in cli.ok("ssh", "--", "sudo", "crictl", "info")
    imported = cli.run("ssh", "--", "sudo", "ctr", "image", "import", "--base-name", "localhost/smoke", "-",
                       stdin_file=oci_tar)
    assert imported.returncode == 0, imported.stderr
    ran = cli.ok("ssh", "--", "sudo", "ctr", "run", "--rm", "localhost/smoke:latest", "smoke1", "/bin/busybox",
                 "echo", "hello-from-ctr")
    assert ran.strip() == "hello-from-ctr"


def _phases(cli: CLI, label: str) -> None:
    """Keeps the start's per-phase times (boot = machine start to SSH answering with the pinned key)."""
    data = json.loads((cli.home / "profiles" / cli.profile / "last-start.json").read_text())
    for phase, seconds in data["phases"].items():
        cli.timings[f"{label}: {phase}"] = seconds


def _record(cli: CLI, name: str, tmp_path: Path) -> None:
    out = Path(os.environ.get("MINISAND_BENCH_OUT", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(cli.timings, indent=2))


def _lifecycle(cli: CLI, iso: BuildResult, oci_tar: Path, driver: str, *extra: str) -> dict[str, float]:
    cli.ok(*_start_args(iso, driver, *extra), label="start (create)")
    _phases(cli, "start (create)")
    kernel = cli.ok("ssh", "--", "uname", "-r").strip()
    assert kernel and "deb" in kernel
    _containerd_checks(cli, oci_tar)
    failing = cli.run("ssh", "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
    assert failing.returncode == 3
    assert failing.stdout.strip() == "to-stdout" and "to-stderr" in failing.stderr
    assert cli.run("ssh", "--", "cat", stdin="through stdin\n").stdout == "through stdin\n"
    cli.ok("ssh", "--", "sudo", "sh", "-c", "echo kept > /var/lib/minisand/marker")
    pinned = _host_key(cli, cli.profile)
    status = json.loads(cli.run("status", "-o", "json").stdout)
    assert status["Host"] == "Running"

    cli.ok("stop", "--cold", label="stop")  # powered off (a plain stop saves: tests/integration/test_resume_vm.py)
    stopped = cli.run("status")
    assert stopped.returncode & 1 and "host: Stopped" in stopped.stdout
    refused = cli.run("ssh", "--", "true")
    assert refused.returncode == 30 and refused.stderr.strip().startswith("minisand: ")

    cli.ok(*_start_args(iso, driver, *extra), label="start (existing)")
    _phases(cli, "start (existing)")
    assert cli.ok("ssh", "--", "cat", "/var/lib/minisand/marker").strip() == "kept"
    assert "localhost/smoke:latest" in cli.ok("ssh", "--", "sudo", "ctr", "image", "ls", "-q").split()
    assert _host_key(cli, cli.profile) == pinned

    cli.ok("delete", label="delete")
    assert not (cli.home / "machines" / cli.profile).exists()
    assert not (cli.home / "profiles" / cli.profile).exists()
    return cli.timings


def test_qemu_driver_lifecycle(iso: BuildResult, oci_tar: Path, tmp_path: Path) -> None:
    cli = CLI(tmp_path / "home", "qemu-it")
    try:
        _lifecycle(cli, iso, oci_tar, "qemu")
        assert qemu_pids(f"minisand-{cli.profile}") == []
        _record(cli, "qemu-lifecycle", tmp_path)
    finally:
        cli.run("delete")
        for pid in qemu_pids(f"minisand-{cli.profile}"):
            os.kill(pid, signal.SIGKILL)


# kvm2's user network is started, forwarded and stopped by test_kvm2_hostfwd.py in the default run; its whole
# lifecycle here (another 6 min of TCG) is the opt-in `variants` marker (`scripts/test --variants`)
@pytest.mark.parametrize("network", ["default", pytest.param("user", marks=pytest.mark.variants)])
def test_kvm2_driver_lifecycle(iso: BuildResult, oci_tar: Path, tmp_path: Path, libvirtd: Libvirtd,
                              network: str) -> None:
    cli = CLI(tmp_path / "home", f"kvm-{network}", prefix=libvirtd.ns.argv())
    try:
        _lifecycle(cli, iso, oci_tar, "kvm2", f"--network={network}")
        doms, nets = libvirt_objects()
        assert f"minisand-{cli.profile}" not in doms
        assert f"minisand-{cli.profile}" not in nets
        assert qemu_pids(f"minisand-{cli.profile}") == []
        _record(cli, f"kvm2-{network}-lifecycle", tmp_path)
    finally:
        cli.run("delete")
