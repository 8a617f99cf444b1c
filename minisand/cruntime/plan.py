"""ContainerdPlan: every file minisand writes for containerd ({path: content}), built purely from settings and the
mirror flags, shown in full by `start --dry-run`, and applied by minisand.cruntime.apply."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from minisand import guest
from minisand.config.model import MirrorConfig
from minisand.cruntime.config import ContainerdSettings, render_config
from minisand.errors import ExitCode, MinisandError
from minisand.images.registries import RegistryHosts, registry_hosts, render_hosts_toml

MANIFEST_NAME = ".minisand-managed"  # certs.d/<this>: the registries whose hosts.toml minisand wrote
_MAJOR_MINOR = re.compile(r"\bv?(\d+)\.(\d+)(?:\.\d+)?")


@dataclass(frozen=True)
class ContainerdPlan:
    config_version: int
    config_file: PurePosixPath
    config_text: str
    certs_dir: PurePosixPath
    hosts: tuple[RegistryHosts, ...] = ()
    hosts_text: dict[str, str] = field(default_factory=dict)  # registry -> hosts.toml

    @property
    def grpc_address(self) -> str:
        import tomllib

        grpc = tomllib.loads(self.config_text).get("grpc", {})
        return str(grpc.get("address", str(guest.CONTAINERD_SOCK)))

    def hosts_path(self, registry: str) -> PurePosixPath:
        return self.certs_dir / registry / "hosts.toml"

    @property
    def manifest_path(self) -> PurePosixPath:
        return self.certs_dir / MANIFEST_NAME

    def files(self) -> dict[PurePosixPath, str]:
        out = {self.config_file: self.config_text}
        for registry, text in sorted(self.hosts_text.items()):
            out[self.hosts_path(registry)] = text
        return out

    def to_dict(self) -> dict[str, object]:
        """For `start --dry-run -o json`: every file with its full content."""
        return {"config_version": self.config_version,
                "files": {str(p): text for p, text in self.files().items()},
                "registry_endpoints": {h.registry: h.endpoints() for h in self.hosts}}


def build_plan(settings: ContainerdSettings, mirrors: MirrorConfig | None = None, *, config_version: int = 3,
               config_file: PurePosixPath = guest.CONTAINERD_CONFIG) -> ContainerdPlan:
    """Renders config.toml and one hosts.toml per mirrored/insecure registry. Raises BAD_INPUT on bad flags."""
    mirrors = mirrors or MirrorConfig()
    hosts = tuple(registry_hosts(mirrors.registry_mirrors, mirrors.insecure_registries))
    return ContainerdPlan(
        config_version=config_version,
        config_file=config_file,
        config_text=render_config(settings, config_version),
        certs_dir=PurePosixPath(settings.config_path),
        hosts=hosts,
        hosts_text={h.registry: render_hosts_toml(h) for h in hosts},
    )


def config_version_for(version_output: str) -> int:
    """`containerd --version` output -> the config version to render (2.x: 3; 1.5..1.7: 2)."""
    for token in version_output.split()[1:]:
        m = _MAJOR_MINOR.match(token)
        if m:
            major, minor = int(m.group(1)), int(m.group(2))
            if major >= 2:
                return 3
            if major == 1 and minor >= 5:
                return 2
            break
    raise MinisandError(f"unsupported containerd ({version_output.strip() or 'no version output'})",
                        hint="minisand needs containerd 1.7 (config v2) or 2.x (config v3)",
                        code=ExitCode.RUNTIME_ERROR)


def endpoints_for(registry: str, hosts: Sequence[RegistryHosts]) -> list[str]:
    """The endpoints containerd tries for `registry`, in order."""
    for h in hosts:
        if h.registry == registry:
            return h.endpoints()
    from minisand.images.registries import upstream_server

    return [upstream_server(registry)]
