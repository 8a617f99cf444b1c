"""The host-tool registry (minisand.hosttools): every program the code runs is listed, with its package, and the
drivers' health checks come from it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from minisand import hosttools
from minisand.hosttools import REQUIREMENTS, Requirement, Role, Source

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("minisand", "e2e", "tests", "bench")
# calls whose first argument is an argv list (subprocess, the runners, the lab's spawn) or a program name (which)
EXEC_CALLS = {"run", "Popen", "call", "check_call", "check_output", "stream", "spawn", "execvp", "which", "locate"}
ARGV_NAMES = {"argv", "cmd", "command"}
# not host programs: what the runner unit tests run on purpose to prove how a missing program fails, and the
# commands the in-process sshd double (tests/unit/sshdouble.py) answers itself
NOT_PROGRAMS = {"minisand-no-such-program", "nosuch", "fail", "argv"}


def _first_string(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Starred) and isinstance(node.value, ast.Name):
        return constants.get(node.value.id)
    return None


def _module_constants(tree: ast.Module) -> dict[str, str]:
    """NAME = ["prog", ...] at module level (e.g. CTR = ["ctr", "--namespace", "k8s.io"])."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.List | ast.Tuple) and value.elts:
                first = _first_string(value.elts[0], out)
                if first is not None:
                    out[node.targets[0].id] = first
    return out


def _argv_program(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.List | ast.Tuple) and node.elts:
        return _first_string(node.elts[0], constants)
    return None


def programs_run(path: Path) -> dict[str, int]:
    """Program name -> line, for every literal argv (or which()) in one source file."""
    tree = ast.parse(path.read_text(), str(path))
    constants = _module_constants(tree)
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        prog = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in EXEC_CALLS:
                arg = node.args[0]
                if name in ("which", "locate"):
                    prog = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
                else:
                    prog = _argv_program(arg, constants)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in ARGV_NAMES
                                                    for t in node.targets):
            prog = _argv_program(node.value, constants)
        if prog and not prog.startswith("-"):
            found.setdefault(Path(prog).name, node.lineno)
    return found


def _all_programs() -> dict[str, str]:
    out: dict[str, str] = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            for prog, line in programs_run(path).items():
                out.setdefault(prog, f"{path.relative_to(ROOT)}:{line}")
    return out


def test_every_program_the_code_runs_is_registered() -> None:
    found = _all_programs()
    assert len(found) > 40, found  # the scan sees the code (a broken scan would pass vacuously)
    unregistered = {p: where for p, where in found.items()
                    if p not in NOT_PROGRAMS and not hosttools.is_registered(p)}
    assert not unregistered, f"programs run but not in minisand.hosttools.REQUIREMENTS: {unregistered}"


def test_the_scan_finds_argv_lists_constants_and_which(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text('import subprocess, shutil\nCTR = ["ctr", "-n"]\n'
                   'def f(r):\n    r.run([*CTR, "images"])\n    subprocess.run(["modprobe", "x"])\n'
                   '    argv = ["qemu-img", "create"]\n    shutil.which("xorriso")\n    r.run(["-x"])\n')
    assert set(programs_run(src)) == {"ctr", "modprobe", "qemu-img", "xorriso"}


def test_registered_programs_are_unique_and_name_a_package() -> None:
    programs = [r.program for r in REQUIREMENTS if r.program]
    assert len(programs) == len(set(programs))
    for r in REQUIREMENTS:
        assert r.package and r.roles and (r.program or r.path)


def test_setup_installs_every_apt_package_but_macos_and_systemd_ones() -> None:
    pkgs = hosttools.apt_packages(*hosttools.SETUP_ROLES)
    assert "kmod" in pkgs and "procps" in pkgs and "qemu-utils" in pkgs
    assert "hyperkit" not in pkgs and "systemd" not in pkgs


def test_none_driver_needs_modprobe_and_kubeadms_preflight_tools() -> None:
    names = {r.name for r in hosttools.needed(Role.NONE)}
    assert {"modprobe", "sysctl", "iptables", "conntrack", "nsenter", "ip", "mount", "crictl", "containerd",
            "runc", "/usr/lib/cni/bridge"} <= names


def test_missing_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    gone = hosttools.missing(Role.NONE)
    assert "modprobe" in {r.name for r in gone}
    what, hint = hosttools.describe_missing(gone)
    assert "modprobe" in what and "apt-get install" in hint and "kmod" in hint
    assert "scripts/setup" in hint  # containerd and crictl come from setup, not Debian 12's apt


def test_cli_packages_and_check(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert hosttools.main(["packages", "none"]) == 0
    assert "kmod" in capsys.readouterr().out.split()
    monkeypatch.setenv("PATH", "/nonexistent")
    assert hosttools.main(["check", "none"]) == 1
    assert "kmod" in capsys.readouterr().err
    assert hosttools.main(["check", "bogus"]) == 2


def test_requirement_hints() -> None:
    apt = Requirement("kmod", frozenset({Role.NONE}), program="modprobe")
    assert apt.install_hint() == "apt-get install kmod"
    setup = Requirement("cri-tools", frozenset({Role.NONE}), program="crictl", source=Source.SETUP)
    assert "scripts/setup" in setup.install_hint()


@pytest.mark.parametrize("gone, package", [("qemu-img", "qemu-utils"), ("cp", "coreutils")])
def test_qemu_health_comes_from_the_registry(monkeypatch: pytest.MonkeyPatch, gone: str, package: str) -> None:
    from minisand.drivers.qemu import driver as qemu

    real = hosttools.locate
    monkeypatch.setattr(hosttools, "locate", lambda p: None if p == gone else (real(p) or f"/usr/bin/{p}"))
    health = qemu.health()
    assert not health.ok and gone in health.reason and f"apt-get install {package}" in health.fix


@pytest.mark.parametrize("gone, package", [("dnsmasq", "dnsmasq-base"), ("libvirtd", "libvirt-daemon-system"),
                                           ("qemu-img", "qemu-utils")])
def test_kvm2_health_comes_from_the_registry(monkeypatch: pytest.MonkeyPatch, gone: str, package: str) -> None:
    from minisand.drivers.kvm2 import driver as kvm2

    real = hosttools.locate
    monkeypatch.setattr(hosttools, "locate", lambda p: None if p == gone else (real(p) or f"/usr/bin/{p}"))
    health = kvm2.health("qemu:///system")
    assert not health.ok and gone in health.reason and f"apt-get install {package}" in health.fix


def test_kvm2_against_a_remote_libvirt_needs_only_qemu_img_here(monkeypatch: pytest.MonkeyPatch) -> None:
    from minisand.drivers.kvm2 import driver as kvm2

    monkeypatch.setattr(hosttools, "locate", lambda p: None)
    health = kvm2.health("qemu+ssh://builder.example/system")
    assert not health.ok and "qemu-img" in health.reason and "dnsmasq" not in health.reason
