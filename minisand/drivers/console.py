"""Reading a guest's serial console while it boots: a kernel panic is recognised at once instead of waiting out
the boot timeout.

Under TCG with several vCPUs (qemu's multi-threaded TCG) the guest kernel occasionally dies early in boot with
`Oops: int3` in scheduler-clock code: the kernel rewrites a static branch through a temporary int3 while the
other vCPU still runs a stale translation of that instruction. The boot is lost but nothing is damaged (it
happens about 1.5 s in, before the initramfs mounts any disk), so the caller may kill the machine and start it
again."""

from __future__ import annotations

import re
from pathlib import Path

from minisand.errors import ExitCode, MinisandError

KERNEL_PANIC = "Kernel panic - not syncing"
_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s*")


class GuestPanicked(MinisandError):
    """The guest kernel panicked while booting; `detail` is the first Oops or panic line of its console."""

    def __init__(self, detail: str, console: Path) -> None:
        super().__init__(f"the guest kernel panicked while booting ({detail})",
                         hint=f"see its console log {console}", code=ExitCode.DRIVER_ERROR, reason="GUEST_PANIC")
        self.detail = detail


def panic_detail(text: str) -> str | None:
    """None if the console text shows no kernel panic; else its first Oops/BUG line (or the panic line)."""
    if KERNEL_PANIC not in text:
        return None
    lines = [_TIMESTAMP.sub("", line).strip() for line in text.splitlines()]
    for prefix in ("Oops:", "BUG:", "general protection fault", KERNEL_PANIC):
        for line in lines:
            if line.startswith(prefix):
                return line
    return KERNEL_PANIC


def raise_if_panicked(text: str, console: Path) -> None:
    """Raises GuestPanicked if `text` (read from the console log at `console`) shows a kernel panic."""
    detail = panic_detail(text)
    if detail is not None:
        raise GuestPanicked(detail, console)


def check_panic(console: Path) -> None:
    """Raises GuestPanicked if the console log at `console` shows a kernel panic."""
    raise_if_panicked(console.read_text(errors="replace") if console.exists() else "", console)
