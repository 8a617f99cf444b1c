"""Health of a running cluster as `minisand status` reports it."""

from __future__ import annotations

from minisand.bootstrap.kubeconfig import context_server
from minisand.config.model import ClusterConfig
from minisand.drivers.base import MachineRecord
from minisand.paths import Home


def endpoint(home: Home, cfg: ClusterConfig) -> str | None:
    rec = MachineRecord.load(home.machine_dir(cfg.machine_names()[0]))
    if rec is None or not rec.apiserver_port:
        return None
    return f"https://{rec.apiserver_host}:{rec.apiserver_port}"


def ca_file(home: Home, name: str) -> str:
    return str(home.profile_dir(name) / "ca.crt")


def apiserver_state(home: Home, cfg: ClusterConfig) -> str:
    import requests

    url = endpoint(home, cfg)
    if url is None:
        return "Stopped"
    try:
        resp = requests.get(f"{url}/livez", verify=ca_file(home, cfg.name), timeout=20)
    except requests.exceptions.SSLError:
        return "Error"
    except requests.exceptions.RequestException:
        return "Stopped"
    return "Running" if resp.status_code == 200 else "Error"


def kubeconfig_state(home: Home, cfg: ClusterConfig) -> str:
    server = context_server(cfg.name)
    if server is None:
        return "Misconfigured"
    return "Configured" if server == endpoint(home, cfg) else "Misconfigured"
