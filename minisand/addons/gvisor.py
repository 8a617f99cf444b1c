"""The gvisor addon: runsc and containerd-shim-runsc-v1 of a pinned gVisor release (sha512-verified, from gVisor's
release bucket or --gvisor-mirror), installed on the data disk so they survive reboots; containerd's `runsc`
handler (systrap platform: no KVM needed) contributed through the config template; RuntimeClass `gvisor`; a probe
pod proves that a sandboxed pod sees gVisor's kernel, not the node's."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from minisand import ui
from minisand.addons import probe
from minisand.addons.context import AddonContext
from minisand.addons.spec import AddonSpec
from minisand.config.model import ClusterConfig
from minisand.cruntime.config import RuntimeHandler, gvisor_handler
from minisand.errors import ExitCode, MinisandError
from minisand.guest import ADDONS_DIR, CONTAINERD_CONFIG
from minisand.templating import render

log = logging.getLogger(__name__)

RELEASE = "20260905"  # gVisor release (yyyymmdd) pinned by this minisand version
PLATFORM = "systrap"  # works without KVM (ptrace's successor)
BINARIES = ("runsc", "containerd-shim-runsc-v1")
ARCH_DIRS = {"amd64": "x86_64", "arm64": "aarch64"}
GUEST_ROOT = ADDONS_DIR / "gvisor"
GUEST_DIR = GUEST_ROOT / RELEASE
RUNSC_TOML = CONTAINERD_CONFIG.with_name("runsc.toml")
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


def fetch(actx: AddonContext, arch: str) -> dict[str, tuple[Path, str]]:
    """Both binaries in the host cache, each verified against its .sha512 before it is kept."""
    from minisand.download.fetch import FileKind, Source, fetch_verified, file_digest

    out: dict[str, tuple[Path, str]] = {}
    cache = actx.home.cache / "gvisor" / RELEASE / ARCH_DIRS[arch]
    for name in BINARIES:
        dest = cache / name
        sums = cache / f"{name}.sha512"
        if dest.exists() and sums.exists() and file_digest(dest, "sha512") == sums.read_text().strip():
            out[name] = (dest, sums.read_text().strip())
            continue
        sources = [Source(url, checksum_url=url + ".sha512")
                   for url in (_url(base, arch, name) for base in _bases(actx.cfg))]
        checksum = fetch_verified(sources, dest, algo="sha512", kind=FileKind.BINARY,
                                  what=f"gVisor {RELEASE} {name}", hint="check --gvisor-mirror; nothing was installed")
        sums.write_text(checksum.hexdigest + "\n")
        out[name] = (dest, checksum.hexdigest)
    return out


SUMS = "SHA512SUMS"
# A constant script: the log folder runsc writes to, then runsc.toml ($1) as the node has it.
_PREPARE = 'mkdir -p /var/log/runsc; cat -- "$1" 2>/dev/null; true'


def runsc_toml() -> str:
    """The shim's configuration (RUNSC_TOML on every node): the pinned runsc, the platform."""
    return render("addons/gvisor/runsc.toml.j2", runsc=str(GUEST_DIR / "runsc"), platform=PLATFORM, release=RELEASE)


def _arch() -> str:
    from minisand.bootstrap.binaries import host_arch

    return host_arch()


def prepare(actx: AddonContext) -> None:
    """Both binaries fetched and verified on the host before any node changes."""
    fetch(actx, _arch())


def install(actx: AddonContext) -> None:
    """Per node: the binaries it lacks in one transfer (checked against their sha512 on the host, never hashed
    on the node), their checksum list, and runsc.toml when its text differs."""
    from minisand.runner.bundle import BundleFile, installed_sums, sums_text
    from minisand.runner.bundle import install as send

    bins = fetch(actx, _arch())
    config = runsc_toml().encode()
    for node in actx.nodes:
        r = node.runner
        have = installed_sums(r, GUEST_DIR, list(BINARIES), SUMS)
        todo = [BundleFile(name, 0o755, source=path, digest=f"sha512:{digest}")
                for name, (path, digest) in bins.items() if have.get(name) != digest]
        if todo:
            sums = sums_text({name: digest for name, (_path, digest) in bins.items()}).encode()
            send(r, GUEST_DIR, [*todo, BundleFile(SUMS, 0o644, data=sums)], last=SUMS)
        if r.run(["sh", "-c", _PREPARE, "minisand-gvisor", str(RUNSC_TOML)], sudo=True, check=False,
                 timeout=30).stdout != config:
            r.write_file(RUNSC_TOML, config)


def check(actx: AddonContext) -> list[str]:
    from minisand.runner.bundle import installed_sums

    problems = []
    for node in actx.nodes:
        have = installed_sums(node.runner, GUEST_DIR, list(BINARIES), SUMS)
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
    """A probe pod under gVisor must report a kernel other than the node's (`uname -r` on the node, read with
    its facts: what a runc pod reports, since runc containers share the node's kernel)."""
    node_kernel = actx.nodes[0].facts.kernel
    t0 = time.monotonic()
    sandboxed = probe.run_probe(actx.api(), "gvisor", RUNTIME_CLASS, probe.probe_image(actx.cfg))
    log.info("probe pod: gvisor %s (%.1fs)", sandboxed, time.monotonic() - t0)
    if not node_kernel:
        raise MinisandError("could not read the node's kernel release", code=ExitCode.ADDON_ERROR,
                            hint="`minisand logs`")
    if sandboxed.kernel == node_kernel or not sandboxed.kernel:
        raise MinisandError(f"the gVisor probe pod reports the node's kernel {node_kernel!r}: it is not sandboxed",
                            code=ExitCode.ADDON_ERROR, hint="`minisand logs` shows containerd's journal")
    ui.info(f"probe pod: the node runs kernel {node_kernel}, the gVisor pod sees {sandboxed.kernel} "
            f"(started in {sandboxed.seconds:.1f}s)")
    return {"node_kernel": node_kernel, "gvisor_kernel": sandboxed.kernel,
            "gvisor_probe_seconds": round(sandboxed.seconds, 2)}


SPEC = AddonSpec(
    name="gvisor",
    description=f"gVisor sandbox (runsc {RELEASE}, {PLATFORM}) as RuntimeClass {RUNTIME_CLASS}",
    manifests=("gvisor/runtimeclass.yaml.j2",),
    images=(probe.PROBE_IMAGE,),
    handlers=handlers, install=install, verify=verify, check=check, remove=remove, in_use=in_use,
    prepare=prepare,
)
