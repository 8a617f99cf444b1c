"""Health of a running cluster as `minisand status` reports it."""

from __future__ import annotations

from minisand.bootstrap.kubeconfig import context_server
from minisand.cluster.context import Context
from minisand.config.model import ClusterConfig
from minisand.drivers.base import MachineRecord


def endpoint(ctx: Context, cfg: ClusterConfig) -> str | None:
    rec = MachineRecord.load(ctx.home.machine_dir(cfg.machine_names()[0]))
    if rec is None or not rec.apiserver_port:
        return None
    return f"https://{rec.apiserver_host}:{rec.apiserver_port}"


def ca_file(ctx: Context, name: str) -> str:
    return str(ctx.home.profile_dir(name) / "ca.crt")


def apiserver_state(ctx: Context, cfg: ClusterConfig) -> str:
    import requests

    url = endpoint(ctx, cfg)
    if url is None:
        return "Stopped"
    try:
        resp = requests.get(f"{url}/livez", verify=ca_file(ctx, cfg.name), timeout=20)
    except requests.exceptions.SSLError:
        return "Error"
    except requests.exceptions.RequestException:
        return "Stopped"
    return "Running" if resp.status_code == 200 else "Error"


def kubeconfig_state(ctx: Context, cfg: ClusterConfig) -> str:
    server = context_server(cfg.name)
    if server is None:
        return "Misconfigured"
    return "Configured" if server == endpoint(ctx, cfg) else "Misconfigured"
