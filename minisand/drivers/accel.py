"""Is KVM really usable? /dev/kvm can exist, open and create a VM while a real guest still hangs at boot
(nested virtualisation that does not work). So after the cheap checks we boot the guest's own kernel and
initramfs with `minisand.probe=1` for a few seconds and look for its marker. The verdict is cached."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from minisand import guest
from minisand.fsutil import atomic_write_text

log = logging.getLogger(__name__)

PROBE_MARKER = guest.PROBE_OK
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01


@dataclass(frozen=True)
class AccelVerdict:
    accel: str  # "kvm" | "tcg"
    reason: str
    probed: bool  # a probe boot was run (or its cached result used)


def kvm_device_usable(dev: str = "/dev/kvm") -> tuple[bool, str]:
    if not Path(dev).exists():
        return False, f"{dev} does not exist (no hardware virtualisation, or the kvm module is not loaded)"
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return False, f"{dev} cannot be opened: {exc.strerror} (add yourself to the kvm group)"
    try:
        if fcntl.ioctl(fd, KVM_GET_API_VERSION) != 12:
            return False, f"{dev} speaks an unexpected KVM API version"
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm)
    except OSError as exc:
        return False, f"KVM_CREATE_VM failed on {dev}: {exc.strerror}"
    finally:
        os.close(fd)
    return True, ""


def qemu_binary() -> str:
    arch = platform.machine()
    return f"qemu-system-{'x86_64' if arch in ('x86_64', 'AMD64') else arch}"


def _cache_key(qemu: str, kernel: Path) -> str:
    h = hashlib.sha256()
    h.update(platform.release().encode())
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        h.update(subprocess.run([qemu, "--version"], capture_output=True, check=False, timeout=10).stdout)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                h.update(line.encode())
                break
    except OSError:
        pass
    h.update(str(kernel.stat().st_size).encode())
    return h.hexdigest()[:32]


def _probe_cmdline() -> str:
    return guest.kernel_cmdline(probe=True) + " panic=-1"


def probe_boot(qemu: str, kernel: Path, initrd: Path, timeout: float) -> tuple[bool, float]:
    """Boots kernel+initrd under KVM with minisand.probe=1; True if the marker appears within timeout."""
    argv = [qemu, "-accel", "kvm", "-cpu", "host", "-m", "512", "-smp", "1", "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", _probe_cmdline()]
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen = b""
    ok = False
    try:
        while time.monotonic() - start < timeout:
            chunk = proc.stdout.read(65536)
            if chunk:
                seen = (seen + chunk)[-65536:]
                if PROBE_MARKER.encode() in seen:
                    ok = True
                    break
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    return ok, time.monotonic() - start


def resolve(choice: str, cache_dir: Path, kernel: Path | None, initrd: Path | None,
            qemu: str | None = None, probe_timeout: float = 20.0) -> AccelVerdict:
    """choice: auto | kvm | tcg."""
    if choice == "tcg":
        return AccelVerdict("tcg", "requested", probed=False)
    usable, why = kvm_device_usable()
    if choice == "kvm":
        if not usable:
            from minisand.errors import ExitCode, MinisandError

            raise MinisandError(f"KVM was requested but is not usable: {why}",
                                hint="use --qemu-accel=tcg (slow) or --qemu-accel=auto",
                                code=ExitCode.DRIVER_UNAVAILABLE)
        return AccelVerdict("kvm", "requested", probed=False)
    if not usable:
        return AccelVerdict("tcg", why, probed=False)
    qemu = qemu or qemu_binary()
    if kernel is None or initrd is None or not shutil.which(qemu):
        return AccelVerdict("tcg", "no guest kernel to probe KVM with", probed=False)
    cache = cache_dir / "accel-probe.json"
    key = _cache_key(qemu, kernel)
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return AccelVerdict(cached["accel"], cached["reason"], probed=True)
    except (FileNotFoundError, ValueError, KeyError):
        pass
    ok, seconds = probe_boot(qemu, kernel, initrd, probe_timeout)
    verdict = AccelVerdict("kvm", f"a probe guest booted under KVM in {seconds:.1f}s", True) if ok else \
        AccelVerdict("tcg", f"/dev/kvm is present but a probe guest did not boot under KVM within "
                            f"{probe_timeout:.0f}s (nested virtualisation not working?)", True)
    log.info("KVM probe: %s", verdict.reason)
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, json.dumps({"key": key, "accel": verdict.accel, "reason": verdict.reason}) + "\n")
    return verdict
