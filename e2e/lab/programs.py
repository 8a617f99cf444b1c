"""Recipes for the Go programs the lab builds: Kubernetes, etcd, CoreDNS, crictl, gVisor and our pause."""

from __future__ import annotations

import re
from importlib import resources

from e2e.lab.gomod import GoProgram
from e2e.lab.versions import K8S_BINARIES, k8s_parts, staging_version

_STAGING = re.compile(r"^\s*(k8s\.io/[A-Za-z0-9._/-]+)\s+=>\s+\./staging/", re.MULTILINE)


def data_text(name: str) -> str:
    return resources.files("e2e.lab").joinpath("data", name).read_text()


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The modules k8s.io/kubernetes replaces with ./staging/... in its go.mod."""
    return sorted(set(_STAGING.findall(kubernetes_go_mod)))


def version_ldflags(pkg: str, version: str, commit: str, build_date: str) -> list[str]:
    major, minor, _ = k8s_parts(version)
    values = {"gitVersion": version, "gitMajor": str(major), "gitMinor": str(minor), "gitCommit": commit,
              "gitTreeState": "clean", "buildDate": build_date}
    return [f"-X {pkg}.{key}={value}" for key, value in values.items()]


def kubernetes(version: str, kubernetes_go_mod: str, commit: str, build_date: str) -> GoProgram:
    staging = staging_version(version)
    ldflags = (version_ldflags("k8s.io/component-base/version", version, commit, build_date)
               + version_ldflags("k8s.io/client-go/pkg/version", version, commit, build_date))
    return GoProgram(
        name="kubernetes",
        requires=(("k8s.io/kubernetes", version),),
        replaces=tuple((mod, staging) for mod in staging_modules(kubernetes_go_mod)),
        packages=tuple(f"k8s.io/kubernetes/cmd/{b}" for b in K8S_BINARIES),
        ldflags=tuple(ldflags),
    )


def etcd(version: str, commit: str) -> GoProgram:
    flags = (f"-X go.etcd.io/etcd/api/v3/version.GitSHA={commit[:7]}",) if commit else ()
    return GoProgram(name="etcd", requires=(("go.etcd.io/etcd/server/v3", version),), packages=(),
                     main_source=data_text("etcd_main.go"), ldflags=flags)


def coredns(version: str, commit: str) -> GoProgram:
    flags = (f"-X github.com/coredns/coredns/coremain.GitCommit={commit[:7]}",) if commit else ()
    return GoProgram(name="coredns", requires=(("github.com/coredns/coredns", version),),
                     packages=("github.com/coredns/coredns",), ldflags=flags)


def crictl(version: str) -> GoProgram:
    return GoProgram(name="crictl", requires=(("sigs.k8s.io/cri-tools", version),),
                     packages=("sigs.k8s.io/cri-tools/cmd/crictl",),
                     ldflags=(f"-X sigs.k8s.io/cri-tools/pkg/version.Version={version}",))


def gvisor(pseudo_version: str, release: str) -> GoProgram:
    return GoProgram(name="gvisor", requires=(("gvisor.dev/gvisor", pseudo_version),),
                     packages=("gvisor.dev/gvisor/runsc", "gvisor.dev/gvisor/shim"),
                     ldflags=(f"-X gvisor.dev/gvisor/runsc/version.version=release-{release}.0",),
                     renames=(("shim", "containerd-shim-runsc-v1"),))


def pause(tag: str) -> GoProgram:
    return GoProgram(name="pause", requires=(), packages=(), main_source=data_text("pause.go"),
                     ldflags=(f"-X main.version={tag}",))


DISTRIBUTION_MODULE = "github.com/distribution/distribution/v3"
MINIKUBE_MODULE = "k8s.io/minikube"
# minikube's Makefile: STORAGE_PROVISIONER_TAG ?= v5, stamped into the provisioner as pkg/storage.version
STORAGE_PROVISIONER_TAG = "v5"


def distribution(version: str, commit: str) -> GoProgram:
    """The registry of distribution/distribution v3, stamped as its Makefile does."""
    pkg = f"{DISTRIBUTION_MODULE}/version"
    flags = [f"-X {pkg}.version={version}", f"-X {pkg}.mainpkg={DISTRIBUTION_MODULE}"]
    if commit:
        flags.append(f"-X {pkg}.revision={commit}")
    return GoProgram(name="distribution", requires=((DISTRIBUTION_MODULE, version),),
                     packages=(f"{DISTRIBUTION_MODULE}/cmd/registry",), ldflags=tuple(flags))


def storage_provisioner(minikube_version: str) -> GoProgram:
    return GoProgram(name="storage-provisioner", requires=((MINIKUBE_MODULE, minikube_version),),
                     packages=(f"{MINIKUBE_MODULE}/cmd/storage-provisioner",),
                     ldflags=(f"-X {MINIKUBE_MODULE}/pkg/storage.version={STORAGE_PROVISIONER_TAG}",))


def k8s_test_images(version: str, kubernetes_go_mod: str) -> GoProgram:
    """agnhost and nonewprivs' nnp from test/images, in the same wrapper module as the Kubernetes binaries."""
    return GoProgram(
        name="k8s-test-images",
        requires=(("k8s.io/kubernetes", version),),
        replaces=tuple((mod, staging_version(version)) for mod in staging_modules(kubernetes_go_mod)),
        packages=("k8s.io/kubernetes/test/images/agnhost", "k8s.io/kubernetes/test/images/nonewprivs"),
        renames=(("nonewprivs", "nnp"),),
    )
