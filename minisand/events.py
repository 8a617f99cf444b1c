"""The `-o json` event stream: one JSON object per line on stdout, modelled on minikube's (`minikube start -o json`,
pkg/minikube/out/register). Each event is a CloudEvents 1.0 envelope (`specversion`, `id`, `source`, `type`,
`datacontenttype`, `data`); as in minikube every `data` value is a string, so a consumer written for minikube's
stream reads this one after swapping the type prefix.

Types (prefix `io.minisand.`, minikube's is `io.k8s.sigs.minikube.`):
- `step`: `currentstep`, `totalsteps`, `name` (the step's stable name from the command's flow), `message`
- `download.progress`: `currentstep`, `totalsteps`, `artifact`, `progress` (0..1 as text, e.g. "0.42"),
  `current`, `total` (bytes; `total` is empty when unknown)
- `info`, `warning`: `message`
- `error`: `message`, `exitcode`, `name` (minisand's reason id), `advice` (the hint)

A command's flow is the ordered list of step names it may pass through; `totalsteps` is its length minus one
(the index of its last step, `Done`), and `currentstep` only grows: a step a run does not need is skipped, never
revisited. Pure: no I/O beyond the stream handed in."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TextIO

SPEC_VERSION = "1.0"
SOURCE = "https://github.com/minisand/minisand"
PREFIX = "io.minisand."

STEP, DOWNLOAD_PROGRESS, INFO, WARNING, ERROR = "step", "download.progress", "info", "warning", "error"
TYPES = (STEP, DOWNLOAD_PROGRESS, INFO, WARNING, ERROR)

DONE = "Done"

# The flows: every step name a command may report, in order (minikube's register.go has the same idea).
START_FLOW: tuple[str, ...] = (
    "Initial Setup",
    "Selecting Driver",
    "Guest ISO",
    "Starting Node",
    "Preparing containerd",
    "Preparing Kubernetes",
    "Control Plane",
    "Joining Nodes",
    "Verifying Kubernetes",
    "Enabling Addons",
    DONE,
)
ADDON_ENABLE_FLOW: tuple[str, ...] = ("Enabling Addon", DONE)
ADDON_DISABLE_FLOW: tuple[str, ...] = ("Disabling Addon", DONE)
IMAGE_LOAD_FLOW: tuple[str, ...] = ("Reading Image", "Loading Image", DONE)

FLOWS: dict[str, tuple[str, ...]] = {"start": START_FLOW, "addons enable": ADDON_ENABLE_FLOW,
                                     "addons disable": ADDON_DISABLE_FLOW, "image load": IMAGE_LOAD_FLOW}


def envelope(kind: str, data: dict[str, str], event_id: str) -> dict[str, object]:
    if kind not in TYPES:
        raise ValueError(f"unknown event type {kind!r}")
    if any(not isinstance(v, str) for v in data.values()):
        raise TypeError(f"event data values must be strings: {data!r}")
    return {"specversion": SPEC_VERSION, "id": event_id, "source": SOURCE, "type": PREFIX + kind,
            "datacontenttype": "application/json", "data": dict(data)}


def encode(kind: str, data: dict[str, str], event_id: str) -> str:
    """One line of the stream (no trailing newline), keys sorted as minikube's Go encoder sorts them."""
    return json.dumps(envelope(kind, data, event_id), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def progress_text(done: int, total: int | None) -> str:
    if not total:
        return ""
    return f"{min(done / total, 1.0):.2f}"


class Flow:
    """Where a command is in its flow. set() moves forward only; an unknown or earlier name keeps the position."""

    def __init__(self, steps: Sequence[str]) -> None:
        if not steps or steps[-1] != DONE or len(set(steps)) != len(steps):
            raise ValueError(f"a flow is distinct step names ending with {DONE!r}: {steps!r}")
        self.steps = tuple(steps)
        self.index = 0

    @property
    def total(self) -> int:
        return len(self.steps) - 1

    @property
    def name(self) -> str:
        return self.steps[self.index]

    def set(self, name: str | None) -> None:
        if name is None or name not in self.steps:
            return
        self.index = max(self.index, self.steps.index(name))

    def position(self) -> dict[str, str]:
        return {"currentstep": str(self.index), "totalsteps": str(self.total)}


class Stream:
    """Writes events as JSON lines to one text stream, one whole line per write (thread-safe)."""

    def __init__(self, out: TextIO, flow: Flow, new_id: Callable[[], str] | None = None) -> None:
        self.out = out
        self.flow = flow
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        self._lock = threading.Lock()

    def emit(self, kind: str, data: dict[str, str]) -> None:
        line = encode(kind, data, self._new_id())
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()

    def step(self, message: str, name: str | None = None) -> None:
        self.flow.set(name)
        self.emit(STEP, {**self.flow.position(), "name": self.flow.name, "message": message})

    def done(self, message: str) -> None:
        self.step(message, DONE)

    def info(self, message: str) -> None:
        self.emit(INFO, {"message": message})

    def warning(self, message: str) -> None:
        self.emit(WARNING, {"message": message})

    def progress(self, artifact: str, done: int, total: int | None) -> None:
        self.emit(DOWNLOAD_PROGRESS, {**self.flow.position(), "artifact": artifact,
                                      "progress": progress_text(done, total), "current": str(done),
                                      "total": str(total) if total else ""})

    def error(self, message: str, exitcode: int, name: str = "", advice: str = "") -> None:
        data = {"message": message, "exitcode": str(exitcode)}
        if name:
            data["name"] = name
        if advice:
            data["advice"] = advice
        self.emit(ERROR, data)
