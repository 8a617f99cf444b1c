"""The node image: a VM's data disk prepared on the host, at native speed, instead of inside the emulated guest.

Like kind's and k3d's node images and minikube's preload, the heavy lifting happens once per Kubernetes version,
image repository, architecture, host containerd version and disk size: the host's containerd (with a private
root, state and socket, in a private mount namespace) imports the preload archive — every blob was verified
against its digest when the archive was built — and unpacks it with the overlayfs snapshotter; the Kubernetes
binaries (verified against their .sha256 when downloaded, and again here) are placed beside it; `mke2fs -d` turns
that tree into an ext4 file system labelled like the ISO's data disk. Each new machine's disk is then a qcow2
layer over it: created at once, the guest finds a labelled, clean file system and mounts it as it mounts any
data disk.

The tree mirrors the disk's `persist/` folder (see iso/README.md, "Boot"):
    persist/var/lib/containerd/                 containerd's root: content, metadata, unpacked snapshots
    persist/var/lib/minisand/bin/<v>/           kubelet, kubeadm, kubectl and SHA256SUMS
    persist/var/lib/minisand/node-image.json    what the disk holds (read with the node's facts)
    persist/etc/containerd/config.toml, ...     configuration as the first start would write it (so containerd
                                                starts with it and is not restarted)

This module holds the recipe (pure: key, paths, configs, argv); minisand.bootstrap.nodeimage_build runs it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from minisand.guest import DATA_LABEL, PERSISTED, STATE_DIR
from minisand.runner.bundle import SUMS_NAME as SUMS_NAME

FORMAT = 1  # bump when the tree's layout or the file system's options change: old images are not reused
CONTAINERD_ROOT = PurePosixPath("/var/lib/containerd")
# ext4 features every kernel of the last decade mounts (the guest's e2fsck and kernel are newer than this list);
# named explicitly so a newer host mke2fs does not switch on something the guest's kernel cannot mount
EXT4_FEATURES = "has_journal,ext_attr,resize_inode,dir_index,filetype,extent,64bit,flex_bg,sparse_super," \
                "large_file,huge_file,dir_nlink,extra_isize,metadata_csum"
# what containerd needs to import and unpack images; everything else (CRI, NRI, /opt, tracing) is left out
DISABLED_PLUGINS = ("io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
                    "io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt",
                    "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.sandbox.controller.v1.shim",
                    "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.grpc.v1.sandbox-controllers")
_VERSION = re.compile(r"\bv?(\d+\.\d+\.\d+)")


@dataclass(frozen=True)
class NodeImageKey:
    """Everything the image's bytes depend on; two starts with the same key share one image."""

    kubernetes_version: str
    repository: str
    arch: str
    containerd_version: str  # of the host containerd that wrote the store, e.g. "2.1.9"
    disk_mb: int
    refs: tuple[str, ...]  # the images in the store
    binaries: tuple[tuple[str, str], ...]  # (name, sha256) of the Kubernetes binaries
    files: tuple[tuple[str, str], ...] = ()  # (guest path, text): configuration placed as a start would write it

    def digest(self) -> str:
        data = json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:16]

    def name(self) -> str:
        return f"{self.kubernetes_version}-{self.arch}-{self.disk_mb}m-{self.digest()}"


def containerd_version(version_output: str) -> str | None:
    """'containerd github.com/containerd/containerd/v2 2.1.9+unknown ' -> '2.1.9'."""
    words = version_output.split()
    for word in words[2:] if len(words) > 2 else words:
        m = _VERSION.match(word)
        if m:
            return m.group(1)
    return None


def store_compatible(host_version: str, guest_version: str | None = None) -> bool:
    """A store written by containerd 2.x is read by the guest's containerd 2.x (same metadata schema and
    snapshot layout). Unknown guest version: what this minisand's ISO ships (containerd 2.1)."""
    major = host_version.split(".")[0]
    return major == "2" and (guest_version is None or guest_version.split(".")[0] == major)


def persisted_path(root: Path, guest_path: str) -> Path:
    """Where a guest file goes in the tree: under persist/, which only the persisted folders come from."""
    p = PurePosixPath(guest_path)
    if not p.is_absolute() or ".." in p.parts or not any(p.is_relative_to(d) and p != d for d in PERSISTED):
        raise ValueError(f"{guest_path} is not in a folder the data disk keeps ({', '.join(map(str, PERSISTED))})")
    return root / "persist" / p.relative_to("/")


def marker(key: NodeImageKey) -> str:
    """NODE_IMAGE_MARKER's text: what the disk holds, read back with the node's facts (no `ctr images list`)."""
    return json.dumps({"name": key.name(), "kubernetes_version": key.kubernetes_version,
                       "repository": key.repository, "refs": list(key.refs)}, indent=2) + "\n"


def marker_refs(text: str | None, repository: str) -> set[str]:
    """The images a node image put on the disk, when it was made for repository (else none)."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return set()
    if not isinstance(data, dict) or data.get("repository") != repository:
        return set()
    return {r for r in data.get("refs", []) if isinstance(r, str)}


def tree_paths(root: Path, kubernetes_version: str) -> tuple[Path, Path]:
    """(containerd root, binaries folder) inside the tree that becomes the file system."""
    persist = root / "persist"
    return (persist / CONTAINERD_ROOT.relative_to("/"),
            persist / (STATE_DIR / "bin" / kubernetes_version).relative_to("/"))


def containerd_config(work: Path, store: Path) -> str:
    """The private containerd's config (version 3): its own root (the store), state and socket under work."""
    disabled = ", ".join(json.dumps(p) for p in DISABLED_PLUGINS)
    return (f"version = 3\nroot = {json.dumps(str(store))}\nstate = {json.dumps(str(work / 'state'))}\n"
            f"disabled_plugins = [{disabled}]\n\n[grpc]\n  address = {json.dumps(str(socket_path(work)))}\n\n"
            f"[ttrpc]\n  address = {json.dumps(str(socket_path(work)) + '.ttrpc')}\n\n"
            "[debug]\n  address = \"\"\n\n[metrics]\n  address = \"\"\n")


def socket_path(work: Path) -> Path:
    return work / "c.sock"


# A constant script: containerd in a mount namespace of its own with a private /run (containerd creates
# /run/containerd at start whatever its config says; the host's stays untouched), then exec'd with its argv.
PRIVATE_RUN = 'mount -t tmpfs -o mode=0755 minisand-node-image /run && exec "$@"'


def containerd_argv(containerd: str, config: Path) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", PRIVATE_RUN, "minisand-node-image",
            containerd, "--config", str(config)]


def mke2fs_argv(tree: Path, image: Path, size_mb: int) -> list[str]:
    """The same file system the initramfs makes on a blank disk (label, no reserved blocks, lazy init), filled
    from tree: owners, modes, hard links, device nodes (overlayfs whiteouts) and extended attributes (opaque
    directories, file capabilities) are copied as they are."""
    return ["mke2fs", "-q", "-F", "-t", "ext4", "-O", f"none,{EXT4_FEATURES}", "-L", DATA_LABEL, "-m", "0",
            "-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", "-d", str(tree), str(image),
            f"{size_mb}M"]

