"""The Driver contract (after libmachine's: create/start/stop/kill/remove/state/ip/ssh) and the data a driver
gets (MachineSpec) and keeps (MachineRecord, machines/<name>/machine.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from minisand.config.model import DriverOptions, from_dict, to_dict
from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text
from minisand.runner.base import CommandRunner
from minisand.runner.ssh import SSHTarget

if TYPE_CHECKING:
    from minisand.drivers.savedstate import SaveReport

GUEST_SSH_PORT = 22
GUEST_APISERVER_PORT = 8443


class MachineState(StrEnum):
    RUNNING = "Running"
    STOPPED = "Stopped"
    STARTING = "Starting"
    STOPPING = "Stopping"
    PAUSED = "Paused"
    SAVED = "Saved"  # not running; its memory and device state are saved and `start` resumes it
    ERROR = "Error"
    NONEXISTENT = "Nonexistent"


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str = ""
    fix: str = ""

    def describe(self) -> str:
        return "healthy" if self.ok else f"{self.reason} (fix: {self.fix})" if self.fix else self.reason


@dataclass(frozen=True)
class MachineSpec:
    """What a driver needs to build one machine."""

    machine: str
    profile: str
    machine_dir: Path
    cache_dir: Path
    cpus: int
    memory_mb: int
    disk_mb: int
    hostname: str
    ssh_pubkey: str
    ssh_key_path: Path
    options: DriverOptions
    iso: Path | None = None  # a verified ISO (VM drivers)
    kernel: Path | None = None  # extracted from the ISO, for drivers that boot kernel + initrd directly
    initrd: Path | None = None
    data_image: Path | None = None  # a prepared ext4 data disk (the node image): a new disk is a layer over it


@dataclass(frozen=True)
class MachineRecord:
    """Facts about a created machine: written by its driver, read by everyone."""

    machine: str
    driver: str
    profile: str = ""  # the profile that owns the machine ("" in records written before it was kept)
    ssh_user: str = "minisand"
    ssh_host: str = "127.0.0.1"
    ssh_port: int = 0
    apiserver_host: str = "127.0.0.1"
    apiserver_port: int = 0
    node_ip: str = ""
    host_key: str = ""  # pinned at first boot, "type base64"
    accel: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def path(machine_dir: Path) -> Path:
        return machine_dir / "machine.json"

    @classmethod
    def load(cls, machine_dir: Path) -> MachineRecord | None:
        p = cls.path(machine_dir)
        try:
            data = json.loads(p.read_bytes().decode())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            extra = data.pop("extra", {})
            if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
                raise ValueError("extra: expected an object of strings")
            return _replace(from_dict(cls, data), extra={str(k): v for k, v in extra.items()})
        except FileNotFoundError:
            return None
        except (NotADirectoryError, IsADirectoryError, UnicodeDecodeError, ValueError, TypeError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise MinisandError(f"machine state {p} is corrupt: {detail}",
                                hint="run `minisand delete` and start again", code=ExitCode.PROFILE_CORRUPT) from None

    def save(self, machine_dir: Path) -> None:
        machine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_text(self.path(machine_dir), json.dumps(to_dict(self), indent=2, sort_keys=True) + "\n",
                          mode=0o600)


def _replace(rec: MachineRecord, **kw: Any) -> MachineRecord:
    import dataclasses

    return dataclasses.replace(rec, **kw)


class Driver(Protocol):
    name: ClassVar[str]
    spec: MachineSpec

    def preflight(self) -> None:
        """Raises DRIVER_UNAVAILABLE naming what is missing and how to fix it."""
        ...

    def create(self) -> None:
        """Idempotent: builds whatever is missing (disk, domain, files); does not boot."""
        ...

    def start(self) -> None:
        """Boots the machine if it is not running; idempotent."""
        ...

    def stop(self, timeout: float = 90.0) -> None:
        """Graceful (ACPI / poweroff), then kill after timeout."""
        ...

    def kill(self) -> None: ...

    def remove(self) -> None:
        """Leaves nothing behind: processes, disks, libvirt objects, port forwards."""
        ...

    def state(self) -> MachineState: ...

    def record(self) -> MachineRecord | None: ...

    def ssh_target(self) -> SSHTarget | None:
        """None when commands run on the local host (none driver)."""
        ...

    def runner(self) -> CommandRunner: ...

    def console_log(self) -> Path | None:
        """The serial console log, when the driver keeps one."""
        ...


class ResumeFailed(MinisandError):
    """A saved state could not be resumed; the driver has stopped what it started and kept the data disk."""

    def __init__(self, why: str) -> None:
        super().__init__(f"resuming the saved state failed: {why}", code=ExitCode.DRIVER_ERROR,
                         reason="RESUME_FAILED")
        self.why = why


@runtime_checkable
class Suspendable(Protocol):
    """VM drivers that can save a running machine to a file and resume it, and pause/unpause it in place."""

    def save(self, timeout: float) -> SaveReport:
        """Stops the vCPUs, writes the machine's state beside it and ends the machine (state SAVED)."""
        ...

    def has_saved_state(self) -> bool: ...

    def saved_state_problem(self) -> str | None:
        """Why the saved state cannot be resumed (cheap checks: metadata, sizes, identities), or None."""
        ...

    def resume(self, timeout: float) -> None:
        """Starts the machine from its saved state (verifying the file's digest); raises ResumeFailed."""
        ...

    def discard_saved_state(self) -> None: ...

    def pause(self) -> None: ...

    def unpause(self) -> None: ...
