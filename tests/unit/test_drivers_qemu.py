from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from minisand.drivers.qemu.cmdline import GuestForward, QemuSettings, build_argv
from minisand.drivers.qemu.qmp import QMP, QMPError
from minisand.errors import MinisandError
from tests.unit.fakes import qemu_settings
from tests.unit.golden import assert_golden


def _settings(tmp_path: Path, **kw: object) -> QemuSettings:
    return qemu_settings(tmp_path, **kw)


def test_command_line_golden() -> None:
    """The whole qemu command line (fixed paths, one argument per line), as kvm2's domain XML is golden."""
    root = Path("/var/minisand/machines/dev")
    argv = build_argv(_settings(root, iso=Path("/var/minisand/cache/iso/minisand-0.1.0.iso"),
                                kernel=Path("/var/minisand/cache/iso/boot/vmlinuz"),
                                initrd=Path("/var/minisand/cache/iso/boot/initrd.img")))
    assert_golden("qemu", "argv-tcg-user-restricted.txt", "\n".join(argv) + "\n")


def _opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_tcg_user_net_forwards_only_on_loopback(tmp_path: Path) -> None:
    argv = build_argv(_settings(tmp_path))
    assert _opt(argv, "-accel") == ["tcg,thread=multi,tb-size=256"]
    (netdev,) = _opt(argv, "-netdev")
    assert "restrict=on" in netdev
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in netdev and "hostfwd=tcp:127.0.0.1:40443-:8443" in netdev
    assert "guestfwd=tcp:10.0.2.100:5000-tcp:127.0.0.1:5001" in netdev
    assert f"name=opt/minisand/authorized_keys,file={tmp_path / 'k'}" in _opt(argv, "-fw_cfg")
    assert _opt(argv, "-kernel") == [str(tmp_path / "vmlinuz")]
    assert "-daemonize" in argv and _opt(argv, "-pidfile") == [str(tmp_path / "qemu.pid")]
    assert any(o.startswith(f"unix:{tmp_path / 'qmp.sock'}") for o in _opt(argv, "-qmp"))


def test_kvm_and_egress(tmp_path: Path) -> None:
    argv = build_argv(_settings(tmp_path, accel="kvm", restrict=False, kernel=None, initrd=None))
    assert _opt(argv, "-accel") == ["kvm"] and _opt(argv, "-cpu") == ["host"]
    assert "restrict=off" in _opt(argv, "-netdev")[0]
    assert "-kernel" not in argv and _opt(argv, "-boot") == ["order=d"]


@pytest.mark.parametrize("bad", ["10.0.2.100:5000", "x:1=y:2", "192.168.1.5:80=127.0.0.1:80",
                                 "10.0.2.100:0=127.0.0.1:80", "10.0.2.100:80=127.0.0.1:99999"])
def test_bad_guest_forwards(bad: str) -> None:
    with pytest.raises(MinisandError):
        GuestForward.parse(bad)


class _FakeQemuMonitor:
    """Stands in for qemu's QMP socket (a platform boundary): greeting, capabilities, one reply per command."""

    def __init__(self, path: Path, replies: dict[str, object]) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.replies = replies
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        f = conn.makefile("rwb")
        f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        f.flush()
        for line in f:
            cmd = json.loads(line)["execute"]
            self.seen.append(cmd)
            if cmd == "qmp_capabilities":
                f.write(b'{"return": {}}\n')
            elif cmd in self.replies:
                f.write(b'{"event": "SOMETHING"}\n')
                f.write(json.dumps({"return": self.replies[cmd]}).encode() + b"\n")
            else:
                f.write(json.dumps({"error": {"class": "CommandNotFound", "desc": f"no {cmd}"}}).encode() + b"\n")
            f.flush()
        conn.close()


def test_qmp_client(tmp_path: Path) -> None:
    path = tmp_path / "q.sock"
    srv = _FakeQemuMonitor(path, {"query-status": {"status": "running", "running": True}})
    with QMP(path) as q:
        assert q.execute("query-status")["status"] == "running"
        with pytest.raises(QMPError, match="no bogus"):
            q.execute("bogus")
    assert srv.seen[:2] == ["qmp_capabilities", "query-status"]


def test_qmp_missing_socket(tmp_path: Path) -> None:
    with pytest.raises(QMPError):
        QMP(tmp_path / "absent.sock")
