"""URL layouts of the mirrors the lab imitates, as pure functions of the build manifest."""

from __future__ import annotations

from pathlib import Path

from e2e.lab.builder import BuildManifest
from e2e.lab.versions import K8S_BINARIES, k8s_parts

ARCH = "amd64"
GVISOR_ARCH = "x86_64"
GVISOR_BINARIES = ("runsc", "containerd-shim-runsc-v1")


def k8s_binary_path(version: str, binary: str, arch: str = ARCH) -> str:
    """dl.k8s.io: /release/<v>/bin/linux/<arch>/<bin> (+ .sha256 holding the hex digest only)."""
    return f"/release/{version}/bin/linux/{arch}/{binary}"


def gvisor_dir(release: str) -> str:
    """gVisor's bucket: /gvisor/releases/release/<yyyymmdd>/<arch>/ (runsc, runsc.sha512, ...)."""
    return f"/gvisor/releases/release/{release}/{GVISOR_ARCH}"


def crictl_path(version: str) -> str:
    """cri-tools' GitHub releases: /kubernetes-sigs/cri-tools/releases/download/<v>/crictl-<v>-linux-<arch>.tar.gz"""
    return f"/kubernetes-sigs/cri-tools/releases/download/{version}/crictl-{version}-linux-{ARCH}.tar.gz"


def routes(manifest: BuildManifest, textdir: Path) -> dict[str, str]:
    """URL path -> file for everything the binary mirror serves. Small text files are written to textdir."""
    out: dict[str, str] = {}
    k8s = Path(manifest.kubernetes_bin)
    for b in K8S_BINARIES:
        path = k8s_binary_path(manifest.kubernetes, b)
        out[path] = str(k8s / b)
        out[path + ".sha256"] = str(k8s / f"{b}.sha256")
    _, minor, _ = k8s_parts(manifest.kubernetes)
    textdir.mkdir(parents=True, exist_ok=True)
    stable = textdir / "stable.txt"
    stable.write_text(manifest.kubernetes)
    for name in ("stable.txt", f"stable-1.{minor}.txt", "latest.txt", f"latest-1.{minor}.txt"):
        out[f"/release/{name}"] = str(stable)
    gvisor = Path(manifest.gvisor_bin)
    for release in (manifest.gvisor_release, "latest"):
        for b in GVISOR_BINARIES:
            out[f"{gvisor_dir(release)}/{b}"] = str(gvisor / b)
            out[f"{gvisor_dir(release)}/{b}.sha512"] = str(gvisor / f"{b}.sha512")
    tarball = Path(manifest.crictl_tarball)
    out[crictl_path(manifest.crictl)] = str(tarball)
    out[crictl_path(manifest.crictl) + ".sha256"] = str(tarball.parent / f"{tarball.name}.sha256")
    return out
