"""The only module that knows the guest-side layout (what the ISO mounts where)."""

from __future__ import annotations

from pathlib import PurePosixPath as P

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
