"""The lab's building blocks shared by every build: cached Go programs, extracted Debian packages, and the
registry entries of packed images (which repositories and tags serve them)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from e2e.lab import debs, oci, rootfs
from e2e.lab.cache import LabCache, build_step, recipe_hash
from e2e.lab.errors import LabError
from e2e.lab.gomod import GoProgram, build_go_program, render_go_mod

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
    aliases: tuple[str, ...] = ()  # more tags of the same image in every repository (e.g. registry:3)

    @property
    def tags(self) -> tuple[str, ...]:
        return (self.tag, *self.aliases)

    def upstream_refs(self) -> list[str]:
        """Every reference users pull this image by (the upstream repository at each tag)."""
        repo = self.upstream.rsplit(":", 1)[0]
        return [f"{repo}:{tag}" for tag in self.tags]


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


def staging_tree(cache: LabCache, packages: Iterable[str] = rootfs.ALL_PACKAGES) -> tuple[Path, tuple[str, ...]]:
    """Debian packages (with their library closure), downloaded and extracted once into one tree."""
    files = debs.download(cache, packages)
    names = tuple(f.name for f in files)
    dest = cache.artifact("staging", recipe_hash(names))

    def extract(tmp: Path) -> None:
        debs.extract(files, tmp / "root")

    build_step(cache, "debian packages", dest, extract)
    return dest / "root", names


def suite_program(cache: LabCache, package: str, suite: str, version: str, rel: str) -> Path:
    """A program from another Debian suite's package (e.g. forky's busybox-static), extracted once."""
    deb = debs.suite_deb(cache, package, suite, version)
    dest = cache.artifact(f"debs-extracted/{suite}", deb.name.removesuffix(".deb"))

    def extract(tmp: Path) -> None:
        debs.extract([deb], tmp / "root")

    build_step(cache, f"{package} ({suite})", dest, extract)
    path = dest / "root" / rel
    if not path.is_file():
        raise LabError(f"{rel} is not in {deb.name}", "check the package's file list (dpkg-deb -c)")
    return path


def image_entry(recipe: rootfs.Recipe, layout: Path, upstream_repo: str, repositories: tuple[str, ...],
                aliases: tuple[str, ...] = ()) -> ImageEntry:
    return ImageEntry(name=recipe.name, tag=recipe.tag, layout=str(layout),
                      digest=oci.manifest_digest(layout, recipe.tag), upstream=f"{upstream_repo}:{recipe.tag}",
                      repositories=repositories, aliases=aliases)


def k8s_image_entry(recipe: rootfs.Recipe, layout: Path, upstream_repo: str,
                    aliases: tuple[str, ...] = ()) -> ImageEntry:
    """An image of registry.k8s.io: served at its own path and at the cn mirror's flat google_containers/."""
    path = upstream_repo.removeprefix("registry.k8s.io/")
    flat = f"{CN_NAMESPACE}/{path.rsplit('/', 1)[-1]}"
    return image_entry(recipe, layout, upstream_repo, (path, flat), aliases)


def docker_hub_entry(recipe: rootfs.Recipe, layout: Path) -> ImageEntry:
    return image_entry(recipe, layout, f"docker.io/library/{recipe.name}", (f"library/{recipe.name}",))
