"""A machine's saved state (`stop` saves it, `start` resumes it): the metadata written beside the state file and
the checks that decide whether a saved state can still be used.

A saved state is only as good as the world it was saved in: the same qemu binary (the migration stream format is
qemu's, and the device models must match), the same CPUs, memory and devices, the same ISO (the guest's root
filesystem is a squashfs read from it) and data disk, and the same host boot (a reboot may bring another qemu or
kernel; the state file is never fsynced either, see save). Anything else is refused with a reason, and the
caller boots the machine cold from its data disk instead.

The pure part (SavedMeta, Current, unusable_reason) is unit-tested; the file reads are small (the qemu binary's
sha256, a few stat calls) except digest(), which reads the state file once."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text

FORMAT = 1
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_CHUNK = 4 << 20


@dataclass(frozen=True)
class FileId:
    """A file as it was: path, size and modification time (cheap; a rewrite or a replacement changes it)."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path | str) -> FileId | None:
        try:
            st = Path(path).stat()
        except OSError:
            return None
        return cls(str(path), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Current:
    """What a resume would run with now."""

    emulator: str  # the qemu binary's path
    emulator_sha256: str  # "" when it is not on this host (a remote libvirt)
    cpus: int
    memory_mb: int
    device_argv: tuple[str, ...]  # guest-visible configuration (qemu argv without host-only details); () = n/a
    boot_id: str  # "" when unknown (a remote libvirt)
    media: dict[str, FileId | None] = field(default_factory=dict)  # iso, disk


@dataclass(frozen=True)
class SavedMeta:
    """Written beside the state file once the state is complete (its presence means a usable save)."""

    driver: str
    state_file: str
    size: int  # bytes; -1 when the file is not readable here (a remote libvirt)
    sha256: str  # "" when not computed
    current: Current
    saved_at: float  # unix time
    save_seconds: float
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SavedMeta | None:
        try:
            d: dict[str, Any] = json.loads(text)
            cur = _current_from(d["current"])
            return cls(driver=str(d["driver"]), state_file=str(d["state_file"]), size=int(d["size"]),
                       sha256=str(d["sha256"]), current=cur, saved_at=float(d["saved_at"]),
                       save_seconds=float(d["save_seconds"]), format=int(d.get("format", 0)))
        except (ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        atomic_write_text(path, self.to_json(), mode=0o600)

    @classmethod
    def load(cls, path: Path) -> SavedMeta | None:
        try:
            return cls.from_json(path.read_text())
        except OSError:
            return None


def _current_from(c: dict[str, Any]) -> Current:
    c = dict(c)
    media = {k: (FileId(**v) if v else None) for k, v in dict(c.pop("media", {})).items()}
    return Current(**{**c, "device_argv": tuple(c["device_argv"]), "media": media})


def save_current(path: Path, current: Current) -> None:
    atomic_write_text(path, json.dumps(asdict(current), indent=2, sort_keys=True) + "\n", mode=0o600)


def load_current(path: Path) -> Current | None:
    try:
        return _current_from(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def launched_with(path: Path, machine: str) -> Current:
    """What the running machine was launched with (recorded at its launch): a save checks a resume against it."""
    launched = load_current(path)
    if launched is None:
        raise MinisandError(f"machine {machine} has no launch record ({path.name}), so its state could not be "
                            "checked at resume", code=ExitCode.DRIVER_ERROR,
                            hint="`minisand stop --cold` powers it off; later stops save it")
    return launched


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def emulator_sha256(path: str) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return ""


def _mb(n: int) -> str:
    return f"{n} MB"


def unusable_reason(meta: SavedMeta | None, now: Current, state_size: int | None) -> str | None:
    """Why the saved state cannot be resumed now (None: it can, pending the digest check). state_size is the
    state file's size now (None: missing; -1: not readable here)."""
    if meta is None:
        return "its metadata is missing or unreadable"
    if meta.format != FORMAT:
        return f"it was saved in format {meta.format}, this minisand reads format {FORMAT}"
    was = meta.current
    if was.boot_id and now.boot_id and was.boot_id != now.boot_id:
        return "the host rebooted since the save"
    if was.emulator != now.emulator or (was.emulator_sha256 and was.emulator_sha256 != now.emulator_sha256):
        return f"the qemu binary changed since the save ({now.emulator})"
    if was.cpus != now.cpus:
        return f"CPUs changed from {was.cpus} to {now.cpus}"
    if was.memory_mb != now.memory_mb:
        return f"memory changed from {_mb(was.memory_mb)} to {_mb(now.memory_mb)}"
    if was.device_argv != now.device_argv:
        return "the machine's devices changed since the save: " + _first_difference(was.device_argv, now.device_argv)
    for name in sorted(set(was.media) | set(now.media)):
        if was.media.get(name) != now.media.get(name):
            return f"the {name} changed since the save"
    if state_size is None:
        return "the state file is missing"
    if meta.size >= 0 and state_size >= 0 and state_size != meta.size:
        verb = "truncated" if state_size < meta.size else "longer than saved"
        return f"the state file is {verb} ({state_size} of {meta.size} bytes)"
    return None


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    for x, y in zip(a, b, strict=False):
        if x != y:
            return f"{x!r} is now {y!r}"
    return f"{len(a)} arguments are now {len(b)}"


def digest_mismatch(meta: SavedMeta, actual_sha256: str) -> str | None:
    if meta.sha256 and actual_sha256 != meta.sha256:
        return "the state file is corrupt (its sha256 differs from the one recorded at the save)"
    return None


def strip_host_only(argv: Iterable[str], drop_with_value: Sequence[str], drop_flags: Sequence[str]) -> tuple[str, ...]:
    """argv without the options that never reach the guest (pidfile, monitor socket, daemonize, incoming)."""
    out: list[str] = []
    it = iter(argv)
    for a in it:
        if a in drop_with_value:
            next(it, None)
            continue
        if a in drop_flags:
            continue
        out.append(a)
    return tuple(out)


@dataclass(frozen=True)
class SaveReport:
    """What `stop` tells the user about one saved machine."""

    machine: str
    path: str
    size: int  # apparent bytes (-1 unknown)
    allocated: int  # bytes on disk (st_blocks * 512; -1 unknown)
    seconds: float


def report_for(machine: str, path: Path | str, seconds: float) -> SaveReport:
    try:
        st = Path(path).stat()
        return SaveReport(machine, str(path), st.st_size, st.st_blocks * 512, seconds)
    except OSError:
        return SaveReport(machine, str(path), -1, -1, seconds)


def now() -> float:
    return time.time()


class BackgroundDigest:
    """The state file's sha256, computed in a thread while qemu loads the same file (both read it once, from
    the page cache when the save was recent)."""

    def __init__(self, path: Path) -> None:
        import threading

        self._value = ""
        self._thread = threading.Thread(target=self._run, args=(path,), name="state-digest", daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            self._value = file_sha256(path)
        except OSError:
            self._value = ""

    def result(self, timeout: float = 600.0) -> str:
        self._thread.join(timeout)
        return self._value
