"""The preload: built on the host from a real distribution registry (the lab's) through the mirrors the node
would use — including a guest-forwarded mirror address translated to its host end — then imported by a real
containerd 2.1.9 in a test network namespace."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.lab import Lab
from minisand.bootstrap import preload
from minisand.config.model import MirrorConfig
from minisand.cruntime.plan import build_plan
from minisand.errors import ExitCode, MinisandError
from tests.integration.helpers import tools
from tests.integration.helpers.containerd import ContainerdHost, short_workdir
from tests.integration.helpers.netns import network_namespace

pytestmark = [pytest.mark.root]

REFS = ["registry.k8s.io/pause:3.10.2", "registry.k8s.io/coredns/coredns:v1.14.2"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(run_dir=tmp_path_factory.mktemp("lab"))
    lab.start()
    try:
        yield lab
    finally:
        assert lab.stop() == []


def _mirrors(guest_registry: str) -> MirrorConfig:
    return MirrorConfig(registry_mirrors=(f"registry.k8s.io=http://{guest_registry}",), offline=True)


def test_build_through_a_forwarded_mirror_and_import(lab: Lab, tmp_path: Path) -> None:
    assert lab.endpoints is not None
    forward = f"10.0.2.100:5000={lab.endpoints.registry}"
    tar = tmp_path / "preload.tar"
    before = len(lab.registry_requests())
    downloaded = preload.build(tar, REFS, _mirrors("10.0.2.100:5000"), (forward,), "amd64")
    assert downloaded > 100_000
    assert preload.valid(tar)
    with tarfile.open(tar) as tf:
        names = set(tf.getnames())
        index = json.loads(tf.extractfile("index.json").read())  # type: ignore[union-attr]
    assert {"oci-layout", "index.json"} <= names
    assert [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]] == REFS
    for m in index["manifests"]:
        assert f"blobs/sha256/{m['digest'].split(':')[1]}" in names
    served = [r for r in lab.registry_requests()[before:] if r.kind == "manifests"]
    assert {r.repository for r in served if r.ns == "registry.k8s.io" and r.status == 200} == {
        "pause", "coredns/coredns"}
    assert preload.ensure(tar, REFS, _mirrors("10.0.2.100:5000"), (forward,), "amd64") == 0  # cached: no traffic

    with network_namespace("msd-preload") as ns:
        host = ContainerdHost(netns=ns, workdir=short_workdir(), bin_dir=tools.containerd_bin().parent,
                              runc=tools.runc_bin(), crictl_bin=tools.crictl_bin())
        try:
            host.install(build_plan(host.settings(), config_file=host.config_file))
            ctr = [str(host.bin_dir / "ctr"), "--address", host.socket, "--namespace", "k8s.io"]
            host.runner.run([*ctr, "images", "import", str(tar)], timeout=300)
            listed = host.runner.run([*ctr, "images", "list", "--quiet"], timeout=60).out.split()
            assert set(REFS) <= set(listed)
        finally:
            host.cleanup()


def test_offline_without_a_mirror_fails_clearly(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(MinisandError) as exc:
        preload.build(tmp_path / "p.tar", ["quay.io/some/image:1"], _mirrors("127.0.0.1:1"), (), "amd64")
    assert exc.value.code == ExitCode.DOWNLOAD_ERROR
    assert not (tmp_path / "p.tar").exists() and not list(tmp_path.glob(".preload-*"))
    # ensure() never fails a start: it falls back to kubeadm's own pulls
    assert preload.ensure(tmp_path / "p.tar", ["quay.io/some/image:1"], _mirrors("127.0.0.1:1"), (), "amd64") == 0
