"""The hyperkit command line (pure). hyperkit cannot boot an ISO through a BIOS: like minikube we boot the
kernel and initrd extracted from the ISO (kexec), and attach the ISO and a NoCloud `cidata` seed as AHCI
cdroms (hyperkit has no fw_cfg)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HyperkitSettings:
    hyperkit: str
    uuid: str
    cpus: int
    memory_mb: int
    disk: Path  # raw sparse disk image
    iso: Path
    seed: Path  # cidata ISO
    kernel: Path
    initrd: Path
    cmdline: str
    state_dir: Path

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "hyperkit.pid"

    @property
    def console_ring(self) -> Path:
        return self.state_dir / "console-ring"


def build_argv(s: HyperkitSettings) -> list[str]:
    return [
        s.hyperkit, "-A", "-u", "-F", str(s.pidfile), "-c", str(s.cpus), "-m", f"{s.memory_mb}M",
        "-s", "0:0,hostbridge", "-s", "31,lpc",
        "-s", "1:0,virtio-net",
        "-U", s.uuid,
        "-s", f"2:0,virtio-blk,{s.disk}",
        "-s", f"3,ahci-cd,{s.iso}",
        "-s", f"4,ahci-cd,{s.seed}",
        "-s", "5,virtio-rnd",
        "-l", f"com1,autopty={s.state_dir / 'tty'},log={s.console_ring}",
        "-f", f"kexec,{s.kernel},{s.initrd},{s.cmdline}",
    ]
