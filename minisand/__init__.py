"""minisand: a local Kubernetes node in a VM, with containerd and sandboxed runtimes."""

__version__ = "0.1.0"
