"""A throwaway distribution registry (Debian's docker-registry) inside a test's network namespace, its access log,
and a tiny OCI image (busybox-static) built with umoci and pushed with skopeo (run inside the namespace too).

containerd adds `?ns=<upstream registry>` to the requests it sends to a mirror: records() exposes it, which is
how tests prove that a mirror served a pull."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from e2e.lab.registry import RegistryRecord, parse_access_log
from tests.integration.helpers.daemons import Daemon
from tests.integration.helpers.netns import NetNS

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static


def _umoci(*args: str) -> None:
    subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=120)


def build_busybox_layout(dest: Path, tag: str = "1.36") -> Path:
    """An OCI image layout at dest with one image `tag`: busybox-static as /bin/busybox and the sh applet."""
    layout = dest / "oci"
    bundle = dest / "bundle"
    image = f"{layout}:{tag}"
    _umoci("init", "--layout", str(layout))
    _umoci("new", "--image", image)
    _umoci("unpack", "--image", image, str(bundle))
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "sh").symlink_to("busybox")
    _umoci("repack", "--image", image, str(bundle))
    _umoci("config", "--image", image, "--config.cmd", "/bin/sh", "--os", "linux", "--architecture", "amd64")
    _umoci("gc", "--layout", str(layout))
    shutil.rmtree(bundle)
    return layout


@dataclass
class LocalRegistry:
    netns: NetNS
    address: str  # host:port inside the namespace
    daemon: Daemon

    def push(self, layout: Path, tag: str, repository: str, dest_tag: str | None = None) -> None:
        self.netns.run("skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
                       f"docker://{self.address}/{repository}:{dest_tag or tag}")

    def records(self) -> list[RegistryRecord]:
        return parse_access_log(self.daemon.log)

    def manifest_requests(self, repository: str, reference: str) -> list[RegistryRecord]:
        return [r for r in self.records()
                if r.kind == "manifests" and r.repository == repository and r.reference == reference
                and r.method in ("GET", "HEAD")]

    def stop(self) -> None:
        self.daemon.stop()


def start_registry(netns: NetNS, workdir: Path, host: str, port: int) -> LocalRegistry:
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}, "delete": {"enabled": True}},
        "http": {"addr": f"{host}:{port}"},
    }
    config_file = workdir / "registry.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    daemon = Daemon(netns.argv("docker-registry", "serve", str(config_file)), workdir / "registry.log")
    try:
        netns.wait_port(host, port)
    except TimeoutError:
        daemon.stop()
        raise RuntimeError(f"docker-registry did not start on {host}:{port}: {daemon.tail()}") from None
    return LocalRegistry(netns=netns, address=f"{host}:{port}", daemon=daemon)
