"""The ssh driver (an existing machine, against the in-process sshd double) and the none driver's health,
preflight and state — the parts that need neither a VM nor root."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import paramiko
import pytest

from minisand import hosttools
from minisand.config.model import DriverOptions
from minisand.drivers.base import MachineSpec, MachineState
from minisand.drivers.none import driver as none_driver
from minisand.drivers.ssh.driver import SSHDriver
from minisand.errors import ExitCode, MinisandError
from minisand.keys import ensure_client_key
from tests.unit.sshdouble import ssh_double


def _spec(tmp_path: Path, options: DriverOptions) -> MachineSpec:
    return MachineSpec(machine="m1", profile="p1", machine_dir=tmp_path / "machines" / "m1",
                       cache_dir=tmp_path / "cache", cpus=2, memory_mb=2048, disk_mb=20480, hostname="m1",
                       ssh_pubkey="", ssh_key_path=tmp_path / "unused", options=options)


# -- ssh ------------------------------------------------------------------------------------------------------
def test_ssh_driver_pins_on_first_contact_then_enforces(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    pub = ensure_client_key(key, "unit")
    with ssh_double(pub) as sshd:
        opts = DriverOptions(ssh_ip="127.0.0.1", ssh_port=sshd.port, ssh_user="minisand", ssh_key=str(key))
        drv = SSHDriver(_spec(tmp_path, opts))
        assert drv.state() == MachineState.NONEXISTENT
        drv.start()
        rec = drv.record()
        assert rec is not None and rec.host_key == sshd.host_key_line
        assert drv.state() == MachineState.RUNNING
        drv.stop()
        assert ["systemctl", "stop", "kubelet"] in sshd.seen.commands
        assert drv.state() == MachineState.STOPPED
        drv.start()
        assert drv.state() == MachineState.RUNNING
    # the same address and port, another host key: refused, never re-pinned
    with ssh_double(pub, host_key=paramiko.ECDSAKey.generate()) as impostor:
        opts = dataclasses.replace(opts, ssh_port=impostor.port)
        drv = SSHDriver(_spec(tmp_path, opts))
        with pytest.raises(MinisandError) as exc:
            drv.runner().run(["true"])
        assert exc.value.code == ExitCode.HOST_KEY_MISMATCH
        assert impostor.seen.commands == []
    rec = drv.record()
    assert rec is not None and rec.host_key == sshd.host_key_line


@pytest.mark.parametrize("options", [DriverOptions(), DriverOptions(ssh_ip="127.0.0.1"),
                                     DriverOptions(ssh_ip="127.0.0.1", ssh_key="/nonexistent/key")])
def test_ssh_driver_needs_an_address_and_a_key(tmp_path: Path, options: DriverOptions) -> None:
    with pytest.raises(MinisandError) as exc:
        SSHDriver(_spec(tmp_path, options)).preflight()
    assert exc.value.code == ExitCode.BAD_INPUT and exc.value.hint
    assert not (tmp_path / "machines").exists()


# -- none -----------------------------------------------------------------------------------------------------
def test_none_driver_health_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(none_driver.platform, "system", lambda: "Linux")
    monkeypatch.setattr(none_driver.os, "geteuid", lambda: 1000)
    h = none_driver.health()
    assert not h.ok and "root" in h.reason and "sudo" in h.fix
    monkeypatch.setattr(none_driver.os, "geteuid", lambda: 0)
    monkeypatch.setattr(hosttools, "present", lambda r: r.name not in ("crictl", "modprobe"))
    h = none_driver.health()
    assert not h.ok and h.reason == "missing on this host: crictl, modprobe"
    assert "apt-get install kmod" in h.fix and "scripts/setup" in h.fix
    monkeypatch.setattr(hosttools, "present", lambda r: True)
    assert none_driver.health().ok
    monkeypatch.setattr(none_driver.platform, "system", lambda: "Darwin")
    assert "only on Linux" in none_driver.health().reason


def test_none_driver_preflight_and_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drv = none_driver.NoneDriver(_spec(tmp_path, DriverOptions()))
    monkeypatch.setattr(none_driver.os, "geteuid", lambda: 1000)
    with pytest.raises(MinisandError) as exc:
        drv.start()
    assert exc.value.code == ExitCode.DRIVER_UNAVAILABLE
    assert drv.record() is None  # nothing written

    monkeypatch.setattr(none_driver, "health", lambda: none_driver.Health(True))
    monkeypatch.setattr(none_driver, "node_ip", lambda: "127.0.0.9")
    assert drv.state() == MachineState.NONEXISTENT
    drv.start()
    rec = drv.record()
    assert rec is not None and (rec.node_ip, rec.apiserver_host, rec.ssh_user) == ("127.0.0.9", "127.0.0.9", "root")
    assert drv.state() == MachineState.RUNNING
    drv._set_state("stopped")
    assert drv.state() == MachineState.STOPPED
    assert drv.ssh_target() is None
