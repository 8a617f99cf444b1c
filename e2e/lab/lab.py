"""The Lab: build once, then serve the binary mirror and the registry from loopback; stop everything by PID.

    with Lab() as ep:                       # builds (cached), starts both servers, populates the registry
        ep.binary_url("kubelet"); ep.registry; ep.minisand_flags()

or lab = Lab(...); ep = lab.start(); ...; lab.stop(). `python -m e2e.lab up/down` drives the same class.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import e2e
from e2e.lab import procs, registry
from e2e.lab.builder import BuildManifest, build, load_manifest
from e2e.lab.cache import LabCache, log
from e2e.lab.e2etest import DEFAULT_VARIANT
from e2e.lab.endpoints import LabEndpoints, make_endpoints
from e2e.lab.errors import LabError
from e2e.lab.extras import DEFAULT_PIECES
from e2e.lab.layout import routes
from e2e.lab.versions import Versions
from minisand.fsutil import atomic_write_text

BINSERVER_MODULE = "e2e.lab.binserver"
NSFORWARD_MODULE = "e2e.lab.nsforward"


@dataclass(frozen=True)
class HttpRecord:
    method: str
    path: str
    status: int
    bytes: int
    range: str | None
    fault: str | None


def read_binary_log(path: Path) -> list[HttpRecord]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        out.append(HttpRecord(d["method"], d["path"], int(d.get("status", 0)), int(d.get("bytes", 0)),
                              d.get("range"), d.get("fault")))
    return out


class Lab:
    def __init__(self, *, versions: Versions | None = None, cache: LabCache | None = None,
                 run_dir: Path | None = None, http_port: int = 0, registry_port: int = 0,
                 detach: bool = False, build_if_missing: bool = True, pieces: tuple[str, ...] = DEFAULT_PIECES,
                 e2e_variant: str = DEFAULT_VARIANT) -> None:
        self.versions = versions or Versions()
        self.pieces = pieces
        self.e2e_variant = e2e_variant
        self.cache = cache or LabCache.default()
        self.run_dir = (run_dir or self.cache.run / f"lab-{os.getpid()}-{int(time.time())}").absolute()
        self.http_port = http_port
        self.registry_port = registry_port
        self.detach = detach
        self.build_if_missing = build_if_missing
        self.endpoints: LabEndpoints | None = None
        self._markers: dict[str, str] = {}
        self._pids: dict[str, int] = {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # --- building -------------------------------------------------------------------------------------
    def build(self) -> BuildManifest:
        return build(self.cache, self.versions, self.pieces, self.e2e_variant)

    def manifest(self) -> BuildManifest:
        found = load_manifest(self.cache, self.versions, self.pieces)
        if self.build_if_missing:
            return self.build()  # incremental: every step is cached by its recipe, so a changed recipe rebuilds
        if found is not None and all(Path(i.layout).is_dir() for i in found.images):
            return found
        raise LabError(f"the lab for {self.versions.kubernetes} is not built", "run: python -m e2e.lab build")

    def e2e_test(self) -> Path:
        """The cached e2e.test of this lab's Kubernetes version (a host program; built when missing)."""
        path = self.manifest().e2e_test
        if not path:
            raise LabError("this lab is built without the conformance piece",
                           "build it with pieces=PIECES (scripts/test --lab-pieces)")
        return Path(path)

    # --- files of this run ----------------------------------------------------------------------------
    @property
    def binary_access_log(self) -> Path:
        return self.run_dir / "binserver-access.jsonl"

    @property
    def registry_log(self) -> Path:
        return self.run_dir / "registry.log"

    @property
    def faults_file(self) -> Path:
        return self.run_dir / "faults.json"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    # --- life cycle -----------------------------------------------------------------------------------
    def start(self) -> LabEndpoints:
        if self.endpoints is not None:
            return self.endpoints
        manifest = self.manifest()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            http_port = self._start_binserver(manifest)
            registry_port = self._start_registry()
            ep = make_endpoints(manifest, http_port, registry_port)
            self.endpoints = replace(ep, binary_access_log=str(self.binary_access_log),
                                     registry_log=str(self.registry_log), pids=dict(self.pids))
            self._populate(manifest)
            self.write_state()
        except BaseException:
            self.stop()
            raise
        log(f"lab up: binary mirror {self.endpoints.binary_mirror}, registry {self.endpoints.registry}")
        return self.endpoints

    def _start_binserver(self, manifest: BuildManifest) -> int:
        port = self.http_port or procs.free_port()
        routes_file = self.run_dir / "routes.json"
        atomic_write_text(routes_file, json.dumps(routes(manifest, self.run_dir / "text"), indent=1))
        argv = [sys.executable, "-m", BINSERVER_MODULE, "--routes", str(routes_file), "--port", str(port),
                "--access-log", str(self.binary_access_log), "--faults", str(self.faults_file)]
        env = dict(os.environ, PYTHONPATH=str(Path(e2e.__file__).resolve().parent.parent))
        logfile = self.run_dir / "binserver.log"
        child = procs.spawn(argv, logfile, env=env, detach=self.detach)
        self._remember("binserver", child, str(routes_file))
        procs.wait_listening(port, child.pid, logfile, "the binary mirror")
        self.http_port = port
        return port

    def _start_registry(self) -> int:
        port = self.registry_port or procs.free_port()
        config = self.run_dir / "registry.yml"
        self.cache.registry_storage.mkdir(parents=True, exist_ok=True)
        atomic_write_text(config, registry.render_config(self.cache.registry_storage, port))
        child = procs.spawn(registry.registry_argv(config), self.registry_log, detach=self.detach)
        self._remember("registry", child, str(config))
        procs.wait_listening(port, child.pid, self.registry_log, "docker-registry")
        self.registry_port = port
        return port

    def expose_in_netns(self, netns: str, *, address: str = "127.0.0.1", http_port: int | None = None,
                        registry_port: int | None = None) -> LabEndpoints:
        """Make the running lab reachable inside a network namespace the caller created (like qemu's guestfwd
        for a VM): address:http_port and address:registry_port there relay to the servers here. Returns the
        endpoints as seen from inside the namespace. Stopped by stop() with everything else."""
        if self.endpoints is None:
            raise LabError("the lab is not running", "call start() first")
        http = (address, http_port or self.http_port)
        reg = (address, registry_port or self.registry_port)
        name = f"nsforward-{Path(netns).name}"
        logfile = self.run_dir / f"{name}.log"
        argv = [sys.executable, "-m", NSFORWARD_MODULE, "--netns", netns,
                "--forward", f"{http[0]}:{http[1]}=127.0.0.1:{self.http_port}",
                "--forward", f"{reg[0]}:{reg[1]}=127.0.0.1:{self.registry_port}"]
        env = dict(os.environ, PYTHONPATH=str(Path(e2e.__file__).resolve().parent.parent))
        child = procs.spawn(argv, logfile, env=env, detach=self.detach)
        self._remember(name, child, netns)
        procs.wait_for_line(logfile, "forwarding ", child.pid, "the netns forwarder")
        return self.endpoints.rehost(f"{http[0]}:{http[1]}", f"{reg[0]}:{reg[1]}")

    def _populate(self, manifest: BuildManifest) -> None:
        assert self.endpoints is not None
        start = time.monotonic()
        registry.populate(self.endpoints.registry,
                          [registry.PushItem(i.layout, i.tag, i.digest, i.repositories, i.aliases)
                           for i in manifest.images])
        self.cache.record_timing("registry populate", time.monotonic() - start, cached=False)

    def _remember(self, name: str, child: subprocess.Popen[bytes], marker: str) -> None:
        self._markers[name] = marker
        self._pids[name] = child.pid
        self._children[name] = child

    @property
    def pids(self) -> dict[str, int]:
        return dict(self._pids)

    def stop(self) -> list[str]:
        """Stop every process this lab started (by PID, checked against its command line). Returns leftovers."""
        leftovers = [name for name, pid in self._pids.items()
                     if not procs.stop(pid, self._markers[name], child=self._children.get(name))]
        self._pids.clear()
        self._children.clear()
        self.endpoints = None
        if self.state_file.exists():
            self.state_file.unlink()
        return leftovers

    def __enter__(self) -> LabEndpoints:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- state file (for `python -m e2e.lab up/down`) ---------------------------------------------------
    def write_state(self, path: Path | None = None) -> Path:
        assert self.endpoints is not None
        target = path or self.state_file
        state = {"run_dir": str(self.run_dir), "pids": self._pids, "markers": self._markers,
                 "endpoints": json.loads(self.endpoints.to_json())}
        atomic_write_text(target, json.dumps(state, indent=2))
        return target

    # --- what happened --------------------------------------------------------------------------------
    def binary_requests(self) -> list[HttpRecord]:
        return read_binary_log(self.binary_access_log)

    def registry_requests(self) -> list[registry.RegistryRecord]:
        return registry.parse_access_log(self.registry_log)

    def inject_fault(self, path: str, **fault: Any) -> None:
        """Make the binary mirror misbehave for path: cut_after=N bytes, status=503, body="...", times=K."""
        faults = json.loads(self.faults_file.read_text()) if self.faults_file.exists() else {}
        faults[path] = fault
        atomic_write_text(self.faults_file, json.dumps(faults))

    def clear_faults(self) -> None:
        if self.faults_file.exists():
            self.faults_file.unlink()


def stop_from_state(state_file: Path) -> list[str]:
    """Stop the processes listed in a state file written by `up`. Returns the names that would not stop."""
    state = json.loads(state_file.read_text())
    leftovers = [name for name, pid in state["pids"].items()
                 if not procs.stop(int(pid), state["markers"][name])]
    state_file.unlink()
    return leftovers


def status_from_state(state_file: Path) -> dict[str, bool]:
    state = json.loads(state_file.read_text())
    return {name: procs.alive(int(pid), state["markers"][name]) for name, pid in state["pids"].items()}
