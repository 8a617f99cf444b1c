"""`minisand kubectl -- ...`: a cached kubectl of the cluster's version, against the profile's context."""

from __future__ import annotations

import os
import subprocess

from minisand.bootstrap.binaries import ensure_host_binaries
from minisand.bootstrap.kubeconfig import kubeconfig_path
from minisand.cluster.context import Context
from minisand.errors import ExitCode, MinisandError


def run(ctx: Context, args: list[str]) -> int:
    cfg = ctx.store.load(ctx.profile)
    if cfg.no_kubernetes:
        raise MinisandError(f"profile {cfg.name!r} runs without Kubernetes", hint="start one without --no-kubernetes",
                            code=ExitCode.BAD_INPUT)
    kubectl = ensure_host_binaries(ctx.home, cfg.kubernetes_version, cfg.mirrors, names=("kubectl",))["kubectl"]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig_path())}
    return subprocess.call([str(kubectl.path), "--context", cfg.name, *args], env=env)
