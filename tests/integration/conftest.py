"""Fixtures several integration modules share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.lab import Lab, LabEndpoints
from tests.integration.helpers.containerd import ContainerdHost
from tests.integration.helpers.labpods import Pods, lab_containerd
from tests.integration.helpers.libvirtd import Libvirtd, libvirtd_in_netns
from tests.integration.helpers.netns import NetNS, network_namespace


@pytest.fixture()
def libvirtd(tmp_path: Path) -> Iterator[Libvirtd]:
    """A libvirtd of the test's own, inside a network namespace the test created."""
    with libvirtd_in_netns(tmp_path) as d:
        yield d


# The lab as a node sees it: a test module defines `lab` (module scope, with the pieces it needs); these give it
# a network namespace, the lab's endpoints inside it, and a containerd in it that pulls through the lab.
@pytest.fixture(scope="module")
def netns() -> Iterator[NetNS]:
    with network_namespace("msd-lab") as ns:
        yield ns


@pytest.fixture(scope="module")
def inside(lab: Lab, netns: NetNS) -> LabEndpoints:
    """The lab as containerd sees it from inside the namespace."""
    return lab.expose_in_netns(netns.path)


@pytest.fixture(scope="module")
def ctd(netns: NetNS, inside: LabEndpoints, lab: Lab) -> Iterator[ContainerdHost]:
    with lab_containerd(lab, netns, inside) as host:
        yield host


@pytest.fixture()
def pods(ctd: ContainerdHost, tmp_path: Path) -> Iterator[Pods]:
    """Pods run through the lab containerd's CRI, removed at the end of the test."""
    p = Pods(ctd, tmp_path)
    try:
        yield p
    finally:
        p.cleanup()
