"""The lab's build: every Go program, then the images, recorded in a manifest the servers read.

Order: Kubernetes first (kubeadm says which etcd, CoreDNS and pause it expects), then etcd, CoreDNS, pause,
crictl, gVisor, the Debian material, the images. Every step is cached by version and recipe; a second build with
nothing changed only reads the cache.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from e2e.lab import debs, oci, programs, rootfs
from e2e.lab.cache import LabCache, build_step, log, recipe_hash
from e2e.lab.errors import LabError
from e2e.lab.gomod import GoProgram, build_go_program, module_info, origin_hash, render_go_mod
from e2e.lab.versions import K8S_BINARIES, Versions, parse_images_list

CN_NAMESPACE = "google_containers"


@dataclass(frozen=True)
class ImageEntry:
    name: str
    tag: str
    layout: str  # OCI layout directory
    digest: str  # manifest digest in the layout
    upstream: str  # the reference users pull, e.g. registry.k8s.io/coredns/coredns:v1.14.2
    # where the lab registry serves it, e.g. ("coredns/coredns", "google_containers/coredns")
    repositories: tuple[str, ...]


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> BuildManifest:
        data = json.loads(text)
        data["images"] = tuple(ImageEntry(**{**i, "repositories": tuple(i["repositories"])})
                               for i in data["images"])
        return cls(**data)


def manifest_path(cache: LabCache, versions: Versions) -> Path:
    return cache.manifests / f"{versions.kubernetes}-{versions.crictl}-{versions.gvisor_release}.json"


def load_manifest(cache: LabCache, versions: Versions) -> BuildManifest | None:
    path = manifest_path(cache, versions)
    return BuildManifest.from_json(path.read_text()) if path.is_file() else None


def write_checksums(bindir: Path) -> None:
    """<bin>.sha256 (hex only, as dl.k8s.io) and <bin>.sha512 ("HEX  name", as gVisor's bucket) per file."""
    for f in sorted(p for p in bindir.iterdir() if p.is_file() and p.suffix not in (".sha256", ".sha512")):
        data = f.read_bytes()
        (bindir / f"{f.name}.sha256").write_text(hashlib.sha256(data).hexdigest())
        (bindir / f"{f.name}.sha512").write_text(f"{hashlib.sha512(data).hexdigest()}  {f.name}\n")


def go_artifact(cache: LabCache, prog: GoProgram, version: str) -> Path:
    """The cached bin/ directory of prog (built, checksummed) keyed by version and recipe."""
    key = f"{version}-{recipe_hash(render_go_mod(prog), prog.packages, prog.ldflags, prog.main_source)}"
    logfile = cache.logs / f"go-{prog.name}-{key}.log"

    def build(tmp: Path) -> None:
        timings = build_go_program(prog, tmp / "src", tmp / "bin", logfile)
        write_checksums(tmp / "bin")
        (tmp / "timings.json").write_text(json.dumps(timings))
        for step, seconds in timings.items():
            cache.record_timing(f"{prog.name} go {step}", seconds, cached=False)

    return build_step(cache, f"{prog.name} {version}", cache.artifact(prog.name, key), build) / "bin"


def build_kubernetes(cache: LabCache, version: str) -> Path:
    work = cache.root / "gomod"
    info = module_info("k8s.io/kubernetes", version, work)
    go_mod = Path(str(info["GoMod"])).read_text()
    meta = json.loads(Path(str(info["Info"])).read_text())
    commit = str((meta.get("Origin") or {}).get("Hash", ""))
    build_date = str(meta.get("Time", "1970-01-01T00:00:00Z")).replace(".000", "")
    prog = programs.kubernetes(version, go_mod, commit, build_date)
    bindir = go_artifact(cache, prog, version)
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


def staging_tree(cache: LabCache) -> tuple[Path, tuple[str, ...]]:
    """The Debian packages the images need, downloaded and extracted once."""
    files = debs.download(cache, rootfs.ALL_PACKAGES)
    names = tuple(f.name for f in files)
    dest = cache.artifact("staging", recipe_hash(names))

    def extract(tmp: Path) -> None:
        debs.extract(files, tmp / "root")

    build_step(cache, "debian packages", dest, extract)
    return dest / "root", names


def k8s_image_entry(recipe: rootfs.Recipe, layout: Path, upstream_repo: str) -> ImageEntry:
    """An image of registry.k8s.io: served at its own path and at the cn mirror's flat google_containers/."""
    path = upstream_repo.removeprefix("registry.k8s.io/")
    flat = f"{CN_NAMESPACE}/{path.rsplit('/', 1)[-1]}"
    return ImageEntry(name=recipe.name, tag=recipe.tag, layout=str(layout),
                      digest=oci.manifest_digest(layout, recipe.tag),
                      upstream=f"{upstream_repo}:{recipe.tag}", repositories=(path, flat))


def docker_hub_entry(recipe: rootfs.Recipe, layout: Path) -> ImageEntry:
    return ImageEntry(name=recipe.name, tag=recipe.tag, layout=str(layout),
                      digest=oci.manifest_digest(layout, recipe.tag),
                      upstream=f"docker.io/library/{recipe.name}:{recipe.tag}",
                      repositories=(f"library/{recipe.name}",))


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


def build(cache: LabCache, versions: Versions) -> BuildManifest:
    """Build (or find in the cache) everything the lab serves; write and return the manifest."""
    start = time.monotonic()
    work = cache.root / "gomod"
    k8s = build_kubernetes(cache, versions.kubernetes)
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
    manifest = BuildManifest(
        kubernetes=versions.kubernetes, etcd=etcd_ver, coredns=coredns_ver, pause=images.pause_tag,
        crictl=versions.crictl, gvisor=versions.gvisor, gvisor_release=versions.gvisor_release,
        kubernetes_bin=str(k8s), crictl_bin=str(crictl), crictl_tarball=str(tarball), gvisor_bin=str(gvisor),
        images=entries)
    path = manifest_path(cache, versions)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest.to_json())
    elapsed = time.monotonic() - start
    cache.record_timing("lab build (total)", elapsed, cached=False)
    log(f"build complete in {elapsed:.1f}s; manifest {path}")
    return manifest
