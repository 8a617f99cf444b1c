"""`minisand start --dry-run -o json` for representative flag sets, against golden files (tests/unit/golden/dryrun/).

The plan depends on the host only through what the driver checks look at: the OS and architecture, root, the CPU
count and memory, and the programs on PATH. The `host` fixture pins all of them at the platform boundary (os and
platform, PATH pointing at stub programs that are never run), so the goldens are the same on every machine."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from minisand import hosttools
from minisand.errors import ExitCode
from tests.unit.clihelp import assert_unchanged, one_line_error, run_cli, snapshot
from tests.unit.golden import assert_golden, golden_path

SSH = ["--driver", "ssh", "--ssh-ip-address", "192.0.2.10", "--ssh-key", "/keys/id_ed25519"]
CASES: dict[str, list[str]] = {
    "cn-qemu": ["--driver", "qemu", "--image-mirror-country", "cn"],
    "registry-mirrors-ssh": [*SSH, "--registry-mirror", "http://127.0.0.1:5000",
                             "--registry-mirror", "registry.k8s.io=https://mirror.example/google_containers",
                             "--insecure-registry", "127.0.0.1:5000", "--binary-mirror", "https://mirror.example/dl",
                             "--image-repository", "mirror.example/google_containers"],
    "extra-config-gvisor-ssh": [*SSH, "--extra-config", "kube-proxy.mode=ipvs", "--extra-config",
                                "kube-proxy.ipvs.strictARP=true", "--extra-config", "kubelet.max-pods=50",
                                "--extra-config", "apiserver.audit-log-maxage=7", "--extra-config",
                                "kubeadm.ignore-preflight-errors=NumCPU", "--addons", "gvisor"],
    "no-kubernetes-qemu": ["--driver", "qemu", "--no-kubernetes", "--registry-mirror", "http://127.0.0.1:5000"],
    "none": ["--driver", "none", "--wait", "apiserver", "--wait-timeout", "10m"],
}
GIB = 1024 ** 3


@pytest.fixture()
def host(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """x86_64 Linux, root, 8 CPUs and 16 GiB, every program of every driver on PATH (stubs: nothing runs them)."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for req in hosttools.REQUIREMENTS:
        if req.program:
            stub = stubs / req.program
            stub.write_text("#!/bin/sh\nexit 99\n")
            stub.chmod(0o755)
    monkeypatch.setenv("PATH", str(stubs))
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    real_sysconf: Callable[[str | int], int] = os.sysconf
    fixed = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 16 * GIB // 4096}
    monkeypatch.setattr(os, "sysconf", lambda name: fixed[name] if name in fixed else real_sysconf(name))
    return home


def dry_run(capsys: pytest.CaptureFixture[str], flags: list[str]) -> str:
    code, out, err = run_cli(["start", "--dry-run", "-o", "json", *flags], capsys)
    assert code == 0, err
    return out + "\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_dry_run_golden(host: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    if case == "none" and not Path("/usr/lib/cni/bridge").exists():
        pytest.skip("the none driver's health check needs /usr/lib/cni/bridge (containernetworking-plugins)")
    before = snapshot(host)
    out = dry_run(capsys, CASES[case])
    assert_golden("dryrun", f"{case}.json", out)
    assert_unchanged(host, before)  # a dry run creates nothing
    assert dry_run(capsys, CASES[case]) == out  # and says the same thing twice


def _plan(case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(golden_path("dryrun", f"{case}.json").read_text())
    return data


def test_the_plans_files_are_the_rendered_goldens() -> None:
    """What the plan shows is what the node gets: the same renderers as the per-file goldens."""
    files = _plan("extra-config-gvisor-ssh")["files"]
    # the ssh driver's node is a host: it keeps its own /etc/hosts, so its unit has no ExecStartPre copying one
    host_unit = golden_path("kubelet", "kubelet-v1.36.4-host.service").read_text()
    assert files["/etc/systemd/system/kubelet.service"] == host_unit
    assert files["/etc/cni/net.d/1-minisand-bridge.conflist"] == golden_path("cni", "bridge-node0.conflist").read_text()
    assert 'mode: "ipvs"' in files["/var/tmp/minisand/kubeadm.yaml"] and "/etc/containerd/runsc.toml" in files


@pytest.mark.parametrize(("case", "endpoint"), [("cn-qemu", "control-plane.minisand.internal:8443"),
                                                ("registry-mirrors-ssh", "192.0.2.10:8443")])
def test_the_plan_uses_the_endpoint_the_start_uses(case: str, endpoint: str) -> None:
    """VMs reach the API server by the name in the /etc/hosts minisand writes; none/ssh machines by their IP."""
    files = _plan(case)["files"]
    assert f'controlPlaneEndpoint: "{endpoint}"' in files["/var/tmp/minisand/kubeadm.yaml"]
    assert ("/etc/hosts" in files) == (case == "cn-qemu")


def test_dry_run_of_a_driver_this_host_cannot_run_is_one_line(host: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(host.parent / "empty"))
    before = snapshot(host)
    code, out, err = run_cli(["start", "--dry-run", "-o", "json", "--driver", "qemu"], capsys)
    assert code == ExitCode.DRIVER_UNAVAILABLE and out == ""
    assert "qemu-system-x86_64 is not installed" in one_line_error(err)
    assert_unchanged(host, before)
