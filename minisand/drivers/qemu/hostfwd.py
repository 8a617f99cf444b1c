"""Host forwards added to a running machine on qemu's user-mode network (HMP `hostfwd_add` / `hostfwd_remove`,
sent over QMP's `human-monitor-command` or libvirt's monitor passthrough), and their bookkeeping in the machine's
state (machines/<name>/forwards.json). A forward listens on 127.0.0.1 only.

Lifecycle: `minisand service` adds one per NodePort; stop removes them (and forgets them), delete removes the
machine directory; start forgets what a machine that died without a stop left recorded (its qemu, and so its
forwards, are gone)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text

log = logging.getLogger(__name__)

Monitor = Callable[[str], str]  # runs one HMP command line, returns its output text

FILE = "forwards.json"
HOST_IP = "127.0.0.1"
_USERNET = re.compile(r"^\s*(TCP|UDP)\[HOST_FORWARD\]\s+\S+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Forward:
    host_port: int
    guest_port: int
    proto: str = "tcp"
    host_ip: str = HOST_IP
    owner: str = ""  # what asked for it, e.g. "service default/web:80"

    def __post_init__(self) -> None:
        if self.proto not in ("tcp", "udp"):
            raise ValueError(f"protocol {self.proto!r} is not tcp or udp")
        for port in (self.host_port, self.guest_port):
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range")
        if not re.fullmatch(r"[0-9.]+", self.host_ip):
            raise ValueError(f"host address {self.host_ip!r} is not an IPv4 address")

    def add_command(self, netdev: str) -> str:
        return f"hostfwd_add {netdev} {self.proto}:{self.host_ip}:{self.host_port}-:{self.guest_port}"

    def remove_command(self, netdev: str) -> str:
        return f"hostfwd_remove {netdev} {self.proto}:{self.host_ip}:{self.host_port}"


@dataclass(frozen=True)
class Active:
    """A HOST_FORWARD line of `info usernet`."""

    proto: str
    host_ip: str
    host_port: int
    guest_ip: str
    guest_port: int


def parse_usernet(text: str) -> list[Active]:
    return [Active(m[0].lower(), m[1], int(m[2]), m[3], int(m[4])) for m in _USERNET.findall(text)]


# -- bookkeeping ----------------------------------------------------------------------------------------------
def load(machine_dir: Path) -> list[Forward]:
    try:
        data = json.loads((machine_dir / FILE).read_text())
    except FileNotFoundError:
        return []
    except (json.JSONDecodeError, OSError) as exc:
        log.warning("ignoring unreadable %s: %s", machine_dir / FILE, exc)
        return []
    out: list[Forward] = []
    for item in data if isinstance(data, list) else []:
        with contextlib.suppress(TypeError, ValueError):
            out.append(Forward(**item))
    return out


def save(machine_dir: Path, forwards: list[Forward]) -> None:
    if not forwards:
        forget(machine_dir)
        return
    atomic_write_text(machine_dir / FILE, json.dumps([asdict(f) for f in forwards], indent=2) + "\n", mode=0o600)


def forget(machine_dir: Path) -> None:
    (machine_dir / FILE).unlink(missing_ok=True)


# -- on the running machine ----------------------------------------------------------------------------------------
def active(monitor: Monitor) -> list[Active]:
    return parse_usernet(monitor("info usernet"))


def _check(output: str, command: str) -> None:
    text = output.strip()
    if text and "removed" not in text:
        raise MinisandError(f"qemu refused `{command}`: {text.splitlines()[-1]}",
                            hint="another program may hold that host port; try again",
                            code=ExitCode.DRIVER_ERROR, reason="HOSTFWD_FAILED")


def ensure(machine_dir: Path, monitor: Monitor, netdev: str, guest_port: int, *, proto: str = "tcp",
           owner: str = "", pick_port: Callable[[], int]) -> Forward:
    """A forward to guest_port: the recorded one when qemu still has it, else a new one on a free host port
    (pick_port; retried on a port another program took meanwhile). Recorded in machine_dir."""
    recorded = load(machine_dir)
    live = {(a.proto, a.host_ip, a.host_port, a.guest_port) for a in active(monitor)}
    for f in recorded:
        if f.guest_port == guest_port and f.proto == proto:
            if (f.proto, f.host_ip, f.host_port, f.guest_port) in live:
                return f
            recorded.remove(f)  # qemu no longer has it (restarted): record a new one
            break
    last = ""
    for _attempt in range(3):
        fwd = Forward(pick_port(), guest_port, proto, HOST_IP, owner)
        out = monitor(fwd.add_command(netdev))
        if not out.strip():
            save(machine_dir, [*recorded, fwd])
            log.info("host forward %s:%d -> guest %d added (%s)", fwd.host_ip, fwd.host_port, guest_port, owner)
            return fwd
        last = out.strip().splitlines()[-1]
    raise MinisandError(f"qemu could not add a host forward to guest port {guest_port}: {last}",
                        hint="another program may hold the host ports; try again", code=ExitCode.DRIVER_ERROR,
                        reason="HOSTFWD_FAILED")


def remove(machine_dir: Path, monitor: Monitor, netdev: str, fwd: Forward) -> None:
    command = fwd.remove_command(netdev)
    _check(monitor(command), command)
    save(machine_dir, [f for f in load(machine_dir) if f != fwd])


def release_all(machine_dir: Path, monitor: Monitor | None, netdev: str) -> None:
    """Removes every recorded forward from the running machine (best effort) and forgets them."""
    for fwd in load(machine_dir):
        if monitor is None:
            break
        try:
            monitor(fwd.remove_command(netdev))
        except Exception as exc:  # the machine is going away anyway
            log.debug("hostfwd_remove %s: %s", fwd, exc)
            break
    forget(machine_dir)
