"""The ISO recipe as data: its hash, the module and trim lists, the initramfs pieces (no root, no subprocess)."""

from __future__ import annotations

import gzip
import shutil
import stat
from pathlib import Path

import pytest

from minisand.errors import MinisandError
from minisand.guest import kernel_cmdline
from minisand.iso.cpio import CpioArchive
from minisand.iso.image import render_isolinux_cfg
from minisand.iso.initramfs import load_order, module_index, module_name
from minisand.iso.recipe import load_recipe, read_list, recipe_dir, recipe_hash
from minisand.iso.trim import glob_match, modules_to_keep, trim_paths


def test_recipe_contract() -> None:
    r = load_recipe()
    assert r.debian.suite == "forky" and r.debian.variant == "minbase"
    assert r.image.volume_label == "MINISAND"
    assert r.image.kernel_path == "/boot/vmlinuz" and r.image.initrd_path == "/boot/initrd.img"
    assert "console=ttyS0,115200 console=tty0" in r.image.cmdline
    for pkg in ("linux-image-amd64", "systemd-sysv", "containerd", "runc", "containernetworking-plugins",
                "openssh-server", "conntrack", "iptables", "sudo", "e2fsprogs"):
        assert pkg in r.packages
    assert not {"kubelet", "kubeadm", "cloud-init"} & set(r.packages)
    assert r.crictl.version.startswith("v1.36.")


def test_recipe_hash_follows_every_recipe_file(tmp_path: Path) -> None:
    copy = tmp_path / "iso"
    shutil.copytree(recipe_dir(), copy)
    load_recipe.cache_clear()
    try:
        base = recipe_hash(load_recipe(copy))
        assert recipe_hash(load_recipe(copy)) == base
        (copy / "README.md").write_text("docs do not change the image\n")
        assert recipe_hash(load_recipe(copy)) == base
        init = copy / "initramfs" / "init"
        init.write_text(init.read_text() + "# changed\n")
        changed = recipe_hash(load_recipe(copy))
        assert changed != base
        init.chmod(init.stat().st_mode & ~stat.S_IXUSR & ~stat.S_IXGRP & ~stat.S_IXOTH)
        assert recipe_hash(load_recipe(copy)) != changed
    finally:
        load_recipe.cache_clear()


def test_glob_match() -> None:
    assert glob_match("drivers/net/*.ko*", "drivers/net/veth.ko.xz")
    assert not glob_match("drivers/net/*.ko*", "drivers/net/wireless/foo.ko.xz")
    assert glob_match("net/netfilter/**", "net/netfilter/ipvs/ip_vs.ko.xz")
    assert glob_match("fs/**", "fs")
    assert not glob_match("fs/ext4/**", "fs/xfs/xfs.ko.xz")


def test_trim_paths_keeps_negated(tmp_path: Path) -> None:
    for rel in ("usr/share/doc/a/copyright", "usr/share/doc/a/changelog.gz", "usr/share/doc/a/examples/x",
                "usr/share/man/man1/x.1", "etc/keep.conf", "boot/vmlinuz-7", "boot/config-7"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x" * 10)
    freed = trim_paths(tmp_path, ["usr/share/doc/*/*", "!usr/share/doc/*/copyright", "usr/share/man",
                                  "boot/vmlinuz*"])
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["boot/config-7", "etc/keep.conf", "usr/share/doc/a/copyright"]
    assert freed == 40


def _fake_moddir(tmp_path: Path) -> Path:
    moddir = tmp_path / "7.0"
    moddir.mkdir()
    (moddir / "modules.dep").write_text(
        "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz\n"
        "kernel/fs/jbd2/jbd2.ko.xz:\n"
        "kernel/fs/mbcache.ko.xz:\n"
        "kernel/lib/crc16.ko.xz:\n"
        "kernel/drivers/block/virtio_blk.ko.xz:\n"
        "kernel/drivers/net/wireless/wifi.ko.xz: kernel/net/wireless/cfg80211.ko.xz\n"
        "kernel/net/wireless/cfg80211.ko.xz:\n"
        "kernel/drivers/scsi/sr_mod.ko.xz: kernel/drivers/cdrom/cdrom.ko.xz\n"
        "kernel/drivers/cdrom/cdrom.ko.xz:\n")
    (moddir / "modules.builtin").write_text("kernel/drivers/virtio/virtio-pci.ko\n")
    return moddir


def test_module_load_order_puts_dependencies_first(tmp_path: Path) -> None:
    paths, deps, builtin = module_index(_fake_moddir(tmp_path))
    order = [module_name(p) for p in load_order(["ext4", "sr-mod", "virtio_pci", "ext4"], paths, deps, builtin)]
    assert order.index("jbd2") < order.index("ext4") and order.index("cdrom") < order.index("sr_mod")
    assert len(order) == len(set(order)) == 6  # virtio_pci is built in
    with pytest.raises(MinisandError):
        load_order(["nosuchmod"], paths, deps, builtin)


def test_modules_to_keep_adds_dependencies(tmp_path: Path) -> None:
    keep = modules_to_keep(_fake_moddir(tmp_path), ["fs/ext4/**", "drivers/block/*.ko*"])
    assert keep == {"kernel/fs/ext4/ext4.ko.xz", "kernel/fs/jbd2/jbd2.ko.xz", "kernel/fs/mbcache.ko.xz",
                    "kernel/lib/crc16.ko.xz", "kernel/drivers/block/virtio_blk.ko.xz"}


def test_initramfs_modules_are_all_kept_in_the_rootfs() -> None:
    r = load_recipe()
    keep = read_list(r, "modules-keep.txt")
    # module name -> a plausible path pattern: each initramfs module must fall under a keep pattern's tree
    wanted = set(read_list(r, "initramfs/modules.txt"))
    assert {"virtio_blk", "sr_mod", "isofs", "squashfs", "overlay", "ext4", "loop", "qemu_fw_cfg"} <= wanted
    assert any(glob_match(p, "net/bridge/br_netfilter.ko.xz") for p in keep)
    assert any(glob_match(p, "fs/overlayfs/overlay.ko.xz") for p in keep)
    assert any(glob_match(p, "net/netfilter/nft_compat.ko.xz") for p in keep)
    assert any(glob_match(p, "drivers/char/hw_random/virtio-rng.ko.xz") for p in keep)


def _cpio_entries(data: bytes) -> dict[str, tuple[int, bytes]]:
    out: dict[str, tuple[int, bytes]] = {}
    pos = 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode()
        body_start = name_start + namesize + (-(110 + namesize) % 4)
        body = data[body_start:body_start + size]
        pos = body_start + size + (-size % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body)


def test_cpio_archive_round_trip() -> None:
    a = CpioArchive()
    a.directory("bin")
    a.file("init", b"#!/bin/sh\n", 0o755)
    a.symlink("bin/sh", "busybox")
    a.char_device("dev/console", 5, 1)
    entries = _cpio_entries(gzip.decompress(gzip.compress(a.finish())))
    assert entries["init"] == (stat.S_IFREG | 0o755, b"#!/bin/sh\n")
    assert entries["bin/sh"] == (stat.S_IFLNK | 0o777, b"busybox")
    assert stat.S_ISCHR(entries["dev/console"][0]) and stat.S_ISDIR(entries["bin"][0])
    with pytest.raises(ValueError):
        a.file("init", b"again")


def test_isolinux_config_boots_at_once_with_the_console_line() -> None:
    cfg = render_isolinux_cfg(load_recipe())
    assert "PROMPT 0" in cfg and "TIMEOUT 1" in cfg
    assert "KERNEL /boot/vmlinuz" in cfg and "INITRD /boot/initrd.img" in cfg
    assert "APPEND " + load_recipe().image.cmdline in cfg
    assert kernel_cmdline(probe=True).endswith("minisand.probe=1")
    assert "minisand.probe" not in kernel_cmdline()


def test_init_script_contract() -> None:
    init = (recipe_dir() / "initramfs" / "init").read_text()
    assert init.index("minisand.probe=1") < init.index("findfs")  # the probe answers before any disk
    assert "MINISAND-PROBE-OK" in init and "poweroff -f" in init
    assert "/sbin/mke2fs" in init and "minisand-data" in init
    for d in ("/var/lib/containerd", "/var/lib/kubelet", "/var/lib/etcd", "/var/lib/minisand", "/etc/kubernetes",
              "/etc/containerd", "/etc/cni/net.d", "/etc/systemd/system"):
        assert d in init
    assert init.index("mount --bind") < init.index("exec switch_root")
