"""Where things are inside a minisand ISO; the values come from iso/recipe.toml. The kernel command line for direct
kernel boot is part of the guest contract (minisand.guest.kernel_cmdline)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from minisand.iso.recipe import load_recipe


@dataclass(frozen=True)
class IsoLayout:
    volume_label: str  # the ISO 9660 volume id; the initramfs finds the ISO by it
    kernel_path: str  # "/boot/vmlinuz"
    initrd_path: str  # "/boot/initrd.img"
    squashfs_path: str  # "/live/rootfs.squashfs"
    cmdline: str  # "console=ttyS0,115200 console=tty0 quiet"


@functools.cache
def iso_layout() -> IsoLayout:
    image = load_recipe().image
    return IsoLayout(volume_label=image.volume_label, kernel_path=image.kernel_path,
                     initrd_path=image.initrd_path, squashfs_path=image.squashfs_path, cmdline=image.cmdline)
