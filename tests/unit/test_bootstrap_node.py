"""What minisand.bootstrap puts on a node, and how it drives kubeadm there: the kubelet's systemd unit, the bridge
CNI config per node index, /etc/hosts (golden files: tests/unit/golden/{kubelet,cni,etc-hosts}/), the files a node
gets before kubeadm runs, and kubeadm init/join as phases through the node's runner and service manager. The node
is the shared FakeRunner and FakeServices (tests/unit/fakes.py)."""

from __future__ import annotations

import configparser
import ipaddress
import json
from pathlib import PurePosixPath

import pytest

from minisand.bootstrap import cni, kubeadm
from minisand.cluster import kubernetes
from minisand.config.model import ClusterConfig
from minisand.errors import ExitCode, MinisandError
from minisand.guest import BIN_DIR
from minisand.nodefacts import NodeFacts
from tests.unit.fakes import GUEST_FACTS, FakeRunner, FakeServices, Reply, fake_node
from tests.unit.golden import assert_golden

VERSION = "v1.36.4"
KUBEADM = str(BIN_DIR / VERSION / "kubeadm")
UNIT = "/etc/systemd/system/kubelet.service"
HOST_FACTS = NodeFacts(systemd=False, cgroup_v2=False, cap_sys_resource=False, containerd_version="",
                       ip="10.200.0.2", kernel="6.18.44")


# -- the kubelet unit ---------------------------------------------------------------------------------------
def test_kubelet_unit_golden() -> None:
    assert_golden("kubelet", "kubelet-v1.36.4-host.service", kubeadm.render_kubelet_unit(VERSION, vm=False))
    text = kubeadm.render_kubelet_unit(VERSION)
    assert_golden("kubelet", "kubelet-v1.36.4.service", text)
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    service = unit["Service"]
    # upstream's kubelet.service + 10-kubeadm.conf, merged: kubeadm's flags file and the two Environment= lines
    assert service["ExecStart"] == (f"/var/lib/minisand/bin/{VERSION}/kubelet $KUBELET_KUBECONFIG_ARGS "
                                    "$KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS")
    assert service["EnvironmentFile"] == "-/var/lib/kubelet/kubeadm-flags.env"
    assert (service["Restart"], service["StartLimitInterval"]) == ("always", "0")
    assert "containerd.service" in unit["Unit"]["After"] and unit["Install"]["WantedBy"] == "multi-user.target"


def test_kubelet_unit_follows_the_version() -> None:
    assert "/bin/v1.35.8/kubelet " in kubeadm.render_kubelet_unit("v1.35.8")


# -- the bridge CNI -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("index", "cidr"), [(0, "10.244.0.0/24"), (1, "10.244.1.0/24"), (15, "10.244.15.0/24")])
def test_node_pod_cidr_is_the_indexth_24(index: int, cidr: str) -> None:
    assert cni.node_pod_cidr(kubeadm.POD_SUBNET, index) == cidr


def test_node_pod_cidrs_are_distinct_and_inside_the_pod_subnet() -> None:
    cidrs = [ipaddress.ip_network(cni.node_pod_cidr(kubeadm.POD_SUBNET, i)) for i in range(16)]
    assert len(set(cidrs)) == 16
    assert all(c.subnet_of(ipaddress.ip_network(kubeadm.POD_SUBNET)) for c in cidrs)  # type: ignore[arg-type]


@pytest.mark.parametrize("index", [0, 1])
def test_bridge_conflist_golden(index: int) -> None:
    text = cni.render_bridge(cni.node_pod_cidr(kubeadm.POD_SUBNET, index))
    assert_golden("cni", f"bridge-node{index}.conflist", text)
    conf = json.loads(text)
    assert conf["cniVersion"] == "1.0.0" and [p["type"] for p in conf["plugins"]] == ["bridge", "portmap"]
    bridge = conf["plugins"][0]
    assert bridge["ipam"] == {"type": "host-local", "ranges": [[{"subnet": f"10.244.{index}.0/24"}]]}
    assert bridge["isDefaultGateway"] and bridge["ipMasq"] and bridge["hairpinMode"]
    assert conf["plugins"][1]["capabilities"] == {"portMappings": True}


def test_bridge_conflist_refuses_what_is_not_a_cidr() -> None:
    with pytest.raises(ValueError):
        cni.render_bridge('10.244.0.0/24"}]], "x": [[{"subnet": "1.2.3.0/24')


# -- /etc/hosts ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "node", "node_ip", "cp_ip"), [
    ("control-plane", "dev", "10.0.2.15", "10.0.2.15"),
    ("worker", "dev-m02", "192.168.39.12", "192.168.39.11"),
])
def test_etc_hosts_golden(name: str, node: str, node_ip: str, cp_ip: str) -> None:
    text = kubeadm.render_hosts(node, node_ip, cp_ip)
    assert_golden("etc-hosts", f"{name}.txt", text)
    entries = {fields[1]: fields[0] for fields in (ln.split() for ln in text.splitlines())}
    assert entries == {"localhost": "::1", node: node_ip, kubeadm.CONTROL_PLANE_HOST: cp_ip}
    assert text.startswith("127.0.0.1\tlocalhost\n")


# -- the files a node gets before kubeadm -------------------------------------------------------------------
def _prepare(driver: str, machine: str, facts: NodeFacts = GUEST_FACTS, runner: FakeRunner | None = None
             ) -> tuple[FakeRunner, FakeServices]:
    runner = runner or FakeRunner()
    runner.on("sh", "-c", kubernetes._KERNEL)
    services = FakeServices()
    cfg = ClusterConfig(name="dev", driver=driver, nodes=2)
    node = fake_node(machine, driver, runner=runner, services=services, facts=facts)
    kubernetes._prepare_node(cfg, node, "10.0.2.99")
    return runner, services


def test_a_vm_worker_gets_hosts_the_unit_and_its_own_pod_cidr() -> None:
    runner, services = _prepare("kvm2", "dev-m02")
    assert runner.text("/etc/hosts") == kubeadm.render_hosts("dev-m02", "10.0.2.15", "10.0.2.99")
    assert runner.text(UNIT) == kubeadm.render_kubelet_unit(VERSION)
    assert runner.text(str(cni.CONFLIST)) == cni.render_bridge("10.244.1.0/24")  # node index 1
    assert runner.text("/var/lib/minisand/kubernetes-version") == f"{VERSION}\n"
    assert services.calls == [("daemon-reload", "")]
    kernel = [c for c in runner.ran("sh") if c[2] == kubernetes._KERNEL]
    assert len(kernel) == 1 and "modprobe -a overlay br_netfilter" in kernel[0][2]
    assert "net.bridge.bridge-nf-call-iptables=1" in kernel[0][2]


def test_a_second_prepare_rewrites_nothing_it_does_not_have_to() -> None:
    runner, _ = _prepare("qemu", "dev")
    before = list(runner.writes)
    runner2, services = _prepare("qemu", "dev", runner=runner)
    new = runner2.writes[len(before):]
    assert new == []  # every file is read back first and none changed
    assert services.calls == []  # no daemon-reload without a changed unit


def test_a_host_node_keeps_its_etc_hosts_and_gets_no_unit_without_systemd() -> None:
    runner, services = _prepare("none", "dev", HOST_FACTS)
    assert "/etc/hosts" not in runner.files and UNIT not in runner.files
    assert runner.text(str(cni.CONFLIST)) == cni.render_bridge("10.244.0.0/24")
    assert services.calls == []


# -- kubeadm on the node ------------------------------------------------------------------------------------
def _kubeadm_node(reply: str | int = "") -> tuple[FakeRunner, FakeServices, kubeadm.Kubeadm]:
    runner = FakeRunner().on(KUBEADM, reply=reply)
    services = FakeServices()
    return runner, services, kubeadm.Kubeadm(runner, services, VERSION)


LIVEZ = [f"{BIN_DIR / VERSION}/kubectl", "--kubeconfig", "/etc/kubernetes/super-admin.conf", "--request-timeout=30s",
         "get", "--raw", "/livez?exclude=etcd"]


def test_init_runs_the_phases_starts_the_kubelet_then_the_api_server_alone_then_the_rest() -> None:
    runner, services, k = _kubeadm_node()
    runner.on(LIVEZ[0], reply="ok")
    k.init("kind: InitConfiguration\n")
    cfg = "--config=/var/tmp/minisand/kubeadm.yaml"
    ignore = "--ignore-preflight-errors=" + ",".join(kubeadm.IGNORED_PREFLIGHT)
    assert [c[1:] if c[0] == KUBEADM else c for c in runner.commands if c[0] in (KUBEADM, LIVEZ[0])] == [
        ["init", "phase", "preflight", cfg, ignore],
        ["init", "phase", "certs", "all", cfg],
        ["init", "phase", "kubeconfig", "all", cfg],
        ["init", "phase", "kubelet-start", cfg],
        ["init", "phase", "etcd", "local", cfg],
        ["init", "phase", "control-plane", "apiserver", cfg],
        LIVEZ,  # the API server answers before the components that retry against it start
        ["init", "phase", "control-plane", "controller-manager", cfg],
        ["init", "phase", "control-plane", "scheduler", cfg],
        ["init", cfg, ignore, "--skip-phases=preflight,certs,kubeconfig,kubelet-start,etcd,control-plane",
         "--skip-token-print"],
    ]
    assert services.calls == [("daemon-reload", ""), ("enable", "kubelet"), ("restart", "kubelet")]
    assert runner.text("/var/tmp/minisand/kubeadm.yaml") == "kind: InitConfiguration\n"
    assert runner.modes["/var/tmp/minisand/kubeadm.yaml"] == 0o600  # it holds the bootstrap token
    assert runner.text(str(kubeadm.INIT_DONE)) == f"{VERSION}\n"
    assert runner.writes[-1] == str(kubeadm.INIT_DONE)  # written last: only a finished init counts
    call = runner.calls[0]
    assert call.sudo and call.env is not None and call.env["PATH"].startswith(f"{BIN_DIR / VERSION}:")


def test_wait_apiserver_polls_until_livez_answers_and_gives_up_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubeadm.time, "sleep", lambda _s: None)
    runner, _, k = _kubeadm_node()
    answers = iter([1, 1, 0])
    runner.on(LIVEZ[0], reply=lambda _argv: next(answers))
    k.wait_apiserver()
    assert runner.commands.count(LIVEZ) == 3
    clock = iter(range(0, 10000, 100))
    monkeypatch.setattr(kubeadm.time, "monotonic", lambda: float(next(clock)))
    never, _, k2 = _kubeadm_node()
    never.on(LIVEZ[0], reply=1)
    k2.wait_apiserver(timeout=1000)  # bounded; kubeadm's own wait then says what is wrong
    assert 5 <= never.commands.count(LIVEZ) <= 11


def test_a_failed_phase_is_a_kubernetes_error_and_init_is_not_marked_done() -> None:
    runner = FakeRunner().on(KUBEADM)
    runner.on(KUBEADM, "init", "phase", "certs", reply=Reply(1, err="line 1\nline 2\n[certs] no space left"))
    with pytest.raises(MinisandError) as exc:
        kubeadm.Kubeadm(runner, FakeServices(), VERSION).init("x")
    assert exc.value.code == ExitCode.KUBERNETES_ERROR
    assert exc.value.message.startswith("kubeadm init phase failed: ") and "no space left" in exc.value.message
    assert str(kubeadm.INIT_DONE) not in runner.files


def test_join_writes_the_config_and_marks_done() -> None:
    runner, services, k = _kubeadm_node()
    k.join("kind: JoinConfiguration\n")
    ignore = "--ignore-preflight-errors=" + ",".join(kubeadm.IGNORED_PREFLIGHT)
    assert runner.ran(KUBEADM) == [[KUBEADM, "join", "--config=/var/tmp/minisand/kubeadm.yaml", ignore]]
    assert runner.modes["/var/tmp/minisand/kubeadm.yaml"] == 0o600
    assert runner.text(str(kubeadm.JOIN_DONE)) == f"{VERSION}\n" and services.calls == []


def test_join_token_reads_kubeadms_join_command() -> None:
    printed = ("kubeadm join control-plane.minisand.internal:8443 --token abcdef.0123456789abcdef "
               f"--discovery-token-ca-cert-hash sha256:{'b' * 64} \n")
    runner, _, k = _kubeadm_node(printed)
    assert k.join_token() == ("abcdef.0123456789abcdef", f"sha256:{'b' * 64}")
    assert runner.ran(KUBEADM)[0][1:] == ["token", "create", "--ttl", "1h", "--print-join-command"]
    _, _, garbled = _kubeadm_node("W1123 something went wrong\n")
    with pytest.raises(MinisandError) as exc:
        garbled.join_token()
    assert exc.value.code == ExitCode.KUBERNETES_ERROR and "no join command" in exc.value.message


def test_reset_stops_a_stale_kubeadm_first_tolerates_failure_and_removes_etcds_data() -> None:
    runner, _, k = _kubeadm_node(reply=1)
    runner.on("pkill", reply=1)  # nothing to stop
    runner.files["/var/lib/etcd/member/snap/db"] = b"old cluster"
    k.reset()
    assert runner.commands == [["pkill", "-TERM", "-x", "kubeadm"],
                               [KUBEADM, "reset", "--force", "--cri-socket",
                                "unix:///run/containerd/containerd.sock"],
                               ["rm", "-rf", "--", "/var/lib/etcd"]]
    assert not any(f.startswith("/var/lib/etcd") for f in runner.files)


def test_a_stale_kubeadm_is_waited_for_and_killed_when_it_ignores_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubeadm.time, "sleep", lambda _s: None)
    runner, _, k = _kubeadm_node()
    runner.on("pkill", reply=0)  # one was running
    alive = iter([0, 0, 1])  # pgrep finds it twice, then it is gone
    runner.on("pgrep", reply=lambda _argv: next(alive))
    k.stop_stale_kubeadm()
    assert runner.commands == [["pkill", "-TERM", "-x", "kubeadm"], *[["pgrep", "-x", "kubeadm"]] * 3]

    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(kubeadm.time, "monotonic", lambda: float(next(clock)))
    stubborn, _, k2 = _kubeadm_node()
    stubborn.on("pkill", reply=0).on("pgrep", reply=0)
    k2.stop_stale_kubeadm(grace=15)
    assert stubborn.commands[-1] == ["pkill", "-KILL", "-x", "kubeadm"]
    assert stubborn.commands.count(["pgrep", "-x", "kubeadm"]) < 5


def test_exists_asks_the_node() -> None:
    runner = FakeRunner({"/etc/kubernetes/admin.conf": "x"})
    k = kubeadm.Kubeadm(runner, FakeServices(), VERSION)
    assert k.exists(PurePosixPath("/etc/kubernetes/admin.conf"))
    assert not k.exists(kubeadm.INIT_DONE)
