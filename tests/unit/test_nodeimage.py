"""The node image's recipe (key, configs, argv) and cache lookup; the bundle transfer and checksum lists that
replace hashing in the guest; a machine's disk layered over the node image."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tarfile
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from minisand.bootstrap import binaries, nodeimage, nodeimage_build
from minisand.bootstrap.nodeimage import NodeImageKey
from minisand.drivers import vmcommon
from minisand.errors import ExitCode, MinisandError
from minisand.paths import Home
from minisand.runner import bundle
from minisand.runner.base import RunResult
from minisand.runner.local import LocalRunner

KEY = NodeImageKey(kubernetes_version="v1.36.4", repository="registry.k8s.io", arch="amd64",
                   containerd_version="2.1.9", disk_mb=20480,
                   refs=("registry.k8s.io/pause:3.10.2", "registry.k8s.io/etcd:3.6.5-0"),
                   binaries=(("kubeadm", "a" * 64), ("kubectl", "b" * 64), ("kubelet", "c" * 64)))


# -- the key ---------------------------------------------------------------------------------------------------
def test_key_names_version_arch_size_and_a_digest_of_everything() -> None:
    assert KEY.name() == f"v1.36.4-amd64-20480m-{KEY.digest()}"
    assert len(KEY.digest()) == 16 and KEY.digest() == dataclasses.replace(KEY).digest()


@pytest.mark.parametrize("change", [
    {"repository": "registry.cn-hangzhou.aliyuncs.com/google_containers"}, {"arch": "arm64"},
    {"containerd_version": "2.2.0"}, {"disk_mb": 40960}, {"kubernetes_version": "v1.35.2"},
    {"refs": ("registry.k8s.io/pause:3.10.2",)}, {"binaries": (("kubeadm", "d" * 64),)},
])
def test_every_input_changes_the_key(change: dict[str, Any]) -> None:
    assert dataclasses.replace(KEY, **change).digest() != KEY.digest()


@pytest.mark.parametrize(("text", "version"), [
    ("containerd github.com/containerd/containerd/v2 2.1.9+unknown \n", "2.1.9"),
    ("containerd containerd.io v2.2.0 1c4457e00facac03ce1d75f7b6777a7a851e5c41\n", "2.2.0"),
    ("containerd github.com/containerd/containerd v1.7.24 ~ds1\n", "1.7.24"),
    ("", None), ("containerd: command not found", None),
])
def test_containerd_version(text: str, version: str | None) -> None:
    assert nodeimage.containerd_version(text) == version


def test_only_a_2x_store_goes_to_the_2x_guest() -> None:
    assert nodeimage.store_compatible("2.1.9") and nodeimage.store_compatible("2.2.0", "2.1.9")
    assert not nodeimage.store_compatible("1.7.24")
    assert not nodeimage.store_compatible("2.1.9", "1.7.24")


# -- the recipe -------------------------------------------------------------------------------------------------
def test_tree_mirrors_the_data_disks_persist_folder(tmp_path: Path) -> None:
    store, bins = nodeimage.tree_paths(tmp_path, "v1.36.4")
    assert store == tmp_path / "persist/var/lib/containerd"
    assert bins == tmp_path / "persist/var/lib/minisand/bin/v1.36.4"


def test_mke2fs_makes_the_initramfs_data_disk_from_the_tree(tmp_path: Path) -> None:
    argv = nodeimage.mke2fs_argv(tmp_path / "tree", tmp_path / "data.img", 20480)
    assert argv[0] == "mke2fs" and argv[-2:] == [str(tmp_path / "data.img"), "20480M"]
    assert argv[argv.index("-L") + 1] == "minisand-data"  # what the initramfs looks for
    assert argv[argv.index("-d") + 1] == str(tmp_path / "tree")
    features = argv[argv.index("-O") + 1]
    assert features.startswith("none,") and "metadata_csum" in features  # explicit: no newer host defaults
    assert "lazy_itable_init=1" in argv[argv.index("-E") + 1]


def test_private_containerd_config_keeps_everything_in_its_work_folder(tmp_path: Path) -> None:
    work, store = Path("/tmp/msd-ni-x"), tmp_path / "store"
    cfg = tomllib.loads(nodeimage.containerd_config(work, store))
    assert cfg["version"] == 3 and cfg["root"] == str(store) and cfg["state"] == "/tmp/msd-ni-x/state"
    assert cfg["grpc"]["address"] == "/tmp/msd-ni-x/c.sock"
    assert cfg["ttrpc"]["address"] == "/tmp/msd-ni-x/c.sock.ttrpc"
    for plugin in ("io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt"):
        assert plugin in cfg["disabled_plugins"]


def test_private_containerd_runs_with_a_private_run_folder() -> None:
    argv = nodeimage.containerd_argv("/usr/local/bin/containerd", Path("/tmp/w/config.toml"))
    assert argv[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
    assert argv[5:8] == ["sh", "-c", nodeimage.PRIVATE_RUN]  # a constant: paths arrive as parameters
    assert argv[-3:] == ["/usr/local/bin/containerd", "--config", "/tmp/w/config.toml"]
    assert "/run" in nodeimage.PRIVATE_RUN and "$@" in nodeimage.PRIVATE_RUN


# -- the cache ----------------------------------------------------------------------------------------------------
def _fake_image(home: Home, key: NodeImageKey, size: int | None = None,
                manifest_key: NodeImageKey | None = None) -> Path:
    d = nodeimage_build.image_dir(home, key)
    d.mkdir(parents=True)
    with (d / nodeimage_build.IMAGE_NAME).open("wb") as f:
        f.truncate(size if size is not None else key.disk_mb << 20)  # sparse
    (d / nodeimage_build.MANIFEST_NAME).write_text(json.dumps({"key": dataclasses.asdict(manifest_key or key)}))
    return d / nodeimage_build.IMAGE_NAME


def test_lookup_finds_a_complete_image(tmp_path: Path) -> None:
    home = Home(tmp_path)
    image = _fake_image(home, KEY)
    assert nodeimage_build.lookup(home, KEY) == image
    assert nodeimage_build.lookup(home, dataclasses.replace(KEY, disk_mb=10240)) is None


def test_lookup_refuses_an_incomplete_or_foreign_image(tmp_path: Path) -> None:
    home = Home(tmp_path / "a")
    _fake_image(home, KEY, size=1 << 20)  # cut short
    assert nodeimage_build.lookup(home, KEY) is None
    home = Home(tmp_path / "b")
    _fake_image(home, KEY, manifest_key=dataclasses.replace(KEY, repository="other"))
    assert nodeimage_build.lookup(home, KEY) is None
    home = Home(tmp_path / "c")
    (_fake_image(home, KEY).parent / nodeimage_build.MANIFEST_NAME).unlink()  # the build did not finish
    assert nodeimage_build.lookup(home, KEY) is None


# -- checksum lists and the bundle ------------------------------------------------------------------------------------
def test_sums_round_trip_in_sha256sums_format() -> None:
    sums = {"kubelet": "c" * 64, "kubeadm": "a" * 64, "runsc": "f" * 128}
    text = bundle.sums_text(sums)
    assert text.splitlines()[0] == f"{'a' * 64}  kubeadm"
    assert bundle.parse_sums(text) == sums
    assert bundle.parse_sums("garbage\nzz  kubelet\n" + "g" * 64 + "  x\n") == {}


def _read_tar(data: bytes) -> dict[str, tuple[bytes, int]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: (tf.extractfile(m).read(), m.mode) for m in tf.getmembers()}  # type: ignore[union-attr]


def test_pack_checks_each_file_before_it_travels(tmp_path: Path) -> None:
    import hashlib

    src = tmp_path / "kubelet"
    src.write_bytes(b"binary")
    good = bundle.BundleFile("kubelet", 0o755, source=src, digest="sha256:" + hashlib.sha256(b"binary").hexdigest())
    out = io.BytesIO()
    assert bundle.pack([good, bundle.BundleFile("SUMS", 0o644, data=b"x\n")], out) == 8
    assert _read_tar(out.getvalue()) == {"kubelet": (b"binary", 0o755), "SUMS": (b"x\n", 0o644)}
    bad = dataclasses.replace(good, digest="sha512:" + "0" * 128)
    with pytest.raises(MinisandError) as exc:
        bundle.pack([bad], io.BytesIO())
    assert exc.value.code == ExitCode.CHECKSUM_MISMATCH and str(src) in exc.value.message
    with pytest.raises(ValueError):
        bundle.pack([bundle.BundleFile("../etc/passwd", 0o644, data=b"")], io.BytesIO())


@pytest.mark.allow_subprocess
def test_install_unpacks_beside_the_destination_and_moves_the_list_last(tmp_path: Path) -> None:
    dest = PurePosixPath(tmp_path / "bin" / "v1")
    runner = LocalRunner()
    (tmp_path / "bin" / "v1").mkdir(parents=True)
    (tmp_path / "bin" / "v1" / "old").write_text("kept")
    files = [bundle.BundleFile("kubelet", 0o755, data=b"k"), bundle.BundleFile("SHA256SUMS", 0o644, data=b"s\n")]
    assert bundle.install(runner, dest, files, last="SHA256SUMS") == 3
    got = {p.name: (p.read_bytes(), p.stat().st_mode & 0o777) for p in Path(dest).iterdir()}
    assert got == {"kubelet": (b"k", 0o755), "SHA256SUMS": (b"s\n", 0o644), "old": (b"kept", 0o644)}
    assert sorted(os.listdir(tmp_path / "bin")) == ["v1"]  # no temporary folder left
    assert bundle.installed_sums(runner, dest, ["kubelet"], "SHA256SUMS") == {}  # "s" is no checksum list
    (tmp_path / "bin" / "v1" / "SHA256SUMS").write_text(bundle.sums_text({"kubelet": "c" * 64, "kubectl": "d" * 64}))
    assert bundle.installed_sums(runner, dest, ["kubelet", "kubectl"], "SHA256SUMS") == {"kubelet": "c" * 64}


@pytest.mark.allow_subprocess
def test_install_failure_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MinisandError) as exc:
        bundle.install(LocalRunner(), PurePosixPath(blocker / "sub"), [bundle.BundleFile("a", 0o644, data=b"")])
    assert exc.value.code == ExitCode.GUEST_ERROR and "installing a into" in exc.value.message


class _Node:
    """The node side of install_in_guest: a checksum list and the files it has, and what was streamed to it."""

    def __init__(self, sums: dict[str, str], present: set[str]) -> None:
        self.sums, self.present = sums, present
        self.streamed: list[dict[str, tuple[bytes, int]]] = []

    def run(self, argv: list[str], **_kw: Any) -> RunResult:
        paths = argv[5:]
        out = bundle.sums_text(self.sums) + "".join(f"missing {p}\n" for p in paths
                                                   if PurePosixPath(p).name not in self.present)
        return RunResult(tuple(argv), 0, out.encode(), b"", 0.0)

    def stream(self, argv: list[str], *, stdin: Any, **_kw: Any) -> int:
        self.streamed.append(_read_tar(stdin.read()))
        return 0

    @property
    def where(self) -> str:
        return "a test node"


def _cached(tmp_path: Path, name: str, data: bytes) -> binaries.CachedBinary:
    import hashlib

    p = tmp_path / name
    p.write_bytes(data)
    return binaries.CachedBinary(name, p, hashlib.sha256(data).hexdigest(), 0)


def test_binaries_travel_only_when_the_nodes_list_differs(tmp_path: Path) -> None:
    bins = {n: _cached(tmp_path, n, n.encode()) for n in ("kubeadm", "kubectl", "kubelet")}
    sums = {n: b.sha256 for n, b in bins.items()}
    node = _Node(sums, set(bins))
    assert binaries.install_in_guest(node, "v1.36.4", bins) == 0  # type: ignore[arg-type]
    assert node.streamed == []
    node = _Node({**sums, "kubelet": "0" * 64}, set(bins) - {"kubectl"})  # one stale, one gone
    sent = binaries.install_in_guest(node, "v1.36.4", bins)  # type: ignore[arg-type]
    (tar,) = node.streamed
    assert set(tar) == {"kubectl", "kubelet", "SHA256SUMS"}
    assert sent == len(b"kubectlkubelet") + len(tar["SHA256SUMS"][0])
    assert bundle.parse_sums(tar["SHA256SUMS"][0].decode()) == sums


# -- a machine's disk over the node image -------------------------------------------------------------------------
@pytest.mark.allow_subprocess
def test_disk_is_a_layer_over_the_linked_node_image(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is needed (apt-get install qemu-utils)")
    base = tmp_path / "cache" / "data.img"
    base.parent.mkdir()
    with base.open("wb") as f:
        f.truncate(64 << 20)
    machine = tmp_path / "machine"
    machine.mkdir()
    vmcommon.create_disk(machine / "disk.qcow2", 64, base)
    link = machine / vmcommon.BASE_IMAGE
    assert link.stat().st_ino == base.stat().st_ino  # a hard link: the machine outlives the cache entry
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(machine / "disk.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == vmcommon.BASE_IMAGE and info["backing-filename-format"] == "raw"
    assert info["virtual-size"] == 64 << 20


# -- what the disk says about itself, and what is placed on it ----------------------------------------------------
def test_marker_names_the_images_for_its_repository_only() -> None:
    text = nodeimage.marker(KEY)
    assert nodeimage.marker_refs(text, "registry.k8s.io") == set(KEY.refs)
    assert nodeimage.marker_refs(text, "registry.cn-hangzhou.aliyuncs.com/google_containers") == set()
    assert nodeimage.marker_refs(None, "registry.k8s.io") == set()
    assert nodeimage.marker_refs("{broken", "registry.k8s.io") == set()


@pytest.mark.parametrize("path", ["/etc/containerd/config.toml", "/etc/systemd/system/kubelet.service",
                                  "/var/lib/minisand/kubernetes-version"])
def test_files_go_under_persist(tmp_path: Path, path: str) -> None:
    assert nodeimage.persisted_path(tmp_path, path) == tmp_path / "persist" / path.lstrip("/")


@pytest.mark.parametrize("path", ["/etc/hosts", "etc/containerd/x", "/etc/containerd/../hosts", "/etc/containerd",
                                  "/var/lib/containerd-other/x"])
def test_files_outside_the_persisted_folders_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError):
        nodeimage.persisted_path(tmp_path, path)


def test_first_start_files_are_what_the_first_start_writes() -> None:
    from minisand.cluster import nodeimage as cluster_nodeimage
    from minisand.cluster.runtime import addon_handlers, settings_for
    from minisand.config.model import ClusterConfig
    from minisand.cruntime.plan import build_plan
    from minisand.nodefacts import ISO_GUEST

    cfg = ClusterConfig(name="p", driver="qemu")
    files = dict(cluster_nodeimage.first_start_files(cfg, "registry.k8s.io"))
    config = files["/etc/containerd/config.toml"]
    guest = dataclasses.replace(ISO_GUEST, containerd_version="containerd dpkg 2.1.9~ds1-1", ip="10.0.2.15")
    assert config == build_plan(settings_for(cfg, guest, "registry.k8s.io", addon_handlers(cfg)), cfg.mirrors,
                                config_version=3).config_text
    assert 'sandbox = "registry.k8s.io/pause:' in config and "SystemdCgroup = true" in config
    assert files["/var/lib/minisand/kubernetes-version"] == f"{cfg.kubernetes_version}\n"
    assert f"/var/lib/minisand/bin/{cfg.kubernetes_version}/kubelet" in files["/etc/systemd/system/kubelet.service"]
    other = dict(cluster_nodeimage.first_start_files(cfg, "registry.cn-hangzhou.aliyuncs.com/google_containers"))
    assert other["/etc/containerd/config.toml"] != config  # the key follows the repository's sandbox image


@pytest.mark.allow_subprocess
def test_install_a_gzip_stream(tmp_path: Path) -> None:
    dest = PurePosixPath(tmp_path / "gvisor")
    data = b"runsc " * 50000
    sent = bundle.install(LocalRunner(), dest, [bundle.BundleFile("runsc", 0o755, data=data)], gzip_level=1)
    assert sent == len(data) and (tmp_path / "gvisor" / "runsc").read_bytes() == data
    out = io.BytesIO()
    bundle.pack([bundle.BundleFile("runsc", 0o755, data=data)], out, gzip_level=1)
    assert out.getvalue()[:2] == b"\x1f\x8b" and len(out.getvalue()) < len(data) // 10
