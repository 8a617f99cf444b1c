"""e2e, multi-node: `--nodes 2` with the kvm2 driver on its private libvirt network (inside a network namespace
the test created, with a libvirtd the test started): the worker joins with kubeadm, both nodes are Ready, a pod
pinned to the worker runs and reaches a Service whose pod runs on the control plane (cross-node pod routes and
cluster DNS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.conftest import Kubectl, collect_journals
from e2e.lab import Lab
from minisand.iso.build import build_iso
from tests.integration.helpers.cli import CLI, qemu_pids
from tests.integration.helpers.libvirtd import Libvirtd, libvirt_objects, libvirtd_in_netns

pytestmark = [pytest.mark.root, pytest.mark.vm, pytest.mark.slow, pytest.mark.multinode, pytest.mark.timeout(3600)]

PROFILE = "multi"
GATEWAY = "192.168.39.1"  # the first private network minisand creates in a fresh namespace


@pytest.fixture(scope="module")
def env(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Libvirtd, dict[str, str]]]:
    with libvirtd_in_netns(tmp_path_factory.mktemp("libvirtd"), "mn") as d:
        inside = lab.expose_in_netns(d.ns.path, address="0.0.0.0")
        http_port = inside.binary_mirror.rsplit(":", 1)[1]
        registry_port = inside.registry.rsplit(":", 1)[1]
        yield d, {"http": f"http://127.0.0.1:{http_port}", "guest_registry": f"http://{GATEWAY}:{registry_port}"}


def _flags(ports: dict[str, str]) -> list[str]:
    iso = build_iso(None)
    reg = ports["guest_registry"]
    return ["--driver=kvm2", "--nodes=2", f"--iso-url=file://{iso.iso}", f"--iso-checksum=sha256:{iso.sha256}",
            "--memory=3g", "--cpus=2", f"--binary-mirror={ports['http']}", "--offline",
            f"--registry-mirror=registry.k8s.io={reg}", f"--registry-mirror=docker.io={reg}",
            "--wait-timeout=40m"]


def test_two_nodes_join_and_pods_talk_across_them(env: tuple[Libvirtd, dict[str, str]], tmp_path: Path) -> None:
    libvirtd, ports = env
    cli = CLI(tmp_path / "home", PROFILE, prefix=libvirtd.ns.argv())
    try:
        cli.ok("start", *_flags(ports), label="start 2 nodes")
        k = Kubectl(cli)
        nodes = {n["metadata"]["name"]: n for n in k.json("get", "nodes")["items"]}
        assert set(nodes) == {PROFILE, f"{PROFILE}-m02"}
        for n in nodes.values():
            assert {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"] == "True"
        k.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n"
                f"  nodeName: {PROFILE}\n  containers:\n  - {{name: nginx, image: nginx}}\n---\n"
                "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n"
                "  ports: [{port: 80}]\n")
        k.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n"
                f"  nodeName: {PROFILE}-m02\n  restartPolicy: Never\n  containers:\n"
                "  - {name: c, image: 'docker.io/library/busybox:1.35.0', command: [sleep, '3600']}\n")
        k.wait("pod/web", "condition=Ready", 1800)
        k.wait("pod/client", "condition=Ready", 1800)
        page = k.run("exec", "client", "--", "wget", "-qO-", "http://web/", timeout=600).stdout
        assert "Welcome to nginx" in page
        status = cli.run("status")
        assert status.returncode == 0 and status.stdout.count("host: Running") == 2
    except AssertionError:
        collect_journals(cli, tmp_path / "journals.txt")
        raise
    finally:
        cli.run("delete")
    doms, nets = libvirt_objects()
    assert PROFILE not in doms and f"minisand-{PROFILE}" not in nets
    assert qemu_pids(f"minisand-{PROFILE}") == []
