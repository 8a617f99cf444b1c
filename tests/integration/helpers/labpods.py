"""Running the lab's images as a node would: containerd in a test's network namespace, configured by minisand's
own ContainerdSettings / build_plan / apply with the lab as mirror for registry.k8s.io, the Aliyun cn registry and
every other upstream registry the lab serves images of, and host-network pods driven through CRI with crictl."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e.lab import Lab, LabEndpoints, debs
from minisand.config.model import MirrorConfig
from minisand.cruntime.apply import apply
from minisand.cruntime.plan import build_plan
from tests.integration.helpers import tools
from tests.integration.helpers.containerd import ContainerdHost, short_workdir
from tests.integration.helpers.netns import NetNS

CN = "registry.cn-hangzhou.aliyuncs.com"


@contextmanager
def lab_containerd(lab: Lab, netns: NetNS, inside: LabEndpoints) -> Iterator[ContainerdHost]:
    """containerd in netns pulling through the lab (as seen from inside the namespace)."""
    # runc from the host's own Debian release: forky's needs a newer glibc than this Debian 12 host has.
    runc = debs.host_tool(lab.cache, "runc", "usr/sbin/runc")
    host = ContainerdHost(netns=netns, workdir=short_workdir(), bin_dir=tools.containerd_bin().parent,
                          runc=runc, crictl_bin=Path(lab.manifest().crictl_bin) / "crictl")
    try:
        settings = host.settings(sandbox_image=f"registry.k8s.io/pause:{inside.pause_version}")
        host.install(build_plan(settings, config_file=host.config_file))
        url = f"http://{inside.registry}"
        others = tuple(f"{host}={url}" for host in inside.other_registries())  # docker.io, ghcr.io, gcr.io
        mirrors = MirrorConfig(registry_mirrors=(f"registry.k8s.io={url}", f"{CN}={url}", *others))
        apply(host.runner, build_plan(settings, mirrors, config_file=host.config_file), restart=host.restart,
              tools=host.tools, ready_timeout=20)
        yield host
    finally:
        host.cleanup()


def crictl(host: ContainerdHost, *args: str, timeout: float = 120) -> str:
    """crictl inside the namespace: exec and logs stream from containerd's server on the namespace's loopback."""
    out = subprocess.run(host.netns.argv(*host.crictl.argv(*args)), capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert out.returncode == 0, f"crictl {' '.join(args)}: {out.stderr.strip()}"
    return out.stdout


def served_for(lab: Lab, repository: str, upstream: str) -> bool:
    return any(r.repository == repository and r.kind == "manifests" and r.ns == upstream and r.status == 200
               for r in lab.registry_requests())


class Pods:
    """Host-network pods (the test's namespace is the node's network) run through CRI with crictl."""

    def __init__(self, host: ContainerdHost, workdir: Path) -> None:
        self.host = host
        self.workdir = workdir
        self.pods: list[str] = []

    def pod(self, name: str, privileged: bool = False, runtime: str = "") -> tuple[str, Path]:
        """A pod sandbox; runtime names a containerd runtime handler (empty: the default, runc)."""
        config = {"metadata": {"name": name, "namespace": "lab", "uid": f"{name}-uid", "attempt": 0},
                  "hostname": "", "log_directory": str(self.workdir / "logs" / name),
                  "linux": {"security_context": {"namespace_options": {"network": 2}, "privileged": privileged}}}
        path = self.workdir / f"{name}-pod.json"
        path.write_text(json.dumps(config))
        pod_id = crictl(self.host, "runp", *(["--runtime", runtime] if runtime else []), str(path)).strip()
        self.pods.append(pod_id)
        return pod_id, path

    def run(self, name: str, image: str, command: list[str] | None = None, privileged: bool = False,
            runtime: str = "", *, args: list[str] | None = None, env: dict[str, str] | None = None,
            user: int | None = None, no_new_privs: bool = False) -> str:
        """Start a container: command replaces the image's entrypoint, args its cmd (as a pod spec's fields)."""
        pod_id, pod_config = self.pod(name, privileged, runtime)
        security: dict[str, object] = {"privileged": privileged}
        if user is not None:
            security["run_as_user"] = {"value": user}
        if no_new_privs:
            security["no_new_privs"] = True
        config: dict[str, object] = {"metadata": {"name": name}, "image": {"image": image},
                                     "log_path": f"{name}.log", "linux": {"security_context": security}}
        if command:
            config["command"] = command
        if args:
            config["args"] = args
        if env:
            config["envs"] = [{"key": k, "value": v} for k, v in env.items()]
        path = self.workdir / f"{name}-ctr.json"
        path.write_text(json.dumps(config))
        ctr_id = crictl(self.host, "create", pod_id, str(path), str(pod_config)).strip()
        crictl(self.host, "start", ctr_id)
        return ctr_id

    def wait_exit(self, ctr_id: str, timeout: float = 120) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = json.loads(crictl(self.host, "inspect", "-o", "json", ctr_id))["status"]
            if status["state"] == "CONTAINER_EXITED":
                return int(status["exitCode"]), crictl(self.host, "logs", ctr_id)
            time.sleep(0.3)
        raise AssertionError(f"container {ctr_id} still runs after {timeout:.0f}s")

    def exec(self, ctr_id: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """crictl exec without asserting success (the caller checks the exit code)."""
        return subprocess.run(self.host.netns.argv(*self.host.crictl.argv("exec", ctr_id, *argv)),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def cleanup(self) -> None:
        for pod_id in self.pods:
            subprocess.run(self.host.crictl.argv("stopp", pod_id), capture_output=True, timeout=60, check=False)
            subprocess.run(self.host.crictl.argv("rmp", "-f", pod_id), capture_output=True, timeout=60, check=False)
