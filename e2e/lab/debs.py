"""Debian packages as image material: download with apt-get, extract with dpkg-deb, copy an ELF closure.

Only the named packages and the shared-library packages they depend on (recursively) are downloaded; from the
extracted tree a program is copied into a rootfs together with exactly the libraries `ldd` resolves for it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from e2e.lab.cache import LabCache, build_step, log
from e2e.lab.errors import LabError

_DEP = re.compile(r"^\s+\|?(?:Pre)?Depends: ([a-z0-9][a-z0-9.+-]*)$", re.MULTILINE)
_LDD_ARROW = re.compile(r"^\s*(\S+) => (\S+) \(0x[0-9a-f]+\)$")
_LDD_DIRECT = re.compile(r"^\s*(/\S+) \(0x[0-9a-f]+\)$")
ARCH_LIBDIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_DEPENDS = ["apt-cache", "depends", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
               "--no-replaces", "--no-enhances"]


def _is_library(name: str) -> bool:
    return name.startswith("lib") or name == "zlib1g"


def library_closure(packages: Iterable[str]) -> list[str]:
    """The packages plus every shared-library package they (transitively) depend on."""
    wanted = list(dict.fromkeys(packages))
    seen = set(wanted)
    queue = list(wanted)
    while queue:
        out = subprocess.run([*APT_DEPENDS, *queue], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise LabError(f"apt-cache depends {' '.join(queue)} failed: {out.stderr.strip()}",
                           "run apt-get update")
        queue = []
        for dep in _DEP.findall(out.stdout):
            if _is_library(dep) and dep not in seen:
                seen.add(dep)
                queue.append(dep)
                wanted.append(dep)
    return wanted


def _find_deb(debdir: Path, package: str) -> Path | None:
    found = sorted(debdir.glob(f"{package}_*_amd64.deb")) + sorted(debdir.glob(f"{package}_*_all.deb"))
    return found[-1] if found else None


def download(cache: LabCache, packages: Iterable[str]) -> list[Path]:
    """Download (once) the .deb files of the packages and their library closure into the cache."""
    debdir = cache.debs
    debdir.mkdir(parents=True, exist_ok=True)
    names = library_closure(packages)
    missing = [n for n in names if _find_deb(debdir, n) is None]
    if missing:
        log(f"apt-get download {' '.join(missing)}")
        out = subprocess.run(["apt-get", "download", "-o", "APT::Sandbox::User=root", *missing], cwd=debdir,
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise LabError(f"apt-get download failed: {out.stderr.strip()[-400:]}", "run apt-get update")
    debs = []
    for name in names:
        deb = _find_deb(debdir, name)
        if deb is None:
            raise LabError(f"no .deb for {name} after apt-get download", "run apt-get update")
        debs.append(deb)
    return debs


def _suite_apt_options(root: Path) -> list[str]:
    return [f"-oDir::Etc::SourceList={root / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={root / 'lists'}", f"-oDir::Cache={root / 'cache'}",
            "-oAPT::Get::List-Cleanup=0", "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root"]


def suite_deb(cache: LabCache, package: str, suite: str, version: str) -> Path:
    """One .deb of another Debian suite (e.g. trixie's busybox-static), fetched once through a private apt
    sources list: apt checks the suite's signed Release and the .deb's checksum. Pinned by Debian version."""
    debdir = cache.debs / suite
    pattern = f"{package}_{version.replace(':', '%3a')}_*.deb"  # apt-get download writes the epoch as %3a
    found = sorted(debdir.glob(pattern))
    if found:
        return found[0]
    root = cache.root / "apt" / suite
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text(f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {suite} main\n")
    opts = _suite_apt_options(root)
    log(f"apt-get download {package}={version} ({suite})")
    for args in (["update", "-q"], ["download", f"{package}={version}"]):
        debdir.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["apt-get", *opts, *args], cwd=debdir, capture_output=True, text=True, check=False,
                             timeout=900)
        if out.returncode != 0:
            raise LabError(f"apt-get {args[0]} ({suite}) failed: {out.stderr.strip()[-400:]}",
                           f"check that {suite} still has {package} {version} (apt-cache policy)")
    found = sorted(debdir.glob(pattern))
    if not found:
        raise LabError(f"no .deb for {package}={version} after apt-get download", "check the pinned version")
    return found[0]


def extract(debs: Iterable[Path], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return dest


def merged_usr(rel: str) -> str:
    """bin/x -> usr/bin/x and so on: the rootfs is merged-/usr (top-level dirs are symlinks into /usr)."""
    for top in ("bin", "sbin", "lib", "lib64"):
        if rel == top or rel.startswith(top + "/"):
            return "usr/" + rel
    return rel


def make_merged_usr_skeleton(rootfs: Path) -> None:
    for top in ("bin", "sbin", "lib", "lib64"):
        (rootfs / "usr" / top).mkdir(parents=True, exist_ok=True)
        link = rootfs / top
        if not link.is_symlink():
            link.symlink_to(f"usr/{top}")


def shared_libraries(binary: Path, staging: Path) -> list[Path]:
    """The files ldd resolves for binary, preferring libraries from the extracted packages."""
    env = {"LD_LIBRARY_PATH": ":".join(str(staging / d) for d in ARCH_LIBDIRS), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env, check=False)
    if "not a dynamic executable" in out.stdout + out.stderr or "statically linked" in out.stdout:
        return []
    libs: list[Path] = []
    for line in out.stdout.splitlines():
        if "not found" in line:
            raise LabError(f"{binary.name}: {line.strip()}", "add the library's package to the image recipe")
        m = _LDD_ARROW.match(line) or _LDD_DIRECT.match(line)
        if m:
            libs.append(Path(m.groups()[-1]))
    return libs


def resolve_in(root: Path, rel: str) -> str:
    """Follow symlinks of root/REL as if root were /, returning the final path relative to root."""
    parts = [p for p in rel.split("/") if p]
    done: list[str] = []
    for _ in range(64):
        if not parts:
            return "/".join(done)
        head = parts.pop(0)
        current = root.joinpath(*done, head)
        if current.is_symlink():
            target = str(current.readlink())
            base = [] if target.startswith("/") else done
            parts = [p for p in target.split("/") if p] + parts
            done = list(base)
            continue
        if head == "..":
            done = done[:-1]
        elif head != ".":
            done.append(head)
    raise LabError(f"too many symlinks resolving {rel} in {root}", "check the extracted packages")


def _library_source(lib: Path, staging: Path) -> tuple[Path, str]:
    """Where to copy a resolved library from, and its path inside the rootfs (staging's copy preferred)."""
    try:
        rel = str(lib.relative_to(staging))
    except ValueError:
        rel = str(lib).lstrip("/")  # ldd prints the program interpreter by its absolute path (/lib64/...)
    if (staging / rel).exists() or (staging / rel).is_symlink():
        real = resolve_in(staging, rel)
        if (staging / real).is_file():
            return staging / real, rel
    return lib, rel


def copy_file(src: Path, rootfs: Path, rel: str) -> Path:
    dest = rootfs / merged_usr(rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() or dest.is_symlink():
        dest.unlink()
    shutil.copy2(src, dest)
    return dest


def copy_with_libraries(staging: Path, rootfs: Path, rels: Iterable[str]) -> None:
    """Copy the file staging/REL (symlinks followed inside staging) for each REL into rootfs at REL, with the
    shared libraries it needs."""
    for rel in rels:
        real = resolve_in(staging, rel)
        src = staging / real
        if not src.is_file():
            raise LabError(f"{rel} is not in the extracted packages", "check the image recipe's package list")
        copy_file(src, rootfs, rel)
        for lib in shared_libraries(src, staging):
            lib_src, lib_rel = _library_source(lib, staging)
            copy_file(lib_src, rootfs, lib_rel)


def host_tool(cache: LabCache, package: str, rel: str) -> Path:
    """A program from a package of the host's own Debian release (e.g. runc for containers on this host),
    downloaded and extracted once into the lab cache. Its libraries are the host's."""
    files = download(cache, [package])
    deb = files[0]
    dest = cache.artifact("host-tools", deb.name.removesuffix(".deb"))
    def extract_one(tmp: Path) -> None:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], check=True)

    build_step(cache, f"host tool {package}", dest, extract_one)
    path = dest / "root" / rel
    if not path.is_file():
        raise LabError(f"{rel} is not in {deb.name}", "check the package's file list (dpkg-deb -c)")
    return path
