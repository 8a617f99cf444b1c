"""The seed demo (../shared/seeds/000_*.txt), end to end in a VM booted from minisand's ISO with the qemu driver
(TCG here), every download served by the offline lab through minisand's ordinary mirror flags:

start (containerd, mirrors) -> nginx on the default runtime -> `addons enable gvisor` -> RuntimeClass gvisor ->
the same pod with runtimeClassName: gvisor -> `uname -r` shows the node's kernel, then gVisor's -> `crictl pods`
and `ctr images ls` in the node -> stop/start -> a gvisor pod again without re-enabling -> `addons disable`.
Along the way: issue 5's VM checks (Ready node, kube-system Running, a web pod answering inside the cluster,
the same cluster after stop/start, delete removing the machine and the kubeconfig context) and the gvisor
addon's refusals (a wrong sha512, enabling twice, enabling on a stopped cluster)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from e2e.conftest import Kubectl, collect_journals, wait_until
from e2e.lab import Lab
from e2e.lab.endpoints import LabEndpoints
from minisand.iso.build import BuildResult, build_iso
from tests.integration.helpers.cli import CLI, qemu_pids

pytestmark = [pytest.mark.root, pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1800)]

GUEST_REGISTRY = "10.0.2.100:5000"  # where the guest reaches the lab's registry (qemu guestfwd)
PROFILE = "seed-demo"

NGINX = """
apiVersion: v1
kind: Pod
metadata: {name: nginx, labels: {app: nginx}}
spec:
  containers:
  - {name: nginx, image: nginx, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  selector: {app: nginx}
  ports: [{port: 80, targetPort: 80}]
"""

UNTRUSTED = """
apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  runtimeClassName: gvisor
  containers:
  - {name: nginx, image: nginx}
"""


@dataclass
class Demo:
    cli: CLI
    lab: Lab
    ep: LabEndpoints
    iso: BuildResult
    measured: dict[str, object] = field(default_factory=dict)

    def flags(self) -> list[str]:
        reg = f"http://{GUEST_REGISTRY}"
        return ["--driver=qemu", "--container-runtime=containerd", f"--iso-url=file://{self.iso.iso}",
                f"--iso-checksum=sha256:{self.iso.sha256}", "--memory=4g", "--cpus=2", "--no-guest-egress",
                f"--guest-forward={GUEST_REGISTRY}=127.0.0.1:{self.ep.registry.rsplit(':', 1)[1]}",
                f"--registry-mirror=registry.k8s.io={reg}", f"--registry-mirror=docker.io={reg}",
                f"--binary-mirror={self.ep.binary_mirror}", f"--gvisor-mirror={self.ep.gvisor_mirror}",
                "--offline", "--wait-timeout=20m"]

    @property
    def k(self) -> Kubectl:
        return Kubectl(self.cli)

    def node_kernel(self) -> str:
        return self.cli.ok("ssh", "--", "uname", "-r").strip()


@pytest.fixture(scope="module")
def demo(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    assert lab.endpoints is not None
    d = Demo(CLI(tmp_path_factory.mktemp("demo-home"), PROFILE), lab, lab.endpoints, build_iso(None))
    try:
        yield d
    finally:
        if d.cli.run("status").returncode != 7 and os.environ.get("MINISAND_KEEP") != "1":
            collect_journals(d.cli, tmp_path_factory.getbasetemp() / "seed-demo-journals.txt")
        d.cli.run("delete")
        out = Path(os.environ.get("MINISAND_BENCH_OUT", tmp_path_factory.getbasetemp()))
        out.mkdir(parents=True, exist_ok=True)
        (out / "seed-demo.json").write_text(json.dumps({**d.measured, **d.cli.timings}, indent=2))


def test_01_start_ends_with_a_ready_node(demo: Demo) -> None:
    demo.cli.ok("start", *demo.flags(), label="start (cold)")
    k = demo.k
    node = k.json("get", "node", PROFILE)
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
    pods = k.json("get", "pods", "-n", "kube-system")["items"]
    assert pods and all(p["status"]["phase"] == "Running" for p in pods), [
        (p["metadata"]["name"], p["status"]["phase"]) for p in pods]
    start = json.loads((demo.cli.home / "profiles" / PROFILE / "last-start.json").read_text())
    demo.measured["start_phases_cold"] = start


def test_02_nginx_on_runc_shows_the_node_kernel_and_answers(demo: Demo) -> None:
    k = demo.k
    k.apply(NGINX)
    k.wait("pod/nginx", "condition=Ready", 1200)
    kernel = k.run("exec", "nginx", "--", "uname", "-r").stdout.strip()
    assert kernel == demo.node_kernel()
    demo.measured["runc_uname"] = k.run("exec", "nginx", "--", "uname", "-a").stdout.strip()
    page = k.run("exec", "nginx", "--", "wget", "-qO-", "http://nginx.default.svc.cluster.local/").stdout
    assert "Welcome to nginx" in page


def test_03_wrong_sha512_is_rejected_and_nothing_is_installed(demo: Demo) -> None:
    runsc = f"/gvisor/releases/release/{demo.ep.gvisor_release}/x86_64/runsc.sha512"
    demo.lab.inject_fault(runsc, body=("0" * 128) + "  runsc\n", times=100)
    try:
        refused = demo.cli.run("addons", "enable", "gvisor")
    finally:
        demo.lab.clear_faults()
    assert refused.returncode == 41, refused.stderr  # CHECKSUM_MISMATCH
    assert "sha512" in refused.stderr
    assert demo.cli.run("ssh", "--", "test", "-e", "/var/lib/minisand/addons/gvisor").returncode == 1
    assert "runsc" not in demo.cli.ok("ssh", "--", "cat", "/etc/containerd/config.toml")
    assert "gvisor" not in demo.k.run("get", "runtimeclass", "-o", "name").stdout
    assert not list((demo.cli.home / "cache" / "gvisor").rglob("runsc"))
    assert json.loads(demo.cli.ok("addons", "list", "-o", "json"))["gvisor"]["status"] == "disabled"


def test_04_enable_gvisor(demo: Demo) -> None:
    t0 = time.monotonic()
    demo.cli.ok("addons", "enable", "gvisor", label="addons enable gvisor")
    demo.measured["enable_gvisor_seconds"] = round(time.monotonic() - t0, 1)
    demo.measured["probe"] = json.loads((demo.cli.home / "profiles" / PROFILE / "addon-gvisor.json").read_text())
    assert "runtimeclass.node.k8s.io/gvisor" in demo.k.run("get", "runtimeclass", "-o", "name").stdout
    t1 = time.monotonic()
    again = demo.cli.run("addons", "enable", "gvisor")
    assert again.returncode == 0 and "already enabled" in again.stderr
    demo.measured["enable_again_seconds"] = round(time.monotonic() - t1, 1)
    assert json.loads(demo.cli.ok("addons", "list", "-o", "json"))["gvisor"]["status"] == "enabled"


def test_05_the_same_pod_under_gvisor_shows_gvisors_kernel(demo: Demo) -> None:
    k = demo.k
    k.apply(UNTRUSTED.replace("NAME", "nginx-untrusted"))
    k.wait("pod/nginx-untrusted", "condition=Ready", 1200)
    kernel = k.run("exec", "nginx-untrusted", "--", "uname", "-r").stdout.strip()
    assert kernel and kernel != demo.node_kernel()
    demo.measured["gvisor_uname"] = k.run("exec", "nginx-untrusted", "--", "uname", "-a").stdout.strip()
    dmesg = k.run("exec", "nginx-untrusted", "--", "dmesg", check=False).stdout
    assert "gVisor" in dmesg or "Starting gVisor" in dmesg or kernel.startswith("4.4"), dmesg[:500]


def test_06_crictl_and_ctr_in_the_node(demo: Demo) -> None:
    pods = demo.cli.ok("ssh", "--", "sudo", "crictl", "pods")
    listed = json.loads(demo.cli.ok("ssh", "--", "sudo", "crictl", "pods", "-o", "json"))["items"]
    by_name = {p["metadata"]["name"]: p for p in listed if p["state"] == "SANDBOX_READY"}
    assert {"nginx", "nginx-untrusted"} <= set(by_name), pods
    assert by_name["nginx-untrusted"].get("runtimeHandler") == "runsc"
    images = demo.cli.ok("ssh", "--", "sudo", "ctr", "-n", "k8s.io", "images", "ls")
    assert "docker.io/library/nginx:latest" in images and "registry.k8s.io/kube-apiserver" in images
    demo.measured["crictl_pods"] = pods


def test_07_stop_start_keeps_the_cluster_and_gvisor(demo: Demo) -> None:
    uid = demo.k.json("get", "node", PROFILE)["metadata"]["uid"]
    demo.cli.ok("stop", label="stop")
    assert qemu_pids(f"minisand-{PROFILE}") == []
    stopped = demo.cli.run("addons", "enable", "gvisor")
    assert stopped.returncode == 30 and "not running" in stopped.stderr  # MACHINE_NOT_RUNNING, one line
    demo.cli.ok("start", *demo.flags(), label="start (restart)")
    k = demo.k
    assert k.json("get", "node", PROFILE)["metadata"]["uid"] == uid
    k.wait("pod/nginx", "condition=Ready", 1200)
    k.apply(UNTRUSTED.replace("NAME", "nginx-untrusted-2"))
    k.wait("pod/nginx-untrusted-2", "condition=Ready", 1200)
    assert k.run("exec", "nginx-untrusted-2", "--", "uname", "-r").stdout.strip() != demo.node_kernel()


def test_08_disable_refuses_while_pods_use_it_then_removes_everything(demo: Demo) -> None:
    refused = demo.cli.run("addons", "disable", "gvisor")
    assert refused.returncode == 70 and "nginx-untrusted" in refused.stderr
    demo.cli.ok("addons", "disable", "gvisor", "--force")
    k = demo.k
    wait_until(lambda: "nginx-untrusted" not in k.run("get", "pods", "-o", "name").stdout, 600, 5,
               "gvisor pods to go")
    assert "gvisor" not in k.run("get", "runtimeclass", "-o", "name").stdout
    assert "runsc" not in demo.cli.ok("ssh", "--", "cat", "/etc/containerd/config.toml")
    assert demo.cli.run("ssh", "--", "test", "-e", "/var/lib/minisand/addons/gvisor").returncode == 1
    assert demo.cli.run("ssh", "--", "test", "-e", "/etc/containerd/runsc.toml").returncode == 1
    assert k.json("get", "pod", "nginx")["status"]["phase"] == "Running"


def test_09_delete_removes_the_machine_and_the_context(demo: Demo) -> None:
    demo.cli.ok("delete", label="delete")
    assert qemu_pids(f"minisand-{PROFILE}") == []
    assert not (demo.cli.home / "machines" / PROFILE).exists()
    kubeconfig = Path(demo.cli.env()["KUBECONFIG"])
    assert not kubeconfig.exists() or PROFILE not in kubeconfig.read_text()
    assert subprocess.run(["pgrep", "-f", f"minisand-{PROFILE}"], capture_output=True).returncode == 1
