"""Root filesystems of the lab's images, assembled from built binaries and Debian packages.

Each recipe fills an empty directory; the image config (entrypoint, cmd, env, ports) sits next to it as data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from e2e.lab import debs
from e2e.lab.programs import data_text

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
XTABLES_NAMES = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                 "ip6tables-restore", "iptables-nft", "iptables-nft-save", "iptables-nft-restore", "ip6tables-nft",
                 "ip6tables-nft-save", "ip6tables-nft-restore")
XTABLES_LIBDIR = "usr/lib/x86_64-linux-gnu/xtables"
KUBE_PROXY_PACKAGES = ("iptables", "conntrack")
NGINX_PACKAGES = ("nginx", "nginx-common")
BUSYBOX_PACKAGES = ("busybox-static",)
ALL_PACKAGES = KUBE_PROXY_PACKAGES + NGINX_PACKAGES + BUSYBOX_PACKAGES
RECIPE_REVISION = "1"


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (PATH_ENV,)
    workingdir: str = ""
    exposed_ports: tuple[str, ...] = ()
    stop_signal: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    user: str = ""
    volumes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    name: str  # the image's last path element, e.g. kube-apiserver
    tag: str
    config: ImageConfig
    fill: Callable[[Path], None] = field(compare=False)
    inputs: tuple[str, ...]  # what the rootfs is made of (file digests, package files): part of the cache key


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def base_skeleton(rootfs: Path, *, www_data: bool = False) -> None:
    """A distroless-like base: merged /usr, passwd/group, nsswitch, /tmp, /run."""
    debs.make_merged_usr_skeleton(rootfs)
    etc = rootfs / "etc"
    etc.mkdir(exist_ok=True)
    passwd = ["root:x:0:0:root:/root:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"]
    group = ["root:x:0:", "nogroup:x:65534:"]
    if www_data:
        passwd.append("www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin")
        group.append("www-data:x:33:")
    (etc / "passwd").write_text("\n".join(passwd) + "\n")
    (etc / "group").write_text("\n".join(group) + "\n")
    (etc / "nsswitch.conf").write_text("hosts: files dns\nnetworks: files\npasswd: files\ngroup: files\n")
    for d in ("tmp", "var/tmp"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
        (rootfs / d).chmod(0o1777)
    for d in ("run", "root", "var/log", "usr/local/bin"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)


def add_user(rootfs: Path, name: str, uid: int, gid: int, home: str, shell: str = "/usr/sbin/nologin") -> None:
    """A user and its own group (same name) in the rootfs' passwd and group files; home created, owned by it."""
    with (rootfs / "etc/passwd").open("a") as f:
        f.write(f"{name}:x:{uid}:{gid}:{name}:{home}:{shell}\n")
    with (rootfs / "etc/group").open("a") as f:
        f.write(f"{name}:x:{gid}:\n")
    if home != "/nonexistent":
        (rootfs / home.lstrip("/")).mkdir(parents=True, exist_ok=True)
        os.chown(rootfs / home.lstrip("/"), uid, gid)


def install(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    dest.chmod(0o755)


def busybox_applets(rootfs: Path, staging: Path, src: Path | None = None) -> None:
    """/usr/bin/busybox (busybox-static's, from staging unless src names another) and a symlink per applet
    (never over an existing file)."""
    src = src or staging / "bin" / "busybox"
    install(src, rootfs / "usr" / "bin" / "busybox")
    names = subprocess.run([str(src), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        if "/" in name or name in ("busybox", "[", "[["):
            continue
        link = rootfs / "usr" / "bin" / name
        if not link.exists() and not link.is_symlink() and not (rootfs / "usr" / "sbin" / name).exists():
            link.symlink_to("busybox")


def _fill_single(binary: Path, dest_rel: str, rootfs: Path) -> None:
    base_skeleton(rootfs)
    install(binary, rootfs / dest_rel)


def static_binary(name: str, tag: str, binary: Path, dest_rel: str, config: ImageConfig) -> Recipe:
    """An image holding one static binary (control plane, etcd, coredns, pause)."""
    return Recipe(name=name, tag=tag, config=config, fill=partial(_fill_single, binary, dest_rel),
                  inputs=(RECIPE_REVISION, dest_rel, file_digest(binary)))


def control_plane(name: str, tag: str, binary: Path) -> Recipe:
    cfg = ImageConfig(entrypoint=(f"/usr/local/bin/{name}",))
    return static_binary(name, tag, binary, f"usr/local/bin/{name}", cfg)


def etcd(tag: str, binary: Path) -> Recipe:
    cfg = ImageConfig(cmd=("/usr/local/bin/etcd",), exposed_ports=("2379/tcp", "2380/tcp"))
    return static_binary("etcd", tag, binary, "usr/local/bin/etcd", cfg)


def coredns(tag: str, binary: Path) -> Recipe:
    cfg = ImageConfig(entrypoint=("/coredns",), exposed_ports=("53/tcp", "53/udp"))
    return static_binary("coredns", tag, binary, "coredns", cfg)


def pause(tag: str, binary: Path) -> Recipe:
    return static_binary("pause", tag, binary, "pause", ImageConfig(entrypoint=("/pause",)))


def _fill_kube_proxy(binary: Path, staging: Path, rootfs: Path) -> None:
    base_skeleton(rootfs)
    install(binary, rootfs / "usr/local/bin/kube-proxy")
    debs.copy_with_libraries(staging, rootfs, ["usr/sbin/xtables-nft-multi", "usr/sbin/conntrack"])
    for name in XTABLES_NAMES:
        (rootfs / "usr/sbin" / name).symlink_to("xtables-nft-multi")
    # iptables loads its match/target extensions with dlopen: ship them all, with their libraries.
    extensions = sorted((staging / XTABLES_LIBDIR).glob("*.so"))
    debs.copy_with_libraries(staging, rootfs, [f"{XTABLES_LIBDIR}/{so.name}" for so in extensions])
    etc_src = staging / "etc"
    for rel in ("ethertypes", "iproute2/rt_tables"):
        if (etc_src / rel).is_file():
            install(etc_src / rel, rootfs / "etc" / rel)


def kube_proxy(tag: str, binary: Path, staging: Path, deb_names: tuple[str, ...]) -> Recipe:
    cfg = ImageConfig(entrypoint=("/usr/local/bin/kube-proxy",))
    return Recipe(name="kube-proxy", tag=tag, config=cfg, fill=partial(_fill_kube_proxy, binary, staging),
                  inputs=(RECIPE_REVISION, file_digest(binary), *deb_names))


def _fill_nginx(staging: Path, rootfs: Path) -> None:
    base_skeleton(rootfs, www_data=True)
    debs.copy_with_libraries(staging, rootfs, ["usr/sbin/nginx"])
    (rootfs / "etc/nginx").mkdir(parents=True)
    shutil.copy2(staging / "etc/nginx/mime.types", rootfs / "etc/nginx/mime.types")
    (rootfs / "etc/nginx/nginx.conf").write_text(data_text("nginx.conf"))
    html = rootfs / "usr/share/nginx/html"
    html.mkdir(parents=True)
    (html / "index.html").write_text(data_text("index.html"))
    for d in ("var/lib/nginx", "var/log/nginx"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    busybox_applets(rootfs, staging)


def nginx(staging: Path, deb_names: tuple[str, ...]) -> Recipe:
    cfg = ImageConfig(cmd=("nginx", "-g", "daemon off;"), exposed_ports=("80/tcp",), stop_signal="SIGQUIT")
    return Recipe(name="nginx", tag="latest", config=cfg, fill=partial(_fill_nginx, staging),
                  inputs=(RECIPE_REVISION, data_text("nginx.conf"), data_text("index.html"), *deb_names))


def _fill_busybox(staging: Path, rootfs: Path) -> None:
    base_skeleton(rootfs)
    busybox_applets(rootfs, staging)


def busybox(staging: Path, deb_names: tuple[str, ...]) -> Recipe:
    # tagged like the upstream busybox release it is (Debian 12's busybox-static 1.35.0): minisand pins it as the
    # addons' probe image, docker.io/library/busybox:1.35.0
    return Recipe(name="busybox", tag="1.35.0", config=ImageConfig(cmd=("sh",)),
                  fill=partial(_fill_busybox, staging), inputs=(RECIPE_REVISION, *deb_names))


CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
REGISTRY_ENTRYPOINT = """#!/bin/sh
# as the docker.io/library/registry image's entrypoint: a config file or a registry subcommand as the first
# argument runs the registry; anything else runs as given
set -e
case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac
exec "$@"
"""


def ca_bundle(staging: Path, rootfs: Path) -> None:
    """/etc/ssl/certs/ca-certificates.crt from Debian's ca-certificates (what update-ca-certificates writes)."""
    certs = sorted((staging / "usr/share/ca-certificates/mozilla").glob("*.crt"))
    dest = rootfs / CA_BUNDLE
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(c.read_text() for c in certs))


def _fill_registry(binary: Path, staging: Path, busybox: Path, rootfs: Path) -> None:
    base_skeleton(rootfs)
    install(binary, rootfs / "usr/bin/registry")
    busybox_applets(rootfs, staging, busybox)
    ca_bundle(staging, rootfs)
    (rootfs / "etc/distribution").mkdir(parents=True)
    (rootfs / "etc/distribution/config.yml").write_text(data_text("registry-config.yml"))
    (rootfs / "entrypoint.sh").write_text(REGISTRY_ENTRYPOINT)
    (rootfs / "entrypoint.sh").chmod(0o755)
    (rootfs / "var/lib/registry").mkdir(parents=True)


def registry(tag: str, binary: Path, staging: Path, busybox: Path, deb_names: tuple[str, ...]) -> Recipe:
    """docker.io/library/registry: the distribution registry with the official image's config and entrypoint."""
    cfg = ImageConfig(entrypoint=("/entrypoint.sh",), cmd=("/etc/distribution/config.yml",),
                      env=(PATH_ENV, "OTEL_TRACES_EXPORTER=none"), exposed_ports=("5000/tcp",),
                      volumes=("/var/lib/registry",))
    return Recipe(name="registry", tag=tag, config=cfg, fill=partial(_fill_registry, binary, staging, busybox),
                  inputs=(RECIPE_REVISION, file_digest(binary), file_digest(busybox), data_text("registry-config.yml"),
                          REGISTRY_ENTRYPOINT, *deb_names))


def storage_provisioner(tag: str, binary: Path) -> Recipe:
    """gcr.io/k8s-minikube/storage-provisioner: one static binary, as minikube's FROM scratch image."""
    cfg = ImageConfig(cmd=("/storage-provisioner",))
    return static_binary("storage-provisioner", tag, binary, "storage-provisioner", cfg)
