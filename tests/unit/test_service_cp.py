"""`minisand service` and `minisand cp`: the Service's node ports, the host-forward bookkeeping (HMP commands,
`info usernet` parsing, the record in the machine's state) against a fake qemu monitor — the monitor is qemu's
boundary — and cp's argument parsing; the CLI's one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from minisand.cluster import service
from minisand.cluster.cp import Location, parse_location, plan
from minisand.config.model import ClusterConfig, DriverOptions
from minisand.config.store import ProfileStore
from minisand.drivers.qemu import hostfwd
from minisand.errors import ExitCode, MinisandError
from minisand.paths import Home
from tests.unit.clihelp import one_line_error, run_cli

NODEPORT = {"spec": {"type": "NodePort", "ports": [
    {"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"},
    {"name": "dns", "port": 53, "nodePort": 30053, "protocol": "UDP"}]}}


def test_node_ports_of_a_nodeport_and_a_loadbalancer_service() -> None:
    ports = service.node_ports(NODEPORT, "default", "web")
    assert [(p.name, p.port, p.node_port, p.protocol) for p in ports] == [
        ("http", 80, 30080, "TCP"), ("dns", 53, 30053, "UDP")]
    lb = {"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "nodePort": 31443}]}}
    assert service.node_ports(lb, "default", "web")[0].node_port == 31443


@pytest.mark.parametrize("svc", [{"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}, {"spec": {}},
                                 {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}])
def test_a_service_without_node_ports_is_refused_with_a_hint(svc: dict[str, object]) -> None:
    with pytest.raises(MinisandError) as info:
        service.node_ports(svc, "shop", "web")
    assert info.value.code == ExitCode.BAD_INPUT and info.value.reason == "SVC_NO_NODE_PORT"
    assert "shop/web has no node port" in info.value.message and "NodePort" in info.value.hint


def test_urls_and_which_drivers_forward() -> None:
    http, dns = service.node_ports(NODEPORT, "default", "web")
    assert service.Endpoint(http, "127.0.0.1", 41000, service.scheme_for(http, False)).url == "http://127.0.0.1:41000"
    assert service.scheme_for(http, True) == "https" and service.scheme_for(dns, False) == "udp"
    assert service.uses_user_network(ClusterConfig(name="a", driver="qemu"))
    assert service.uses_user_network(ClusterConfig(name="a", driver="kvm2",
                                                   driver_options=DriverOptions(network="user")))
    assert not service.uses_user_network(ClusterConfig(name="a", driver="kvm2"))
    assert not service.uses_user_network(ClusterConfig(name="a", driver="none"))


# -- host forwards ------------------------------------------------------------------------------------------------
USERNET = """\
Hub -1 (net0):
  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ
  TCP[HOST_FORWARD]  13       127.0.0.1 40145       10.0.2.15    22     0     0
  TCP[HOST_FORWARD]  12       127.0.0.1 40146       10.0.2.15  8443     0     0
  TCP[ESTABLISHED]   30       10.0.2.15 33986   10.0.2.100  5000     0     0
  UDP[236 sec]       31       10.0.2.15 51234    10.0.2.3    53     0     0
"""


class FakeMonitor:
    """qemu's HMP as far as host forwards go: hostfwd_add / hostfwd_remove / info usernet, with qemu's replies."""

    def __init__(self, taken: set[int] | None = None) -> None:
        self.forwards: dict[tuple[str, int], int] = {}
        self.taken = taken or set()
        self.commands: list[str] = []

    def __call__(self, command: str) -> str:
        self.commands.append(command)
        words = command.split()
        if words[:2] == ["info", "usernet"]:
            rows = "".join(f"  {p.upper()}[HOST_FORWARD]  13  127.0.0.1 {hp}  10.0.2.15 {gp}  0 0\n"
                           for (p, hp), gp in self.forwards.items())
            return "Hub -1 (net0):\n  Protocol[State] FD ...\n" + rows
        proto, rest = words[2].split(":", 1)
        host_port = int(rest.split(":")[1].split("-")[0])
        if words[0] == "hostfwd_add":
            if host_port in self.taken or (proto, host_port) in self.forwards:
                return f"Could not set up host forwarding rule '{words[2]}'\r\n"
            self.forwards[(proto, host_port)] = int(rest.rsplit(":", 1)[1])
            return ""
        if self.forwards.pop((proto, host_port), None) is None:
            return f"host forwarding rule for {words[2]} not found\r\n"
        return f"host forwarding rule for {words[2]} removed\r\n"


def test_info_usernet_is_parsed_for_host_forwards_only() -> None:
    got = hostfwd.parse_usernet(USERNET)
    assert [(a.proto, a.host_ip, a.host_port, a.guest_ip, a.guest_port) for a in got] == [
        ("tcp", "127.0.0.1", 40145, "10.0.2.15", 22), ("tcp", "127.0.0.1", 40146, "10.0.2.15", 8443)]


def test_forward_commands_are_hmp_syntax_and_checked() -> None:
    f = hostfwd.Forward(41000, 30080)
    assert f.add_command("net0") == "hostfwd_add net0 tcp:127.0.0.1:41000-:30080"
    assert f.remove_command("mnet0") == "hostfwd_remove mnet0 tcp:127.0.0.1:41000"
    for bad in ({"host_port": 0, "guest_port": 1}, {"host_port": 1, "guest_port": 70000},
                {"host_port": 1, "guest_port": 1, "proto": "sctp"},
                {"host_port": 1, "guest_port": 1, "host_ip": "127.0.0.1,hostfwd=tcp::22-:22"}):
        with pytest.raises(ValueError):
            hostfwd.Forward(**bad)  # type: ignore[arg-type]


def test_ensure_adds_records_reuses_and_removes(tmp_path: Path) -> None:
    qemu = FakeMonitor(taken={41000})
    ports = iter([41000, 41001, 41002])
    fwd = hostfwd.ensure(tmp_path, qemu, "net0", 30080, owner="service default/web:80", pick_port=lambda: next(ports))
    assert (fwd.host_port, fwd.guest_port) == (41001, 30080)  # 41000 was taken: the next free port
    assert hostfwd.load(tmp_path) == [fwd] and (tmp_path / "forwards.json").stat().st_mode & 0o777 == 0o600
    again = hostfwd.ensure(tmp_path, qemu, "net0", 30080, pick_port=lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    assert again == fwd and sum(c.startswith("hostfwd_add") for c in qemu.commands) == 2
    hostfwd.remove(tmp_path, qemu, "net0", fwd)
    assert qemu.forwards == {} and hostfwd.load(tmp_path) == [] and not (tmp_path / "forwards.json").exists()


def test_a_recorded_forward_qemu_lost_is_added_again(tmp_path: Path) -> None:
    qemu = FakeMonitor()
    hostfwd.save(tmp_path, [hostfwd.Forward(41005, 30080)])  # recorded, but this qemu (restarted) never had it
    fwd = hostfwd.ensure(tmp_path, qemu, "net0", 30080, pick_port=lambda: 41006)
    assert fwd.host_port == 41006 and hostfwd.load(tmp_path) == [fwd] and qemu.forwards == {("tcp", 41006): 30080}


def test_ensure_gives_up_after_three_taken_ports(tmp_path: Path) -> None:
    qemu = FakeMonitor(taken={1, 2, 3})
    ports = iter([1, 2, 3])
    with pytest.raises(MinisandError) as info:
        hostfwd.ensure(tmp_path, qemu, "net0", 30080, pick_port=lambda: next(ports))
    assert info.value.reason == "HOSTFWD_FAILED" and "Could not set up" in info.value.message
    assert hostfwd.load(tmp_path) == []


def test_release_all_removes_every_forward_and_forgets_them(tmp_path: Path) -> None:
    qemu = FakeMonitor()
    for guest in (30080, 30081):
        hostfwd.ensure(tmp_path, qemu, "net0", guest, pick_port=lambda g=guest: g + 10000)  # type: ignore[misc]
    hostfwd.release_all(tmp_path, qemu, "net0")
    assert qemu.forwards == {} and not (tmp_path / "forwards.json").exists()

    def gone(command: str) -> str:
        raise OSError("QMP socket closed")

    hostfwd.save(tmp_path, [hostfwd.Forward(41000, 30080)])
    hostfwd.release_all(tmp_path, gone, "net0")  # a dead machine: forgotten all the same
    assert hostfwd.load(tmp_path) == []


def test_an_unreadable_record_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "forwards.json").write_text("{not json")
    assert hostfwd.load(tmp_path) == []
    (tmp_path / "forwards.json").write_text('[{"host_port": 1, "guest_port": 2}, {"bogus": 1}]')
    assert hostfwd.load(tmp_path) == [hostfwd.Forward(1, 2)]


# -- cp -----------------------------------------------------------------------------------------------------------
NODES = ["dev", "dev-m02"]


def test_locations() -> None:
    assert parse_location("dev:/etc/hosts", NODES) == Location("dev", "/etc/hosts")
    assert parse_location("dev-m02:/x", NODES) == Location("dev-m02", "/x")
    assert parse_location("other:/x", NODES) == Location(None, "other:/x")  # not a node: a host path
    assert parse_location("./a.txt", NODES) == Location(None, "./a.txt")


def test_plan(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("x")
    assert plan(str(f), "/tmp/a.txt", NODES) == (Location(None, str(f)), Location("dev", "/tmp/a.txt"))
    assert plan(str(f), "dev-m02:/tmp/", NODES)[1] == Location("dev-m02", "/tmp/")
    assert plan("dev:/etc/hosts", str(tmp_path), NODES) == (Location("dev", "/etc/hosts"),
                                                          Location(None, str(tmp_path)))
    assert plan("dev:/etc/hosts", "dev-m02:/tmp/h", NODES)[1] == Location("dev-m02", "/tmp/h")


@pytest.mark.parametrize(("src", "dst", "words"), [
    ("dev:etc/hosts", "/tmp/x", "not an absolute path"),
    ("missing.txt", "/tmp/x", "not a file on this host"),
    ("DIR", "/tmp/x", "a directory on this host"),
    ("FILE", "relative/x", "not an absolute path"),
])
def test_plan_refusals(tmp_path: Path, src: str, dst: str, words: str) -> None:
    f = tmp_path / "a.txt"
    f.write_text("x")
    src = src.replace("DIR", str(tmp_path)).replace("FILE", str(f)).replace("missing.txt", str(tmp_path / "m"))
    with pytest.raises(MinisandError) as info:
        plan(src, dst, NODES)
    assert info.value.code == ExitCode.BAD_INPUT and words in info.value.message


# -- CLI ----------------------------------------------------------------------------------------------------------
def test_cli_bad_input_is_one_line(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = Home(home)
    ProfileStore(h).save(ClusterConfig(name="minisand", driver="qemu"))
    ProfileStore(h).save(ClusterConfig(name="bare", driver="qemu", no_kubernetes=True))
    f = tmp_path / "a.txt"
    f.write_text("x")
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    for argv, code, words in (
        (["service", "web"], ExitCode.MACHINE_NOT_RUNNING, "not running"),
        (["service", "web", "-p", "bare"], ExitCode.BAD_INPUT, "without Kubernetes"),
        (["service", "web", "-p", "ghost"], ExitCode.PROFILE_NOT_FOUND, "ghost"),
        (["cp", str(f), "/tmp/a.txt"], ExitCode.MACHINE_NOT_RUNNING, "not running"),
        (["cp", str(tmp_path / "nope"), "/tmp/a.txt"], ExitCode.BAD_INPUT, "not a file"),
        (["cp", "minisand:/etc/hosts"], ExitCode.USAGE, "DST"),
    ):
        got, out, err = run_cli(argv, capsys)
        assert got == code, (argv, err)
        assert words in one_line_error(err)
        assert out == ""
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before
