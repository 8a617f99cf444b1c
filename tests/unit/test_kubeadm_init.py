"""kubeadm init on a node: a run that fails after the control plane's files exist gets its remaining phases once
more."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import pytest

from minisand.bootstrap.kubeadm import INIT_DONE, Kubeadm
from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import RunResult
from minisand.services import SystemdServices

MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"


class _Node:
    """The node behind the runner: kubeadm runs that fail `fail` times (after writing the manifests)."""

    def __init__(self, fail: int = 0, writes_manifest: bool = True) -> None:
        self.fail = fail
        self.writes_manifest = writes_manifest
        self.files: dict[str, bytes] = {}
        self.commands: list[list[str]] = []

    @property
    def where(self) -> str:
        return "a test node"

    def run(self, argv: Sequence[str], **_kw: Any) -> RunResult:
        argv = list(argv)
        self.commands.append(argv)
        if argv[:2] == ["test", "-e"]:
            return RunResult(tuple(argv), 0 if argv[2] in self.files else 1, b"", b"", 0.0)
        if argv[0].endswith("/kubeadm") and argv[1:3] == ["init", "phase"] and argv[3] == "preflight":
            if self.fail and not self.writes_manifest:  # e.g. preflight refused
                self.fail -= 1
                return RunResult(tuple(argv), 1, b"", b"error execution phase preflight", 0.0)
        elif argv[0].endswith("/kubeadm") and argv[1] == "init" and argv[2] != "phase":
            if self.writes_manifest:
                self.files[MANIFEST] = b"apiserver"
            if self.fail:
                self.fail -= 1
                err = b"error execution phase wait-control-plane: ... context deadline exceeded"
                return RunResult(tuple(argv), 1, b"", err, 0.0)
        return RunResult(tuple(argv), 0, b"", b"", 0.0)

    def write_file(self, dest: PurePosixPath, data: bytes, **_kw: Any) -> None:
        self.files[str(dest)] = data


def _kubeadm_runs(node: _Node) -> list[list[str]]:
    return [c[1:] for c in node.commands if c[0].endswith("/kubeadm")]


def _inits(node: _Node) -> list[list[str]]:
    return [r for r in _kubeadm_runs(node) if r[1] != "phase"]


def test_a_timed_out_api_call_gets_the_remaining_phases_once_more() -> None:
    node = _Node(fail=1)
    Kubeadm(node, SystemdServices(node), "v1.36.4").init("yaml")  # type: ignore[arg-type]
    _first, second = _inits(node)
    skip = next(a for a in second if a.startswith("--skip-phases="))
    assert set(skip.split("=", 1)[1].split(",")) == {"preflight", "certs", "kubeconfig", "kubelet-start", "etcd",
                                                     "control-plane"}
    assert str(INIT_DONE) in node.files


def test_init_fails_when_the_retry_fails_or_nothing_was_written() -> None:
    node = _Node(fail=2)
    with pytest.raises(MinisandError) as exc:
        Kubeadm(node, SystemdServices(node), "v1.36.4").init("yaml")  # type: ignore[arg-type]
    assert exc.value.code == ExitCode.KUBERNETES_ERROR and str(INIT_DONE) not in node.files
    early = _Node(fail=1, writes_manifest=False)  # e.g. preflight refused: no second run
    with pytest.raises(MinisandError):
        Kubeadm(early, SystemdServices(early), "v1.36.4").init("yaml")  # type: ignore[arg-type]
    (only,) = _kubeadm_runs(early)
    assert only[:3] == ["init", "phase", "preflight"]


def test_a_vms_kubelet_puts_back_the_hosts_file_that_names_the_control_plane() -> None:
    from minisand.bootstrap.kubeadm import HOSTS_COPY, render_kubelet_unit

    vm = render_kubelet_unit("v1.36.4")
    assert f"ExecStartPre=-/bin/cp -f {HOSTS_COPY} /etc/hosts" in vm
    assert vm.index("ExecStartPre") < vm.index("ExecStart=")
    assert "ExecStartPre" not in render_kubelet_unit("v1.36.4", vm=False)  # a host keeps its own /etc/hosts
