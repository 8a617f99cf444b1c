"""Measures the guest image: ISO size, build time (cached, and cold with --cold), the bare floor (Debian's kernel
+ minisand's busybox initramfs reaching init: the probe boot), qemu start -> SSH reachable under TCG (direct
kernel boot and isolinux), and idle guest memory (`free -m` used).

    sudo .venv/bin/python bench/iso_boot.py [--cold] [--runs N] [--json]

Root: it builds the ISO (cached by recipe hash) and boots qemu; every qemu is killed by PID at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from minisand.iso.acquire import extract_boot_files
from minisand.iso.build import build_iso
from minisand.iso.smoke import VMOptions, booted, run
from minisand.keys import ensure_client_key


def _qcow2(path: Path) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "8G"], check=True)
    return path


def probe_floor(iso: Path, boot: tuple[Path, Path], work: Path) -> tuple[float, list[str]]:
    """Seconds to MINISAND-PROBE-OK, and the kernel panics that restarted the boot."""
    with booted(VMOptions(iso=iso, workdir=work, boot_files=boot, append="minisand.probe=1")) as vm:
        t = vm.wait_console("MINISAND-PROBE-OK", 120)
        vm.wait_exit(30)
        return t, list(vm.panics)


def boot_to_ssh(iso: Path, boot: tuple[Path, Path] | None, work: Path, key: Path, pub: str,
                disk: Path | None, settle: float = 0.0) -> dict[str, Any]:
    """Seconds from qemu start to the host-key block and to an authenticated SSH session; memory after settle."""
    opts = VMOptions(iso=iso, workdir=work, disk=disk, boot_files=boot, authorized_key=pub)
    with booted(opts) as vm:
        t_keys = vm.wait_console("-----END MINISAND HOST KEYS-----", 300)
        host_key = vm.host_key(300)  # and MINISAND-SSH-READY
        t_ready = vm.elapsed()
        client = vm.ssh(key, host_key, 180)
        t_ssh = vm.elapsed()
        result: dict[str, Any] = {"host_keys_s": round(t_keys, 2), "ready_s": round(t_ready, 2),
                                  "ssh_s": round(t_ssh, 2), "panics": list(vm.panics)}
        try:
            result["containerd_active_s"] = _wait_active(vm, client, "containerd")
            # the D-Bus socket (systemd-analyze's way in) listens from the second half of the boot on
            run(client, "systemctl is-system-running --wait")
            _, analyze = run(client, "systemd-analyze")
            result["systemd_analyze"] = analyze.strip().splitlines()[0] if analyze.strip() else ""
            if settle:
                time.sleep(settle)
                _, free = run(client, "free -m")
                mem = free.splitlines()[1].split()
                result["used_mib"] = int(mem[2])
                result["free_m"] = free.strip()
                _, meminfo = run(client, "cat /proc/meminfo")
                fields = dict(line.split(":", 1) for line in meminfo.splitlines() if ":" in line)
                result["meminfo_kib"] = {k: int(fields[k].split()[0]) for k in (
                    "MemTotal", "MemFree", "MemAvailable", "AnonPages", "Shmem", "Slab", "KernelStack",
                    "PageTables", "VmallocUsed", "Cached", "AnonHugePages") if k in fields}
                _, min_free = run(client, "cat /proc/sys/vm/min_free_kbytes")
                result["min_free_kbytes"] = int(min_free.strip())
        finally:
            client.close()
        return result


def _wait_active(vm: Any, client: Any, unit: str, timeout: float = 180) -> float | None:
    """Seconds since qemu started when the unit was active (containerd starts after sshd)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, state = run(client, f"systemctl is-active {unit}")
        if state.strip() == "active":
            return round(float(vm.elapsed()), 2)
        time.sleep(0.5)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cold", action="store_true", help="rebuild the ISO from scratch (force) and time it")
    ap.add_argument("--runs", type=int, default=3, help="boots per measurement")
    ap.add_argument("--settle", type=float, default=30.0, help="seconds idle before reading `free -m`")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    report: dict[str, Any] = {}
    if args.cold:
        report["build_cold_s"] = round(build_iso(None, force=True).seconds, 1)
    cached = build_iso(None)
    report["build_cached_s"] = round(cached.seconds, 3)
    report["iso"] = str(cached.iso)
    report["iso_bytes"] = cached.size
    report["iso_mib"] = round(cached.size / 2**20, 1)
    with tempfile.TemporaryDirectory(prefix="minisand-bench-") as tmp:
        work = Path(tmp)
        key = work / "id_ed25519"
        pub = ensure_client_key(key, "bench")
        boot = extract_boot_files(cached.iso, work / "boot")
        probes = [probe_floor(cached.iso, boot, work / f"probe{i}") for i in range(args.runs)]
        report["floor_probe_s"] = [round(t, 2) for t, _ in probes]
        probe_panics = [p for _, panics in probes for p in panics]
        disk = _qcow2(work / "data.qcow2")
        first = boot_to_ssh(cached.iso, boot, work / "first", key, pub, disk)
        report["direct_first_boot"] = first  # formats the blank data disk, generates host keys
        direct = [boot_to_ssh(cached.iso, boot, work / f"direct{i}", key, pub, disk,
                              settle=args.settle if i == 0 else 0.0) for i in range(args.runs)]
        report["direct_boots"] = direct
        report["direct_ssh_s_median"] = statistics.median(d["ssh_s"] for d in direct)
        report["idle_used_mib"] = direct[0].get("used_mib")
        iso_boot = boot_to_ssh(cached.iso, None, work / "isolinux", key, pub, disk)
        report["isolinux_boot"] = iso_boot
        report["kernel_panics"] = probe_panics + [p for b in [first, *direct, iso_boot] for p in b["panics"]]
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"ISO: {report['iso']} {report['iso_mib']} MiB ({report['iso_bytes']} bytes)")
    if "build_cold_s" in report:
        print(f"build, cold: {report['build_cold_s']} s")
    print(f"build, cached: {report['build_cached_s']} s")
    print(f"floor (kernel + busybox initramfs reaching init, probe): {report['floor_probe_s']} s")
    print(f"direct kernel boot, first boot (blank disk): host keys {first['host_keys_s']} s, "
          f"ready {first['ready_s']} s, SSH {first['ssh_s']} s")
    for i, d in enumerate(direct):
        print(f"direct kernel boot #{i + 1}: host keys {d['host_keys_s']} s, ready {d['ready_s']} s, "
              f"SSH {d['ssh_s']} s, containerd active {d['containerd_active_s']} s ({d['systemd_analyze']})")
    print(f"direct kernel boot, SSH median: {report['direct_ssh_s_median']} s")
    print(f"isolinux (cdrom) boot: host keys {iso_boot['host_keys_s']} s, ready {iso_boot['ready_s']} s, "
          f"SSH {iso_boot['ssh_s']} s")
    print(f"kernel panics that restarted a boot (multi-threaded TCG, see minisand.guest): "
          f"{len(report['kernel_panics'])} {report['kernel_panics']}")
    print(f"idle memory after {args.settle:.0f} s: used {report['idle_used_mib']} MiB\n{direct[0].get('free_m', '')}")
    print(f"meminfo (KiB): {direct[0].get('meminfo_kib')}; vm.min_free_kbytes {direct[0].get('min_free_kbytes')}")


if __name__ == "__main__":
    main()
