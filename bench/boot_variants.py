"""Boot to SSH under TCG with the qemu driver's own command line (minisand.drivers.qemu.cmdline.build_argv), and
with one thing changed at a time: the machine type, the CPU model, the bus of the ISO. Each boot uses a data
disk that is already formatted (what a node image gives a new machine), so no mke2fs is counted.

    python -m bench.boot_variants [--runs N] [--settle S] [--variants a,b]

Root (qemu); every qemu is killed by PID at the end. Run it under the VM lock."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from minisand.drivers.qemu.cmdline import QemuSettings, build_argv
from minisand.guest import kernel_cmdline
from minisand.iso.acquire import extract_boot_files
from minisand.iso.build import build_iso
from minisand.iso.smoke import QemuVM, VMOptions, run
from minisand.keys import ensure_client_key

# name -> (machine, cpu, how the ISO is attached)
VARIANTS: dict[str, tuple[str, str, str]] = {
    "driver": ("q35,hpet=off", "max", "ahci"),
    "pc": ("pc,hpet=off", "max", "ide"),
    "qemu64": ("q35,hpet=off", "qemu64", "ahci"),
    "pc-qemu64": ("pc,hpet=off", "qemu64", "ide"),
    "iso-virtio": ("q35,hpet=off", "max", "virtio"),
}


class DriverVM(QemuVM):
    """The qemu driver's argv (without -daemonize), with the variant's machine, CPU and ISO bus."""

    def __init__(self, opts: VMOptions, variant: tuple[str, str, str], disk: Path, memory_mb: int) -> None:
        super().__init__(opts)
        self.variant = variant
        self.disk = disk
        self.memory_mb = memory_mb

    def argv(self) -> list[str]:
        o = self.opts
        assert o.boot_files is not None and o.authorized_key is not None
        fw = o.workdir / "fw"
        fw.mkdir(exist_ok=True)
        (fw / "keys").write_text(o.authorized_key.strip() + "\n")
        (fw / "hostname").write_text("bench\n")
        s = QemuSettings(qemu="qemu-system-x86_64", name="bench-boot", accel="tcg", cpus=2, memory_mb=self.memory_mb,
                         disk=self.disk, iso=o.iso, kernel=o.boot_files[0], initrd=o.boot_files[1],
                         append=f"{kernel_cmdline()} {o.append}".strip(), ssh_port=self.ssh_port, apiserver_port=0,
                         restrict=True,
                         guest_forwards=(), fw_cfg_files=(("opt/minisand/authorized_keys", fw / "keys"),
                                                          ("opt/minisand/hostname", fw / "hostname")),
                         fw_cfg_strings=(), serial_log=self.serial_log, qmp_socket=o.workdir / "qmp.sock",
                         pidfile=o.workdir / "qemu.pid")
        argv = [a for a in build_argv(s) if a != "-daemonize"]
        argv = [a.replace(",hostfwd=tcp:127.0.0.1:0-:8443", "") for a in argv]
        machine, cpu, iso_bus = self.variant
        argv[argv.index("-machine") + 1] = machine
        argv[argv.index("-cpu") + 1] = cpu
        if iso_bus != "ahci":
            i = argv.index("ide-cd,drive=cd0,bus=ide.1")
            if iso_bus == "ide":
                argv[i] = "ide-cd,drive=cd0"
            else:
                argv[i - 2] = argv[i - 2].replace("media=cdrom,", "")
                argv[i] = "virtio-blk-pci,drive=cd0"
        return argv


def boot(iso: Path, boot_files: tuple[Path, Path], work: Path, key: Path, pub: str, disk: Path,
         variant: tuple[str, str, str], settle: float, memory_mb: int, append: str = "") -> dict[str, Any]:
    vm = DriverVM(VMOptions(iso=iso, workdir=work, boot_files=boot_files, authorized_key=pub, append=append),
                  variant, disk, memory_mb)
    try:
        vm.start()
        host_key = vm.host_key(300)
        ready = vm.elapsed()
        client = vm.ssh(key, host_key, 180)
        run(client, "true")
        out: dict[str, Any] = {"ready_s": round(ready, 2), "ssh_s": round(vm.elapsed(), 2), "panics": vm.panics,
                               "load": round(os.getloadavg()[0], 1)}
        try:
            run(client, "systemctl is-system-running --wait")
            out["analyze"] = run(client, "sudo -n systemd-analyze")[1].strip().splitlines()[0]
            out["chain"] = run(client, "sudo -n systemd-analyze critical-chain --no-pager minisand-ready.service")[1]
            out["blame"] = run(client, "sudo -n systemd-analyze blame --no-pager")[1].splitlines()[:12]
            out["kernel_s"] = run(client, "cat /proc/uptime")[1].split()[0]
            if "initcall_debug" in append:  # the slowest kernel initcalls
                calls = run(client, "sudo -n dmesg")[1].splitlines()
                timed = [(int(ln.rsplit(" after ", 1)[1].split()[0]), ln) for ln in calls
                         if "initcall" in ln and " returned " in ln and " after " in ln
                         and ln.rsplit(" after ", 1)[1].split()[0].isdigit()]
                out["initcalls"] = [ln for _, ln in sorted(timed, reverse=True)[:15]]
                out["dmesg_tail"] = [ln for ln in calls if "Run /init" in ln or "Freeing unused" in ln]
            if settle:
                time.sleep(settle)
                out["used_mib"] = int(run(client, "free -m")[1].splitlines()[1].split()[2])
        finally:
            client.close()
        return out
    finally:
        vm.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--settle", type=float, default=30.0, help="idle seconds before `free -m` (first run only)")
    ap.add_argument("--memory", type=int, default=4096, help="MiB, as the seed demo's --memory=4g")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--append", default="", help="kernel command line additions, e.g. initcall_debug")
    args = ap.parse_args()
    iso = build_iso(None)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="minisand-bootvar-") as tmp:
        work = Path(tmp)
        key = work / "id_ed25519"
        pub = ensure_client_key(key, "bench")
        files = extract_boot_files(iso.iso, work / "boot")
        disk = work / "data.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "20G"], check=True)
        first = boot(iso.iso, files, work / "format", key, pub, disk, VARIANTS["driver"], 0, args.memory)
        report["first_boot_formats_disk"] = {k: first[k] for k in ("ready_s", "ssh_s")}
        for name in args.variants.split(","):
            runs = [boot(iso.iso, files, work / f"{name}{i}", key, pub, disk, VARIANTS[name],
                         args.settle if i == 0 else 0, args.memory, args.append) for i in range(args.runs)]
            report[name] = {"variant": VARIANTS[name], "ssh_s_median": statistics.median(r["ssh_s"] for r in runs),
                            "load": [r["load"] for r in runs],
                            "ready_s": [r["ready_s"] for r in runs], "ssh_s": [r["ssh_s"] for r in runs],
                            "used_mib": runs[0].get("used_mib"), "analyze": runs[0].get("analyze"),
                            "chain": runs[0].get("chain"), "blame": runs[0].get("blame"),
                            "initcalls": runs[0].get("initcalls"), "kernel_s": [r.get("kernel_s") for r in runs],
                            "panics": [p for r in runs for p in r["panics"]]}
            r = report[name]
            print(f"{name:<11} {VARIANTS[name]!s:<40} ssh {r['ssh_s']} ready {r['ready_s']} used {r['used_mib']} MiB "
                  f"load {r['load']} | {r['analyze']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    for name in args.variants.split(",")[:1]:
        print(f"\n{name}: critical chain to minisand-ready\n{report[name]['chain']}\nblame:\n"
              + "\n".join(report[name]["blame"] or []) + "\ninitcalls:\n" + "\n".join(report[name]["initcalls"] or []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
