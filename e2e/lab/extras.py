"""The lab's optional pieces, built after the core (Kubernetes, etcd, CoreDNS, pause, crictl, gVisor, images):

- "registry": docker.io/library/registry, the distribution registry built from its Go module (registry addon);
- "headlamp": ghcr.io/headlamp-k8s/headlamp built from its source archive (dashboard addon);
- "conformance": e2e.test (a host program), the e2e test images agnhost, busybox and nonewprivs under
  registry.k8s.io/e2e-test-images/, and minikube's storage-provisioner (for the side-by-side comparison).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from e2e.lab import e2etest, headlamp, oci, programs, rootfs, testimages
from e2e.lab.artifacts import (
    CN_NAMESPACE,
    ImageEntry,
    go_artifact,
    image_entry,
    k8s_image_entry,
    staging_tree,
    suite_program,
)
from e2e.lab.cache import LabCache
from e2e.lab.errors import LabError
from e2e.lab.gomod import origin_hash

PIECES = ("registry", "headlamp", "conformance")
# what a default lab (scripts/setup, the default test suite, the seed demo) builds: Headlamp for the dashboard.
# The registry image and the conformance material are built on demand by what uses them (opt-in suites), to
# keep a cold CI run inside its budget.
DEFAULT_PIECES = ("headlamp",)
DISTRIBUTION_VERSION = "v3.1.2"  # the newest release the Go module proxy serves (v3.0.0, v3.1.1, v3.1.2)
REGISTRY_ALIASES = ("3",)
MINIKUBE_VERSION = "v1.38.1"  # the proxy serves v1.38.1 (not v1.38.0)
HEADLAMP_REPOSITORY = "ghcr.io/headlamp-k8s/headlamp"
STORAGE_PROVISIONER_REPOSITORY = "gcr.io/k8s-minikube/storage-provisioner"
# the e2e images the conformance subset pulls, as test/utils/image/manifest.go of Kubernetes v1.36 names them
AGNHOST_TAG = "2.63.0"
AGNHOST_ALIASES = ("2.55",)  # AgnhostPrev: served by the same build
E2E_BUSYBOX_TAG = "1.37.0-1"
NONEWPRIVS_TAG = "1.4"
E2E_PAUSE_TAG = "3.10.2"
# Debian packages (host release) the new images take programs and files from
EXTRA_PACKAGES = ("curl", "util-linux", "ca-certificates")


@dataclass(frozen=True)
class KubeSource:
    """k8s.io/kubernetes at one version, as the Go module proxy serves it."""

    version: str
    go_mod: str
    commit: str
    build_date: str
    module_dir: Path


@dataclass(frozen=True)
class Extras:
    images: tuple[ImageEntry, ...] = ()
    e2e_test: str = ""


def check_pieces(pieces: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(pieces))
    unknown = [p for p in chosen if p not in PIECES]
    if unknown:
        raise LabError(f"unknown lab piece(s): {', '.join(unknown)}", f"pieces: {', '.join(PIECES)}")
    return tuple(p for p in PIECES if p in chosen)


def busybox_forky(cache: LabCache) -> Path:
    return suite_program(cache, "busybox-static", testimages.BUSYBOX_SUITE, testimages.BUSYBOX_VERSION,
                         "usr/bin/busybox")


def registry_image(cache: LabCache, staging: Path, deb_names: tuple[str, ...], busybox: Path) -> ImageEntry:
    work = cache.root / "gomod"
    commit = origin_hash(programs.DISTRIBUTION_MODULE, DISTRIBUTION_VERSION, work)
    bindir = go_artifact(cache, programs.distribution(DISTRIBUTION_VERSION, commit), DISTRIBUTION_VERSION)
    recipe = rootfs.registry(DISTRIBUTION_VERSION.lstrip("v"), bindir / "registry", staging, busybox, deb_names)
    return image_entry(recipe, oci.build_image(cache, recipe), "docker.io/library/registry",
                       ("library/registry", f"{CN_NAMESPACE}/registry"), REGISTRY_ALIASES)


def headlamp_image(cache: LabCache, staging: Path, deb_names: tuple[str, ...], busybox: Path) -> ImageEntry:
    server = headlamp.build_backend(cache)
    frontend = headlamp.build_frontend(cache)
    recipe = headlamp.recipe(server, frontend, staging, busybox, deb_names)
    return image_entry(recipe, oci.build_image(cache, recipe), HEADLAMP_REPOSITORY,
                       ("headlamp-k8s/headlamp", f"{CN_NAMESPACE}/headlamp"))


def conformance_images(cache: LabCache, src: KubeSource, staging: Path, deb_names: tuple[str, ...],
                       busybox: Path, pause_bin: Path, pause_tag: str) -> list[ImageEntry]:
    bins = go_artifact(cache, programs.k8s_test_images(src.version, src.go_mod), src.version)
    porter = src.module_dir / "test/images/agnhost/porter"
    e2e_repo = testimages.E2E_REPOSITORY
    entries = []
    recipe = testimages.agnhost(AGNHOST_TAG, bins / "agnhost", porter, staging, busybox, deb_names)
    entries.append(k8s_image_entry(recipe, oci.build_image(cache, recipe), f"{e2e_repo}/agnhost", AGNHOST_ALIASES))
    recipe = testimages.busybox(E2E_BUSYBOX_TAG, busybox)
    entries.append(k8s_image_entry(recipe, oci.build_image(cache, recipe), f"{e2e_repo}/busybox"))
    recipe = testimages.nonewprivs(NONEWPRIVS_TAG, bins / "nnp", busybox)
    entries.append(k8s_image_entry(recipe, oci.build_image(cache, recipe), f"{e2e_repo}/nonewprivs"))
    if pause_tag != E2E_PAUSE_TAG:  # kubeadm's pause differs from the one the e2e suite names: serve both
        recipe = rootfs.pause(E2E_PAUSE_TAG, pause_bin)
        entries.append(k8s_image_entry(recipe, oci.build_image(cache, recipe), "registry.k8s.io/pause"))
    provisioner = go_artifact(cache, programs.storage_provisioner(MINIKUBE_VERSION), MINIKUBE_VERSION)
    recipe = rootfs.storage_provisioner(programs.STORAGE_PROVISIONER_TAG, provisioner / "storage-provisioner")
    # gcr.io's path; Aliyun's flat name (minikube's cn mirror); minikube's <--image-repository>/k8s-minikube/...
    entries.append(image_entry(recipe, oci.build_image(cache, recipe), STORAGE_PROVISIONER_REPOSITORY,
                               ("k8s-minikube/storage-provisioner", f"{CN_NAMESPACE}/storage-provisioner",
                                f"{CN_NAMESPACE}/k8s-minikube/storage-provisioner")))
    return entries


def build_extras(cache: LabCache, pieces: tuple[str, ...], src: KubeSource, *, pause_bin: Path, pause_tag: str,
                 e2e_variant: str = e2etest.DEFAULT_VARIANT) -> Extras:
    """Build the optional pieces named (cached like everything else)."""
    if not pieces:
        return Extras()
    staging, deb_names = staging_tree(cache, EXTRA_PACKAGES)
    busybox = busybox_forky(cache)
    images: list[ImageEntry] = []
    e2e_test = ""
    if "registry" in pieces:
        images.append(registry_image(cache, staging, deb_names, busybox))
    if "headlamp" in pieces:
        images.append(headlamp_image(cache, staging, deb_names, busybox))
    if "conformance" in pieces:
        images += conformance_images(cache, src, staging, deb_names, busybox, pause_bin, pause_tag)
        e2e_test = str(e2etest.build_e2e_test(cache, e2e_variant, src.version, src.go_mod, src.commit,
                                              src.build_date))
    return Extras(images=tuple(images), e2e_test=e2e_test)
