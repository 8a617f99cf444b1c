"""The lab's build: every Go program, then the images, recorded in a manifest the servers read.

Order: Kubernetes first (kubeadm says which etcd, CoreDNS and pause it expects), then etcd, CoreDNS, pause,
crictl, gVisor, the Debian material, the images, then the optional pieces (extras.py: the registry image, Headlamp,
the conformance material). Every step is cached by version and recipe; a second build with nothing changed only
reads the cache.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from e2e.lab import extras, oci, programs, rootfs
from e2e.lab.artifacts import ImageEntry, docker_hub_entry, go_artifact, k8s_image_entry, staging_tree
from e2e.lab.cache import LabCache, log
from e2e.lab.e2etest import DEFAULT_VARIANT
from e2e.lab.errors import LabError
from e2e.lab.extras import KubeSource
from e2e.lab.gomod import module_info, origin_hash
from e2e.lab.versions import K8S_BINARIES, Versions, parse_images_list


@dataclass(frozen=True)
class BuildManifest:
    kubernetes: str
    etcd: str
    coredns: str
    pause: str
    crictl: str
    gvisor: str
    gvisor_release: str
    kubernetes_bin: str
    crictl_bin: str
    crictl_tarball: str
    gvisor_bin: str
    images: tuple[ImageEntry, ...]
    e2e_test: str = ""  # the e2e.test binary (host program), "" when the conformance piece is not built
    pieces: tuple[str, ...] = ()  # the optional pieces built (extras.PIECES)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> BuildManifest:
        data = json.loads(text)
        data["images"] = tuple(ImageEntry(**{**i, "repositories": tuple(i["repositories"]),
                                             "aliases": tuple(i.get("aliases", ()))}) for i in data["images"])
        data["pieces"] = tuple(data.get("pieces", ()))
        return cls(**data)


def manifest_path(cache: LabCache, versions: Versions, pieces: Iterable[str] = extras.DEFAULT_PIECES) -> Path:
    """manifests/<k8s>-<crictl>-<gvisor release>-<pieces>.json: one manifest per version set and per choice of
    optional pieces ("core" when none), so a build leaving pieces out never rewrites a fuller build's manifest."""
    chosen = "-".join(extras.check_pieces(pieces)) or "core"
    return cache.manifests / f"{versions.kubernetes}-{versions.crictl}-{versions.gvisor_release}-{chosen}.json"


def load_manifest(cache: LabCache, versions: Versions, pieces: Iterable[str] = extras.DEFAULT_PIECES
                  ) -> BuildManifest | None:
    path = manifest_path(cache, versions, pieces)
    return BuildManifest.from_json(path.read_text()) if path.is_file() else None


def kubernetes_source(cache: LabCache, version: str) -> KubeSource:
    info = module_info("k8s.io/kubernetes", version, cache.root / "gomod")
    meta = json.loads(Path(str(info["Info"])).read_text())
    return KubeSource(version=version, go_mod=Path(str(info["GoMod"])).read_text(),
                      commit=str((meta.get("Origin") or {}).get("Hash", "")),
                      build_date=str(meta.get("Time", "1970-01-01T00:00:00Z")).replace(".000", ""),
                      module_dir=Path(str(info["Dir"])))


def build_kubernetes(cache: LabCache, src: KubeSource) -> Path:
    prog = programs.kubernetes(src.version, src.go_mod, src.commit, src.build_date)
    bindir = go_artifact(cache, prog, src.version)
    for name in K8S_BINARIES:
        if not (bindir / name).is_file():
            raise LabError(f"{name} missing from {bindir}", "delete that directory and build again")
    return bindir


def kubeadm_images(kubeadm: Path, version: str) -> str:
    out = subprocess.run([str(kubeadm), "config", "images", "list", "--kubernetes-version", version],
                         capture_output=True, text=True, check=False, timeout=120)
    if out.returncode != 0:
        raise LabError(f"kubeadm config images list failed: {out.stderr.strip()[-300:]}", "rebuild Kubernetes")
    return out.stdout


def crictl_tarball(bindir: Path, version: str) -> Path:
    """crictl-vX-linux-amd64.tar.gz (with .sha256) next to the binary, as cri-tools' releases ship it."""
    tarball = bindir / f"crictl-{version}-linux-amd64.tar.gz"
    if not tarball.is_file():
        tmp = tarball.with_suffix(".tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            info = tar.gettarinfo(str(bindir / "crictl"), arcname="crictl")
            info.mtime, info.uid, info.gid, info.uname, info.gname = int(time.time()), 0, 0, "root", "root"
            with (bindir / "crictl").open("rb") as f:
                tar.addfile(info, f)
        (bindir / f"{tarball.name}.sha256").write_text(hashlib.sha256(tmp.read_bytes()).hexdigest())
        tmp.rename(tarball)
    return tarball


@dataclass(frozen=True)
class Binaries:
    kubernetes: Path
    etcd: Path
    coredns: Path
    pause: Path


def image_recipes(refs: tuple[str, ...], bins: Binaries, staging: Path,
                  deb_names: tuple[str, ...]) -> list[tuple[rootfs.Recipe, str]]:
    """(recipe, upstream repository) for every image kubeadm lists."""
    out: list[tuple[rootfs.Recipe, str]] = []
    for ref in refs:
        repo, _, tag = ref.rpartition(":")
        name = repo.rsplit("/", 1)[-1]
        if name == "kube-proxy":
            recipe = rootfs.kube_proxy(tag, bins.kubernetes / name, staging, deb_names)
        elif name.startswith("kube-"):
            recipe = rootfs.control_plane(name, tag, bins.kubernetes / name)
        elif name == "etcd":
            recipe = rootfs.etcd(tag, bins.etcd / "etcd")
        elif name == "coredns":
            recipe = rootfs.coredns(tag, bins.coredns / "coredns")
        elif name == "pause":
            recipe = rootfs.pause(tag, bins.pause / "pause")
        else:
            raise LabError(f"kubeadm lists an image the lab cannot build: {ref}", "add a recipe to rootfs.py")
        out.append((recipe, repo))
    return out


def build_images(cache: LabCache, refs: tuple[str, ...], bins: Binaries) -> tuple[ImageEntry, ...]:
    staging, deb_names = staging_tree(cache)
    entries = [k8s_image_entry(recipe, oci.build_image(cache, recipe), repo)
               for recipe, repo in image_recipes(refs, bins, staging, deb_names)]
    for recipe in (rootfs.nginx(staging, deb_names), rootfs.busybox(staging, deb_names)):
        entries.append(docker_hub_entry(recipe, oci.build_image(cache, recipe)))
    return tuple(entries)


def build(cache: LabCache, versions: Versions, pieces: Iterable[str] = extras.DEFAULT_PIECES,
          e2e_variant: str = DEFAULT_VARIANT) -> BuildManifest:
    """Build (or find in the cache) everything the lab serves, with the optional pieces named; write and return
    the manifest."""
    start = time.monotonic()
    pieces = extras.check_pieces(pieces)
    work = cache.root / "gomod"
    k8s_src = kubernetes_source(cache, versions.kubernetes)
    k8s = build_kubernetes(cache, k8s_src)
    images = parse_images_list(kubeadm_images(k8s / "kubeadm", versions.kubernetes))
    etcd_ver, coredns_ver = images.etcd_version, images.coredns_version
    etcd = go_artifact(cache, programs.etcd(etcd_ver, origin_hash("go.etcd.io/etcd/server/v3", etcd_ver, work)),
                       etcd_ver)
    coredns = go_artifact(cache, programs.coredns(
        coredns_ver, origin_hash("github.com/coredns/coredns", coredns_ver, work)), coredns_ver)
    pause = go_artifact(cache, programs.pause(images.pause_tag), images.pause_tag)
    crictl = go_artifact(cache, programs.crictl(versions.crictl), versions.crictl)
    tarball = crictl_tarball(crictl, versions.crictl)
    gvisor = go_artifact(cache, programs.gvisor(versions.gvisor, versions.gvisor_release), versions.gvisor)
    entries = build_images(cache, images.refs, Binaries(k8s, etcd, coredns, pause))
    more = extras.build_extras(cache, pieces, k8s_src, pause_bin=pause / "pause", pause_tag=images.pause_tag,
                               e2e_variant=e2e_variant)
    manifest = BuildManifest(
        kubernetes=versions.kubernetes, etcd=etcd_ver, coredns=coredns_ver, pause=images.pause_tag,
        crictl=versions.crictl, gvisor=versions.gvisor, gvisor_release=versions.gvisor_release,
        kubernetes_bin=str(k8s), crictl_bin=str(crictl), crictl_tarball=str(tarball), gvisor_bin=str(gvisor),
        images=entries + more.images, e2e_test=more.e2e_test, pieces=pieces)
    path = manifest_path(cache, versions, pieces)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest.to_json())
    elapsed = time.monotonic() - start
    cache.record_timing("lab build (total)", elapsed, cached=False)
    log(f"build complete in {elapsed:.1f}s; manifest {path}")
    return manifest
