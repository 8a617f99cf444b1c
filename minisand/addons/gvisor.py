"""The gvisor addon: runsc and containerd-shim-runsc-v1 of a pinned gVisor release (sha512-verified, from gVisor's
release bucket or --gvisor-mirror), installed on the data disk so they survive reboots; containerd's `runsc`
handler (systrap platform: no KVM needed) contributed through the config template; RuntimeClass `gvisor`; a probe
pod proves that a sandboxed pod sees gVisor's kernel, not the node's."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path, PurePosixPath
from typing import Any

from minisand import ui
from minisand.addons import probe
from minisand.addons.context import AddonContext
from minisand.addons.spec import AddonSpec
from minisand.config.model import ClusterConfig
from minisand.cruntime.config import RuntimeHandler, gvisor_handler
from minisand.errors import ExitCode, MinisandError
from minisand.guestpaths import ADDONS_DIR, CONTAINERD_CONFIG
from minisand.templating import render

log = logging.getLogger(__name__)

RELEASE = "20260905"  # gVisor release (yyyymmdd) pinned by this minisand version
PLATFORM = "systrap"  # works without KVM (ptrace's successor)
BINARIES = ("runsc", "containerd-shim-runsc-v1")
ARCH_DIRS = {"amd64": "x86_64", "arm64": "aarch64"}
GUEST_ROOT = ADDONS_DIR / "gvisor"
GUEST_DIR = GUEST_ROOT / RELEASE
RUNSC_TOML = CONTAINERD_CONFIG.with_name("runsc.toml")
HANDLER = "runsc"
RUNTIME_CLASS = "gvisor"


def handlers(_cfg: ClusterConfig) -> tuple[RuntimeHandler, ...]:
    return (gvisor_handler(str(RUNSC_TOML), runtime_path=str(GUEST_DIR / "containerd-shim-runsc-v1")),)


def _bases(cfg: ClusterConfig) -> list[str]:
    from minisand.images.sources import source_candidates

    bases = list(source_candidates(cfg.mirrors).gvisor_bases)
    if cfg.mirrors.offline:
        if not cfg.mirrors.gvisor_mirror:
            raise MinisandError("--offline needs --gvisor-mirror for the gvisor addon", code=ExitCode.ADDON_ERROR,
                                hint="pass --gvisor-mirror URL (laid out like gVisor's release bucket)")
        bases = bases[:1]
    return bases


def _url(base: str, arch: str, name: str) -> str:
    return f"{base.rstrip('/')}/release/{RELEASE}/{ARCH_DIRS[arch]}/{name}"


def _expected_sha512(url: str) -> str:
    from minisand.download.fetch import fetch_text

    text = fetch_text(url + ".sha512").strip()
    digest = text.split()[0].lower() if text else ""
    if len(digest) != 128 or any(c not in "0123456789abcdef" for c in digest):
        raise MinisandError(f"{url}.sha512 is not a sha512 checksum", code=ExitCode.CHECKSUM_MISMATCH,
                            hint="the mirror serves a broken .sha512 file")
    return digest


def fetch(actx: AddonContext, arch: str) -> dict[str, tuple[Path, str]]:
    """Both binaries in the host cache, each verified against its .sha512 before it is kept."""
    from minisand.download.fetch import download, file_digest

    out: dict[str, tuple[Path, str]] = {}
    cache = actx.ctx.home.cache / "gvisor" / RELEASE / ARCH_DIRS[arch]
    for name in BINARIES:
        dest = cache / name
        sums = cache / f"{name}.sha512"
        if dest.exists() and sums.exists() and file_digest(dest, "sha512") == sums.read_text().strip():
            out[name] = (dest, sums.read_text().strip())
            continue
        errors = []
        for base in _bases(actx.cfg):
            url = _url(base, arch, name)
            try:
                digest = _expected_sha512(url)
                download([url], dest, sha512=digest)
            except MinisandError as exc:
                errors.append(exc)
                continue
            sums.write_text(digest + "\n")
            out[name] = (dest, digest)
            break
        else:
            worst = next((e for e in errors if e.code == ExitCode.CHECKSUM_MISMATCH), errors[0] if errors else None)
            raise MinisandError(f"could not get gVisor {RELEASE} {name}: "
                                + " | ".join(e.message for e in errors),
                                hint="check --gvisor-mirror; nothing was installed",
                                code=worst.code if worst else ExitCode.DOWNLOAD_ERROR)
    return out


def install(actx: AddonContext) -> None:
    from minisand.bootstrap.binaries import host_arch

    bins = fetch(actx, host_arch())
    config = render("addons/gvisor/runsc.toml.j2", runsc=str(GUEST_DIR / "runsc"), platform=PLATFORM,
                    release=RELEASE).encode()
    for node in actx.nodes:
        r = node.runner
        have = _guest_sha512(r, [GUEST_DIR / n for n in BINARIES])
        for name, (path, digest) in bins.items():
            if have.get(name) == digest:
                continue
            data = path.read_bytes()
            if hashlib.sha512(data).hexdigest() != digest:
                raise MinisandError(f"cached {path} fails its sha512", code=ExitCode.CHECKSUM_MISMATCH,
                                    hint=f"remove {path.parent} and enable again")
            r.write_file(GUEST_DIR / name, data, mode=0o755)
        if r.run(["cat", str(RUNSC_TOML)], sudo=True, check=False, timeout=30).stdout != config:
            r.write_file(RUNSC_TOML, config)
        r.run(["mkdir", "-p", "/var/log/runsc"], sudo=True, timeout=30)


def _guest_sha512(runner: Any, paths: list[PurePosixPath]) -> dict[str, str]:
    res = runner.run(["sha512sum", "--", *map(str, paths)], sudo=True, check=False, timeout=120)
    out = {}
    for line in res.out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[PurePosixPath(parts[1]).name] = parts[0]
    return out


def check(actx: AddonContext) -> list[str]:
    problems = []
    for node in actx.nodes:
        have = _guest_sha512(node.runner, [GUEST_DIR / n for n in BINARIES])
        missing = [n for n in BINARIES if n not in have]
        if missing:
            problems.append(f"{node.machine}: {', '.join(missing)} missing")
        if not node.runner.run(["test", "-f", str(RUNSC_TOML)], sudo=True, check=False, timeout=30).ok:
            problems.append(f"{node.machine}: {RUNSC_TOML} missing")
    return problems


def remove(actx: AddonContext) -> None:
    for node in actx.nodes:
        node.runner.run(["rm", "-rf", "--", str(GUEST_ROOT), str(RUNSC_TOML)], sudo=True, timeout=60)


def in_use(actx: AddonContext) -> list[str]:
    return probe.pods_using_runtime_class(actx.api(), RUNTIME_CLASS)


def verify(actx: AddonContext) -> dict[str, Any]:
    """A probe pod under runc and one under gVisor: gVisor's must report a kernel other than the node's."""
    node_kernel = actx.nodes[0].facts.kernel
    t0 = time.monotonic()
    runc = probe.run_probe(actx.api(), "gvisor", None, probe.probe_image(actx.cfg))
    sandboxed = probe.run_probe(actx.api(), "gvisor", RUNTIME_CLASS, probe.probe_image(actx.cfg))
    log.info("probe pods: runc %s, gvisor %s (%.1fs)", runc, sandboxed, time.monotonic() - t0)
    if runc.kernel != node_kernel:
        raise MinisandError(f"the runc probe pod reports kernel {runc.kernel!r}, not the node's {node_kernel!r}",
                            code=ExitCode.ADDON_ERROR, hint="`minisand logs`")
    if sandboxed.kernel == node_kernel or not sandboxed.kernel:
        raise MinisandError(f"the gVisor probe pod reports the node's kernel {node_kernel!r}: it is not sandboxed",
                            code=ExitCode.ADDON_ERROR, hint="`minisand logs` shows containerd's journal")
    ui.info(f"probe pods: runc sees kernel {runc.kernel} (started in {runc.seconds:.1f}s), gVisor sees "
            f"{sandboxed.kernel} (started in {sandboxed.seconds:.1f}s)")
    return {"node_kernel": node_kernel, "runc_kernel": runc.kernel, "gvisor_kernel": sandboxed.kernel,
            "runc_probe_seconds": round(runc.seconds, 2), "gvisor_probe_seconds": round(sandboxed.seconds, 2)}


SPEC = AddonSpec(
    name="gvisor",
    description=f"gVisor sandbox (runsc {RELEASE}, {PLATFORM}) as RuntimeClass {RUNTIME_CLASS}",
    manifests=("gvisor/runtimeclass.yaml.j2",),
    images=(probe.PROBE_IMAGE,),
    handlers=handlers, install=install, verify=verify, check=check, remove=remove, in_use=in_use,
)
