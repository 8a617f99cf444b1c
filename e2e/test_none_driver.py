"""e2e, none driver: the whole cluster (containerd, kubelet, control plane, CNI bridge) on this host inside a
network namespace the test created, fed by the offline lab relayed into that namespace; then everything stopped
and removed. Also the cn mirror preset proven from the registry log, and the download/kubeadm faults."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.conftest import Kubectl, collect_journals, wait_until
from e2e.lab import Lab
from e2e.lab.endpoints import LabEndpoints
from e2e.netenv import host_leftovers, host_state_created_here, node_namespace
from tests.integration.helpers.cli import CLI
from tests.integration.helpers.netns import NetNS

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(3600)]

CLUSTER_PROCS = ("containerd", "kubelet", "etcd", "kube-apiserver", "kube-controller", "kube-scheduler",
                 "kube-proxy", "coredns", "containerd-shim")


def _pids(names: tuple[str, ...]) -> list[tuple[int, str]]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            comm = (d / "comm").read_text().strip()
            if (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie: gone, but this host's PID 1 does not reap
        except (OSError, IndexError):
            continue
        if any(comm.startswith(n) for n in names):
            out.append((int(d.name), comm))
    return out


@dataclass
class NoneEnv:
    ns: NetNS
    lab: Lab
    ep: LabEndpoints  # as seen inside the namespace
    home: Path

    def cli(self, profile: str, home: Path | None = None) -> CLI:
        return CLI(home or self.home, profile, prefix=self.ns.argv())

    def flags(self, cn: bool = False) -> list[str]:
        reg = f"http://{self.ep.registry}"
        flags = ["--driver=none", f"--binary-mirror={self.ep.binary_mirror}",
                 f"--gvisor-mirror={self.ep.gvisor_mirror}", "--offline", f"--registry-mirror=docker.io={reg}",
                 "--wait=all", "--wait-timeout=15m"]
        if cn:
            return [*flags, "--image-mirror-country=cn", f"--registry-mirror=registry.cn-hangzhou.aliyuncs.com={reg}"]
        return [*flags, f"--registry-mirror=registry.k8s.io={reg}"]


@pytest.fixture(scope="module")
def none_env(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NoneEnv]:
    if shutil.which("containerd") is None:
        pytest.fail("containerd is not installed on this host: run `python -m e2e.hosttools install`")
    leftovers = host_leftovers()
    if _pids(CLUSTER_PROCS) or leftovers:
        pytest.fail(f"this host already runs cluster processes or has cluster state: {_pids(CLUSTER_PROCS)} "
                    f"{leftovers}; the none-driver test needs a clean host")
    netns_before = set(Path("/run/netns").iterdir()) if Path("/run/netns").exists() else set()
    with host_state_created_here(), node_namespace("none") as ns:
        ep = lab.expose_in_netns(ns.path)
        env = NoneEnv(ns, lab, ep, tmp_path_factory.mktemp("none-home"))
        try:
            yield env
        finally:
            for profile in ("none-e2e", "none-cn"):
                env.cli(profile).run("delete")
            env.cli("none-faults", env.home / "faults").run("delete")
            env.cli("none-fail", env.home / "fail").run("delete")
            for pid, _comm in _pids(CLUSTER_PROCS):
                os.kill(pid, signal.SIGKILL)
            for n in set(Path("/run/netns").iterdir()) - netns_before:
                if n.name.startswith("cni-"):
                    subprocess.run(["ip", "netns", "delete", n.name], check=False)


@pytest.fixture(scope="module")
def cluster(none_env: NoneEnv) -> Iterator[CLI]:
    cli = none_env.cli("none-e2e")
    yield cli


WEB = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - {name: nginx, image: nginx, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
"""


def _fetch_from_inside(k: Kubectl, url: str) -> str:
    """wget from a pod: proves the pod network, cluster DNS and the Service (kube-proxy) all work."""
    name = f"fetch-{int(time.time() * 1000) % 100000}"
    k.run("run", name, "--image=docker.io/library/busybox:1.35.0", "--restart=Never", "--command", "--",
          "wget", "-qO-", url)  # (Debian's static busybox 1.35 wget crashes with -T)
    wait_until(lambda: k.json("get", "pod", name)["status"]["phase"] in ("Succeeded", "Failed"),
               300, what=f"pod {name} to finish")
    phase = k.json("get", "pod", name)["status"]["phase"]
    out = k.run("logs", name).stdout
    if phase != "Succeeded":
        out += f"\n[{phase}] " + k.run("describe", "pod", name).stdout[-1500:]
    k.run("delete", "pod", name, "--grace-period=0", "--force", check=False)
    return out


def test_start_ends_ready(none_env: NoneEnv, cluster: CLI, tmp_path: Path) -> None:
    try:
        cluster.ok("start", *none_env.flags(), label="start (cold)")
    except AssertionError:
        collect_journals(cluster, tmp_path / "journals.txt")
        raise
    k = Kubectl(cluster)
    nodes = k.json("get", "nodes")["items"]
    assert len(nodes) == 1
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}
    assert ready["Ready"] == "True"
    pods = k.json("get", "pods", "-n", "kube-system")["items"]
    phases = {p["metadata"]["name"]: p["status"]["phase"] for p in pods}
    assert phases and all(ph == "Running" for ph in phases.values()), phases
    for component in ("etcd-", "kube-apiserver-", "kube-controller-manager-", "kube-scheduler-", "kube-proxy-",
                      "coredns-"):
        assert any(name.startswith(component) for name in phases), (component, phases)
    status = json.loads(cluster.run("status", "-o", "json").stdout)
    assert status == {**status, "Host": "Running", "Kubelet": "Running", "APIServer": "Running",
                      "Kubeconfig": "Configured"}


def test_web_pod_answers_inside_the_cluster(cluster: CLI) -> None:
    k = Kubectl(cluster)
    k.apply(WEB)
    k.wait("pod/web", "condition=Ready", 600)
    page = _fetch_from_inside(k, "http://web.default.svc.cluster.local/")
    assert "nginx" in page.lower() or "minisand" in page.lower(), page


def test_stop_then_start_brings_the_same_cluster_back(none_env: NoneEnv, cluster: CLI) -> None:
    k = Kubectl(cluster)
    uid = k.json("get", "node", "none-e2e")["metadata"]["uid"]
    cluster.ok("stop", label="stop")
    assert [p for p in _pids(("kubelet", "kube-apiserver", "etcd")) if p] == []
    assert cluster.run("status").returncode & 2
    cluster.ok("start", *none_env.flags(), label="start (restart)")
    assert k.json("get", "node", "none-e2e")["metadata"]["uid"] == uid
    k.wait("pod/web", "condition=Ready", 600)
    assert "nginx" in _fetch_from_inside(k, "http://web/").lower()


def test_delete_removes_everything(none_env: NoneEnv, cluster: CLI) -> None:
    cluster.ok("delete", label="delete")
    wait_until(lambda: not _pids(CLUSTER_PROCS), 60, 1, "cluster processes to exit")
    kubeconfig = Path(cluster.env()["KUBECONFIG"])
    assert not kubeconfig.exists() or "none-e2e" not in kubeconfig.read_text()
    for d in ("/etc/kubernetes/manifests", "/var/lib/etcd/member", "/var/lib/minisand"):
        assert not Path(d).exists() or not any(Path(d).iterdir()), d
    assert not (none_env.home / "profiles" / "none-e2e").exists()
    assert subprocess.run(none_env.ns.argv("ip", "link", "show", "cni0"), capture_output=True).returncode != 0
    assert not [n for n in Path("/run/netns").iterdir() if n.name.startswith("cni-")], "pod netns left behind"


CN_REPOSITORY = "google_containers"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd", "coredns",
                 "pause")


def test_cn_preset_pulls_every_control_plane_image_from_the_mirror(none_env: NoneEnv) -> None:
    """--image-mirror-country cn with the lab standing in for registry.cn-hangzhou.aliyuncs.com: kubeadm's
    imageRepository is Aliyun's google_containers, and the registry's log shows every control-plane image pulled
    through the mirror for that upstream (?ns=registry.cn-hangzhou.aliyuncs.com) and none for registry.k8s.io."""
    cli = none_env.cli("none-cn")
    before = len(none_env.lab.registry_requests())
    cli.ok("start", *none_env.flags(cn=True), label="start cn")
    records = none_env.lab.registry_requests()[before:]
    pulled = {r.repository for r in records if r.ns == "registry.cn-hangzhou.aliyuncs.com" and r.status == 200
              and r.kind == "manifests"}
    assert {f"{CN_REPOSITORY}/{name}" for name in CONTROL_PLANE} <= pulled, pulled
    assert not [r for r in records if r.ns == "registry.k8s.io"], "a control-plane image bypassed the cn mirror"
    k = Kubectl(cli)
    kubeadm_cfg = k.json("get", "cm", "-n", "kube-system", "kubeadm-config")["data"]["ClusterConfiguration"]
    assert "imageRepository: registry.cn-hangzhou.aliyuncs.com/google_containers" in kubeadm_cfg
    images = {c["image"] for p in k.json("get", "pods", "-n", "kube-system")["items"] for c in p["spec"]["containers"]}
    assert images and all(i.startswith("registry.cn-hangzhou.aliyuncs.com/google_containers/") for i in images), images
    cli.ok("delete")


def test_download_faults_and_a_killed_start(none_env: NoneEnv) -> None:
    home = none_env.home / "faults"
    cli = none_env.cli("none-faults", home)
    lab = none_env.lab
    kubelet = f"/release/{none_env.ep.kubernetes_version}/bin/linux/amd64/kubelet"
    cache = home / "cache" / "linux" / "amd64" / none_env.ep.kubernetes_version

    # a wrong .sha256: the binary is rejected and nothing lands in the cache
    lab.inject_fault(f"{kubelet}.sha256", body="0" * 64, times=10)
    try:
        refused = cli.run("start", *none_env.flags())
    finally:
        lab.clear_faults()
    assert refused.returncode == 41, refused.stderr  # CHECKSUM_MISMATCH
    assert "sha256 mismatch" in refused.stderr and len(refused.stderr.strip().splitlines()[-1]) < 2000
    assert not (cache / "kubelet").exists() and not list(cache.glob("*.part"))

    # a download cut halfway resumes (HTTP Range) and the start goes on; minisand is then killed during kubeadm
    lab.inject_fault(kubelet, cut_after=8 << 20, times=1)
    log = home / "logs" / "none-faults.log"
    start = subprocess.Popen([*cli.prefix, str(_minisand()), "start", *none_env.flags()], env=cli.env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        marker = "--skip-phases=preflight,certs,kubeconfig,kubelet-start"
        wait_until(lambda: log.exists() and marker in log.read_text(), 900, 0.2, "minisand to reach kubeadm init")
        time.sleep(3)
        start.send_signal(signal.SIGKILL)
        start.wait(30)
    finally:
        if start.poll() is None:
            start.kill()
        lab.clear_faults()
    kubelet_gets = [r for r in lab.binary_requests() if r.path == kubelet]
    assert any(r.fault for r in kubelet_gets), "the cut was not served"
    assert any(r.range for r in kubelet_gets), "the cut download was not resumed with a Range request"

    cli.ok("start", *none_env.flags(), label="start after kill -9")
    k = Kubectl(cli)
    ready = {c["type"]: c["status"] for c in k.json("get", "node", "none-faults")["status"]["conditions"]}
    assert ready["Ready"] == "True"
    cli.ok("delete")


_FAILING_CTR = """#!/bin/sh
# stands in for ctr: fails the image listing and the preload import (after containerd was started, whatever an
# earlier test left in its image store), passes everything else to the real ctr
case " $* " in *" images "*) date +%s.%N >> {stamp}; echo "ctr: injected failure" >&2; exit 7;; esac
exec {real} "$@"
"""


def _pipe_holders(*fds: int) -> list[int]:
    """PIDs other than this one with an open descriptor on the same pipes as fds."""
    targets = {os.readlink(f"/proc/self/fd/{fd}") for fd in fds}
    holders = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            links = {os.readlink(f) for f in (d / "fd").iterdir()}
        except OSError:
            continue
        if links & targets:
            holders.append(int(d.name))
    return holders


def test_a_tool_failing_partway_ends_the_start_at_once(none_env: NoneEnv, tmp_path: Path) -> None:
    """A start that fails after it started host daemons (containerd) exits at once with its one-line error, leaves
    no daemon running and no process holding the caller's pipes (a script piping `minisand start` gets EOF)."""
    real = shutil.which("ctr")
    assert real
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stamp = tmp_path / "failed-at"
    (bindir / "ctr").write_text(_FAILING_CTR.format(real=real, stamp=stamp))
    (bindir / "ctr").chmod(0o755)
    cli = none_env.cli("none-fail", none_env.home / "fail")
    env = {**cli.env(), "PATH": f"{bindir}:{os.environ['PATH']}"}
    proc = subprocess.Popen([*cli.prefix, str(_minisand()), "start", *none_env.flags()], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        code = proc.wait(timeout=900)
        t_exit = time.monotonic()
        exited_at = time.time()
        holders = _pipe_holders(proc.stdout.fileno(), proc.stderr.fileno())
        _out, err = proc.communicate(timeout=10)  # EOF right away: nothing else holds the pipes
        eof_after = time.monotonic() - t_exit
    finally:
        if proc.poll() is None:
            proc.kill()
    assert holders == [], f"processes still hold minisand's stdout/stderr: {holders}"
    assert eof_after < 5
    assert stamp.exists(), "the injected failure never ran"
    exit_after_failure = exited_at - float(stamp.read_text().split()[0])
    assert exit_after_failure < 20, f"minisand took {exit_after_failure:.1f}s to exit after the tool failed"
    assert code == 50, err  # GUEST_ERROR: the command that failed on the node
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith("minisand: ") and "injected failure" in last and "hint:" in last, err
    assert _pids(("containerd", "kubelet")) == [], "the failed start left host daemons running"
    cli.ok("delete")
    assert not (none_env.home / "fail" / "profiles" / "none-fail").exists()


def _minisand() -> Path:
    from tests.integration.helpers.cli import VENV_BIN

    return VENV_BIN / "minisand"
