"""What an addon's hooks get: the cluster config, its nodes, the mirrors, a Kubernetes API client."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minisand.cluster.context import Context
from minisand.config.model import ClusterConfig
from minisand.errors import ExitCode, MinisandError

if TYPE_CHECKING:
    from minisand.cluster.provision import Node


@dataclass
class AddonContext:
    ctx: Context
    cfg: ClusterConfig
    nodes: list[Node]
    measurements: dict[str, Any] = field(default_factory=dict)
    _client: Any = None

    def kubeconfig(self) -> dict[str, Any]:
        path = self.ctx.home.profile_dir(self.cfg.name) / "kubeconfig.json"
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
