"""The guest contract: every string minisand and its ISO (iso/ at the top of the tree) agree on, in one module.
The guest-side layout (what the ISO mounts where), the console markers its units print, the fw_cfg keys its
first-boot unit reads, the kernel command line and the options its initramfs reads, the containerd socket, and
how a kernel panic shows on the serial console. tests/unit/test_guest_contract.py checks that the ISO's scripts
and config carry exactly these strings.

Kernel panics: under TCG with several vCPUs (qemu's multi-threaded TCG) the guest kernel occasionally dies early
in boot with `Oops: int3` in scheduler-clock code: the kernel rewrites a static branch through a temporary int3
while the other vCPU still runs a stale translation of that instruction. The boot is lost but nothing is damaged
(it happens about 1.5 s in, before the initramfs mounts any disk), so the caller may kill the machine and start it
again."""

from __future__ import annotations

import re
from pathlib import Path
from pathlib import PurePosixPath as P

from minisand.errors import ExitCode, MinisandError

# --- the guest-side layout
GUEST_USER = "minisand"
DATA_LABEL = "minisand-data"
DATA_MOUNT = P("/var/lib/minisand-data")
STATE_DIR = P("/var/lib/minisand")  # on the data disk (bind mount)
BIN_DIR = P("/var/lib/minisand/bin")  # Kubernetes binaries per version: BIN_DIR/<version>/
ADDONS_DIR = P("/var/lib/minisand/addons")
CONTAINERD_CONFIG = P("/etc/containerd/config.toml")
CONTAINERD_CONF_D = P("/etc/containerd/conf.d")
CERTS_D = P("/etc/containerd/certs.d")
CNI_CONF_DIR = P("/etc/cni/net.d")
CNI_BIN_DIR = P("/usr/lib/cni")
KUBERNETES_DIR = P("/etc/kubernetes")
KUBELET_DIR = P("/var/lib/kubelet")
HOSTNAME_FILE = P("/etc/hostname")
# persisted on the data disk (the initramfs bind-mounts persist/<dir> over each; see iso/initramfs/init)
PERSISTED = (P("/var/lib/containerd"), P("/var/lib/kubelet"), P("/var/lib/etcd"), P("/var/lib/minisand"),
             P("/etc/kubernetes"), P("/etc/containerd"), P("/etc/cni/net.d"), P("/etc/systemd/system"))
NODE_IMAGE_MARKER = P("/var/lib/minisand/node-image.json")  # what a node image put on the disk

# --- containerd's socket (the ISO's crictl.yaml, the kubelet, kubeadm and ctr all use it; the none driver's too)
CONTAINERD_SOCK = P("/run/containerd/containerd.sock")
CRI_SOCKET = f"unix://{CONTAINERD_SOCK}"

# --- serial console markers (iso/rootfs/usr/lib/minisand/announce and firstboot, iso/initramfs/init)
HOST_KEYS_BEGIN = "-----BEGIN MINISAND HOST KEYS-----"
HOST_KEYS_END = "-----END MINISAND HOST KEYS-----"
ROOT_LOGIN = "MINISAND-ROOT-LOGIN"  # printed with SSH_READY by images that accept minisand's key for root
SSH_READY = "MINISAND-SSH-READY"  # network up, sshd listening: the moment to connect
PROBE_OK = "MINISAND-PROBE-OK"  # the initramfs under PROBE_OPTION prints it and powers off

# --- qemu fw_cfg entries the first-boot unit reads (iso/rootfs/usr/lib/minisand/firstboot)
FW_CFG_DIR = "opt/minisand"
FW_CFG_KEYS = f"{FW_CFG_DIR}/authorized_keys"
FW_CFG_HOSTNAME = f"{FW_CFG_DIR}/hostname"

# --- the kernel command line (iso/recipe.toml [image] cmdline: isolinux appends it, direct kernel boot uses it)
# net.ifnames=0: the NIC keeps its kernel name (eth0) and networkd need not wait for udev to rename it.
# transparent_hugepage=never: with THP on, khugepaged keeps ~130 MiB out of MemAvailable on a 2 GiB guest.
KERNEL_CMDLINE = "console=ttyS0,115200 console=tty0 quiet net.ifnames=0 transparent_hugepage=never"
PROBE_OPTION = "minisand.probe=1"  # the initramfs prints PROBE_OK and powers off at once (the KVM probe)
DEBUG_OPTION = "minisand.debug=1"  # the initramfs prints each step


def kernel_cmdline(*, probe: bool = False, debug: bool = False) -> str:
    """The command line for direct kernel boot (qemu `-append`, hyperkit)."""
    parts = [KERNEL_CMDLINE]
    if probe:
        parts.append(PROBE_OPTION)
    if debug:
        parts.append(DEBUG_OPTION)
    return " ".join(parts)


# --- kernel panics on the serial console
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
