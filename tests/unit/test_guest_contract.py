"""The guest contract: the ISO's scripts and config (iso/) carry exactly the strings minisand.guest defines, and no
other module of minisand spells them out. A change on either side fails here."""

from __future__ import annotations

import ast
import functools
import re
import tomllib
from pathlib import Path

import pytest

from minisand import guest
from minisand.iso.recipe import recipe_dir

ROOT = Path(__file__).resolve().parents[2]
ISO = recipe_dir()
ANNOUNCE = ISO / "rootfs/usr/lib/minisand/announce"
FIRSTBOOT = ISO / "rootfs/usr/lib/minisand/firstboot"
INIT = ISO / "initramfs/init"


def _found(pattern: str, path: Path) -> str | tuple[str, ...]:
    found = re.findall(pattern, path.read_text(), flags=re.MULTILINE)
    assert len(found) == 1, f"{pattern!r} in {path}: {found}"
    return found[0]  # type: ignore[no-any-return]


def _one(pattern: str, path: Path) -> str:
    value = _found(pattern, path)
    assert isinstance(value, str)
    return value


def test_announce_prints_the_host_key_block_and_the_markers_in_order() -> None:
    assert _one(r'^block="(.*)\$NL"$', ANNOUNCE) == guest.HOST_KEYS_BEGIN
    tail = _one(r'^block="\$block(-----.*)"$', ANNOUNCE)
    assert tail.split("${NL}") == [guest.HOST_KEYS_END, guest.ROOT_LOGIN, guest.SSH_READY]


def test_firstboot_reads_the_fw_cfg_keys_and_prints_the_same_markers() -> None:
    base = _one(r"^FWCFG=/sys/firmware/qemu_fw_cfg/by_name/(\S+)$", FIRSTBOOT)
    assert base == guest.FW_CFG_DIR
    read = set(re.findall(r'"\$FWCFG/([\w.-]+)/raw"', FIRSTBOOT.read_text()))
    assert {f"{base}/{name}" for name in read} == {guest.FW_CFG_KEYS, guest.FW_CFG_HOSTNAME}
    assert _one(r"^BEGIN='(.*)'$", FIRSTBOOT) == guest.HOST_KEYS_BEGIN
    assert _one(r"^END='(.*)'$", FIRSTBOOT) == guest.HOST_KEYS_END
    assert _one(r"^DATA=(\S+)$", FIRSTBOOT) == str(guest.DATA_MOUNT)
    assert _one(r"^USER_HOME=(\S+)$", FIRSTBOOT) == f"/home/{guest.GUEST_USER}"


def test_initramfs_reads_the_kernel_options_and_mounts_the_data_disk_where_minisand_expects() -> None:
    found = _found(r"^if has_opt (\S+); then\n\s+for_ttys (\S+)$", INIT)
    assert found == (guest.PROBE_OPTION, guest.PROBE_OK)
    assert _one(r"^debug\(\) \{ if has_opt (\S+);", INIT) == guest.DEBUG_OPTION
    assert _one(r"^DATA_LABEL=(\S+)$", INIT) == guest.DATA_LABEL
    assert _one(r"^DATA_MOUNT=(\S+)$", INIT) == str(guest.DATA_MOUNT)
    persist = re.search(r'^PERSIST="([^"]*)"', INIT.read_text(), flags=re.MULTILINE)
    assert persist is not None
    assert persist.group(1).split() == [str(p) for p in guest.PERSISTED]


def test_the_recipe_boots_the_kernel_command_line_direct_boot_uses() -> None:
    raw = tomllib.loads((ISO / "recipe.toml").read_text())
    assert raw["image"]["cmdline"] == guest.KERNEL_CMDLINE
    assert guest.kernel_cmdline(probe=True, debug=True) == \
        f"{guest.KERNEL_CMDLINE} {guest.PROBE_OPTION} {guest.DEBUG_OPTION}"


def test_crictl_in_the_image_talks_to_the_socket_minisand_uses() -> None:
    conf = ISO / "chroot/configure.sh"
    assert _one(r"runtime-endpoint: (\S+?)\\n", conf) == guest.CRI_SOCKET
    assert _one(r"image-endpoint: (\S+?)\\n", conf) == guest.CRI_SOCKET
    assert f"unix://{guest.CONTAINERD_SOCK}" == guest.CRI_SOCKET


CONTRACT_LITERALS = ("MINISAND-SSH-READY", "MINISAND-ROOT-LOGIN", "MINISAND-PROBE-OK", "MINISAND HOST KEYS",
                     "opt/minisand", "containerd.sock", "minisand.probe=1", "minisand.debug=1",
                     "Kernel panic - not syncing", "transparent_hugepage=never")


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module's code, docstrings left out (they may name the contract's strings)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


@functools.cache
def _code_strings() -> list[tuple[str, str]]:
    return [(f"{path.relative_to(ROOT)}:{line}", value) for path in sorted((ROOT / "minisand").rglob("*.py"))
            if path.name != "guest.py" for line, value in _string_constants(path)]


@pytest.mark.parametrize("literal", CONTRACT_LITERALS)
def test_only_the_guest_module_spells_the_contract_out(literal: str) -> None:
    copies = [where for where, value in _code_strings() if literal in value]
    copies += [str(path.relative_to(ROOT)) for path in sorted((ROOT / "templates").rglob("*"))
               if path.is_file() and literal in path.read_text()]
    assert copies == [], f"{literal!r} is spelled out outside minisand/guest.py"


def test_the_scan_sees_a_copy() -> None:
    """The scan above finds string literals (and skips docstrings): a stray copy would not slip past it."""
    assert (1, "MINISAND-SSH-READY") not in _string_constants(Path(guest.__file__))
    assert any("MINISAND-SSH-READY" in v for _, v in _string_constants(Path(guest.__file__)))
