"""Boots the built minisand ISO under qemu (TCG) and checks the guest contract: pinned SSH, containerd, crictl,
ctr run of a local image, persistence on the data disk across a power cycle, a blank disk formatted, a disk
with data kept, a NoCloud cidata seed. Every qemu is killed by PID when its test ends (smoke.booted).

The ISO comes from `minisand iso build` (cached by recipe hash: minutes when cold, instant when unchanged)."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minisand.iso.acquire import extract_boot_files
from minisand.iso.build import BuildResult, build_iso
from minisand.iso.smoke import QemuVM, VMOptions, booted, run
from minisand.keys import ensure_client_key
from tests.integration.helpers.oci import busybox_oci_tar

pytestmark = [pytest.mark.root, pytest.mark.vm, pytest.mark.slow]

BOOT_TIMEOUT = 240  # TCG on a shared CPU


@pytest.fixture(scope="module")
def built() -> BuildResult:
    return build_iso(None)


@pytest.fixture(scope="module")
def boot_files(built: BuildResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return extract_boot_files(built.iso, tmp_path_factory.mktemp("boot"))


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("keys") / "id_ed25519"
    return path, ensure_client_key(path, "minisand-test")


@pytest.fixture(scope="module")
def oci_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_oci_tar(tmp_path_factory.mktemp("oci"))


def qcow2(path: Path, size: str = "4G") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def must(client: object, command: str) -> str:
    rc, out = run(client, command)  # type: ignore[arg-type]
    assert rc == 0, f"{command!r} exited {rc}: {out}"
    return out


def wait_active(client: object, unit: str, timeout: float = 180) -> None:
    """containerd starts after sshd (it is not on the path to SSH): wait for it as minisand does."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        _, state = run(client, f"systemctl is-active {unit}")  # type: ignore[arg-type]
        if state.strip() == "active":
            return
        time.sleep(1)
    raise AssertionError(f"{unit} is {state.strip()!r} after {timeout:.0f}s")


@pytest.fixture()
def vm_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_probe_answers_and_powers_off(built: BuildResult, boot_files: tuple[Path, Path], vm_dir: Path) -> None:
    opts = VMOptions(iso=built.iso, workdir=vm_dir, boot_files=boot_files, append="minisand.probe=1")
    with booted(opts) as vm:
        vm.wait_console("MINISAND-PROBE-OK", 120)
        assert vm.wait_exit(60), "the probe boot did not power off"


def _first_boot_checks(vm: QemuVM, key: Path, oci_tar: Path) -> tuple[str, list[str]]:
    host_key = vm.host_key(BOOT_TIMEOUT)
    assert "formatting the blank disk /dev/vda" in vm.console()
    client = vm.ssh(key, host_key, 120)
    try:
        assert must(client, "hostname").strip() == "iso-test-1"
        wait_active(client, "containerd")
        assert '"RuntimeReady"' in must(client, "sudo crictl info")
        assert must(client, "findmnt -n -o SOURCE /var/lib/containerd").strip().startswith("/dev/vda")
        assert must(client, "findmnt -n -o FSTYPE /").strip() == "overlay"
        # DNS through resolved (restrict=on user networking hands out no DNS server, so only the wiring)
        assert must(client, "readlink /etc/resolv.conf").strip().endswith("stub-resolv.conf")
        assert must(client, "systemctl is-active systemd-resolved").strip() == "active"
        assert "MINISAND-SSH-READY" in vm.console()
        # the deferred half of the boot (after minisand-ready) finishes with no failed unit, and nothing left
        # behind to refuse logins
        assert must(client, "systemctl is-system-running --wait").strip() == "running"
        must(client, "test ! -e /run/nologin")
        sftp = client.open_sftp()
        sftp.put(str(oci_tar), "/tmp/smoke.tar")
        sftp.close()
        must(client, "sudo ctr image import --base-name localhost/smoke /tmp/smoke.tar")
        out = must(client, "sudo ctr run --rm localhost/smoke:latest smoke1 /bin/busybox echo hello-from-ctr")
        assert "hello-from-ctr" in out
        # a unit written and enabled by minisand persists (/etc/systemd/system is on the data disk)
        must(client, "printf '[Unit]\\nDescription=t\\n[Service]\\nType=oneshot\\nRemainAfterExit=yes\\n"
                     "ExecStart=/bin/true\\n[Install]\\nWantedBy=multi-user.target\\n' "
                     "| sudo tee /etc/systemd/system/minisand-persist-test.service >/dev/null")
        must(client, "sudo systemctl enable minisand-persist-test.service")
        images = must(client, "sudo ctr image ls -q").split()
        client.exec_command("sudo systemctl poweroff")
    finally:
        client.close()
    return host_key, images


def test_direct_boot_persists_across_a_power_cycle(built: BuildResult, boot_files: tuple[Path, Path],
                                                   client_key: tuple[Path, str], oci_tar: Path,
                                                   vm_dir: Path) -> None:
    key, pub = client_key
    disk = qcow2(vm_dir / "data.qcow2")
    opts = VMOptions(iso=built.iso, workdir=vm_dir / "boot1", disk=disk, boot_files=boot_files,
                     authorized_key=pub, hostname="iso-test-1")
    with booted(opts) as vm:
        host_key, images = _first_boot_checks(vm, key, oci_tar)
        assert vm.wait_exit(90), "the guest did not power off"
    assert "localhost/smoke:latest" in images

    opts2 = VMOptions(iso=built.iso, workdir=vm_dir / "boot2", disk=disk, boot_files=boot_files,
                      authorized_key=pub, hostname="iso-test-1")
    with booted(opts2) as vm:
        assert vm.host_key(BOOT_TIMEOUT) == host_key
        assert "formatting" not in vm.console()
        assert "checking /dev/vda" not in vm.console()  # cleanly unmounted: no e2fsck
        client = vm.ssh(key, host_key, 120)
        try:
            wait_active(client, "containerd")
            assert "localhost/smoke:latest" in must(client, "sudo ctr image ls -q").split()
            assert must(client, "systemctl is-active minisand-persist-test.service").strip() == "active"
        finally:
            client.close()
    # leaving `booted` kills qemu with the data disk mounted: the next boot replays the journal with e2fsck

    opts3 = VMOptions(iso=built.iso, workdir=vm_dir / "boot3", disk=disk, boot_files=boot_files,
                      authorized_key=pub, hostname="iso-test-1")
    with booted(opts3) as vm:
        assert vm.host_key(BOOT_TIMEOUT) == host_key
        assert "checking /dev/vda" in vm.console()
        assert "e2fsck found errors" not in vm.console()
        client = vm.ssh(key, host_key, 120)
        try:
            wait_active(client, "containerd")
            assert "localhost/smoke:latest" in must(client, "sudo ctr image ls -q").split()
        finally:
            client.close()


def test_pinned_key_rejects_another_host_key(built: BuildResult, boot_files: tuple[Path, Path],
                                             client_key: tuple[Path, str], vm_dir: Path) -> None:
    import paramiko
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key, pub = client_key
    opts = VMOptions(iso=built.iso, workdir=vm_dir, boot_files=boot_files, authorized_key=pub,
                     append="minisand.nodata=1")
    with booted(opts) as vm:
        real = vm.host_key(BOOT_TIMEOUT)
        fake = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH,
                                                                      PublicFormat.OpenSSH).decode()
        with pytest.raises(paramiko.BadHostKeyException):
            vm.ssh(key, fake, 120)
        vm.ssh(key, real, 60).close()
        assert "nothing will persist" in vm.console()


def _cidata_seed(path: Path, pub: str, hostname: str) -> Path:
    """A NoCloud seed as cloud-localds makes it: an ISO 9660 volume labelled cidata (Rock Ridge + Joliet)."""
    d = path.with_suffix(".d")
    d.mkdir()
    (d / "meta-data").write_text(f"instance-id: smoke\nlocal-hostname: {hostname}\n")
    (d / "user-data").write_text(f"#cloud-config\nssh_authorized_keys:\n  - {pub}\n")
    subprocess.run(["xorriso", "-as", "mkisofs", "-o", str(path), "-V", "cidata", "-J", "-R", str(d)],
                   check=True, capture_output=True)
    return path


def test_isolinux_boot_with_cidata_keeps_a_disk_with_data(built: BuildResult, client_key: tuple[Path, str],
                                                          vm_dir: Path) -> None:
    key, pub = client_key
    dirty = vm_dir / "dirty.raw"
    with dirty.open("wb") as f:
        f.truncate(256 << 20)
        f.seek(4096)
        f.write(b"precious user data " * 100)
    before = hashlib.sha256(dirty.read_bytes()[: 1 << 20]).hexdigest()
    seed = _cidata_seed(vm_dir / "seed.iso", pub, "from-cidata")
    opts = VMOptions(iso=built.iso, workdir=vm_dir / "vm", authorized_key=None,
                     extra_drives=(f"file={dirty},if=virtio,format=raw",
                                   f"file={seed},if=virtio,format=raw,readonly=on"))
    with booted(opts) as vm:
        host_key = vm.host_key(BOOT_TIMEOUT)
        console = vm.console()
        assert "nothing will persist" in console and "formatting" not in console
        client = vm.ssh(key, host_key, 120)
        try:
            assert must(client, "hostname").strip() == "from-cidata"
            wait_active(client, "containerd")
            assert "BOOT_IMAGE" in must(client, "cat /proc/cmdline")  # isolinux, not direct kernel boot
            client.exec_command("sudo systemctl poweroff")
        finally:
            client.close()
        assert vm.wait_exit(90)
    assert hashlib.sha256(dirty.read_bytes()[: 1 << 20]).hexdigest() == before
