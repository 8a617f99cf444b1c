"""What an addon's hooks get: MINISAND_HOME, the cluster config, its nodes, the image repository start chose, a
Kubernetes API client. Built by the cluster operations (minisand.cluster.addons) that enable, disable and repair
addons."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minisand.config.model import ClusterConfig
from minisand.errors import ExitCode, MinisandError
from minisand.paths import Home

if TYPE_CHECKING:
    from minisand.node import Node


@dataclass
class AddonContext:
    home: Home
    cfg: ClusterConfig
    nodes: list[Node]
    repository: str | None = None  # the image repository start chose for the cluster (None before the first start)
    images: dict[str, str] = field(default_factory=dict)  # upstream image -> the name install() pulled it as
    _client: Any = None

    def kubeconfig(self) -> dict[str, Any]:
        path = self.home.profile_dir(self.cfg.name) / "kubeconfig.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise MinisandError(f"profile {self.cfg.name!r} has no cluster credentials yet",
                                hint="run `minisand start` first", code=ExitCode.ADDON_ERROR) from None
        return data

    def api(self) -> Any:
        if self._client is None:
            from minisand.bootstrap.wait import api_client

            self._client = api_client(self.kubeconfig())
        return self._client
