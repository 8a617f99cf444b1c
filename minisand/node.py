"""A node of a cluster as provisioning sees it: its machine's driver, a runner on it, its init system's services
and the facts gathered from it. The one Node type: cluster operations build it, addons and the runtime use it."""

from __future__ import annotations

from dataclasses import dataclass

from minisand.drivers.base import Driver
from minisand.nodefacts import NodeFacts
from minisand.runner.base import CommandRunner
from minisand.services import Services, SystemdServices


@dataclass
class Node:
    machine: str
    driver: Driver
    runner: CommandRunner
    services: Services
    facts: NodeFacts
    control_plane: bool


def services_for(driver: Driver, runner: CommandRunner) -> Services:
    """The driver's own service manager (the none driver without systemd supervises daemons itself), else systemd."""
    own = getattr(driver, "services", None)
    if callable(own):
        svc: Services = own()
        return svc
    return SystemdServices(runner)
