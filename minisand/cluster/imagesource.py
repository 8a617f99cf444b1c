"""Where `minisand image load` reads an image archive on the host: a file, stdin (`-`), or an image by name from
the host's docker, podman or containerd (`ctr images export`), whichever is present and has it. Every source is
a stream; nothing is read into memory whole."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from minisand import guest, hosttools
from minisand.errors import ExitCode, MinisandError, bad_input
from minisand.images.archive import HINT, open_checked

ENGINES = ("docker", "podman", "containerd")
DEFAULT_CONTAINERD_SOCKET = str(guest.CONTAINERD_SOCK)  # containerd's default: the guest's socket is the same path
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".oci", ".docker")
PROBE_TIMEOUT = 20.0


@dataclass
class Archive:
    label: str  # what the user named: a path, "stdin", "docker:nginx:1.27"
    stream: BinaryIO  # checked tar bytes
    size: int | None  # bytes to read from the source (for progress), None when unknown
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Releases the source; raises when an exporter (docker save, ...) failed."""
        errors: list[MinisandError] = []
        for closer in reversed(self._closers):
            try:
                closer()
            except MinisandError as exc:
                errors.append(exc)
        self._closers.clear()
        if errors:
            raise errors[0]


def containerd_socket() -> str:
    """The host containerd's socket: $CONTAINERD_ADDRESS (as ctr reads it), else containerd's default."""
    return os.environ.get("CONTAINERD_ADDRESS") or DEFAULT_CONTAINERD_SOCKET


def looks_like_path(arg: str) -> bool:
    return arg.startswith(("/", "./", "../", "~")) or arg.endswith(ARCHIVE_SUFFIXES) or os.sep + os.sep in arg


def open_source(arg: str, *, stdin: BinaryIO | None = None, engine: str | None = None,
                namespace: str = "default", platform: str = "linux/amd64") -> Archive:
    """The archive arg names; raises BAD_INPUT (one line) for a missing file, an empty or non-tar input, or an
    image no host engine has."""
    if arg == "-":
        src = stdin if stdin is not None else sys.stdin.buffer
        if hasattr(src, "isatty") and src.isatty():
            raise bad_input("`image load -` reads the archive from stdin, which is a terminal",
                            "pipe it in: `docker save IMAGE | minisand image load -`")
        return Archive("stdin", open_checked(src, "stdin"), None)
    path = Path(arg).expanduser()
    if engine is None and path.exists():
        return _from_file(path)
    if engine is None and looks_like_path(arg):
        raise bad_input(f"no such file: {arg}", "give an existing archive file, `-` for stdin, or an image name")
    return _from_engine(arg, engine, namespace, platform)


def _from_file(path: Path) -> Archive:
    if path.is_dir():
        raise bad_input(f"{path} is a directory", f"pack it: `tar -C {path} -cf image.tar .` ({HINT})")
    try:
        f = path.open("rb")
    except OSError as exc:
        raise bad_input(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from None
    try:
        stream = open_checked(f, str(path))
    except BaseException:
        f.close()
        raise
    return Archive(str(path), stream, path.stat().st_size, [f.close])


# -- host engines ---------------------------------------------------------------------------------------------------
def _docker_like(program: str) -> tuple[list[str], list[str]] | None:
    """(probe argv, save argv prefix) for docker or podman."""
    if program == "docker":
        return ["docker", "image", "inspect", "--format", "{{.Id}}"], ["docker", "save"]
    return ["podman", "image", "inspect", "--format", "{{.Id}}"], ["podman", "save", "--format", "docker-archive"]


def _probe(argv: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 255, str(exc)
    return proc.returncode, (proc.stderr or proc.stdout).strip()


def engine_has(engine: str, ref: str, namespace: str) -> tuple[bool, str]:
    """(found, why not): asks one host engine whether it holds the image."""
    if engine == "containerd":
        if not hosttools.locate("ctr"):
            return False, "ctr is not installed"
        socket = containerd_socket()
        if not Path(socket).exists():
            return False, f"no containerd socket at {socket}"
        code, out = _probe(["ctr", "--address", socket, "--namespace", namespace, "images", "ls", "-q"])
        if code != 0:
            return False, out.splitlines()[-1] if out else f"ctr exited {code}"
        return ref in out.split(), f"not in containerd's {namespace!r} namespace"
    if not hosttools.locate(engine):
        return False, f"{engine} is not installed"
    probe, _ = _docker_like(engine) or ([], [])
    code, out = _probe([*probe, ref])
    if code == 0:
        return True, ""
    low = out.lower()
    if "cannot connect" in low or "daemon running" in low or "connection refused" in low:
        return False, f"{engine} has no running engine"
    return False, f"not in {engine}"


def _export_argv(engine: str, ref: str, namespace: str, platform: str) -> list[str]:
    if engine == "containerd":
        return ["ctr", "--address", containerd_socket(), "--namespace", namespace, "images", "export", "--platform",
                platform, "-", ref]
    _, save = _docker_like(engine) or ([], [])
    return [*save, ref]


def _from_engine(arg: str, engine: str | None, namespace: str, platform: str) -> Archive:
    from minisand.images.ref import parse_image

    try:
        image = parse_image(arg)
    except MinisandError:
        raise bad_input(f"{arg!r} is neither a file nor an image name",
                        "give an archive file, `-` for stdin, or an image name such as web:1.0") from None
    if engine is not None and engine not in ENGINES:
        raise bad_input(f"--daemon {engine!r} is not one of {', '.join(ENGINES)}", "e.g. --daemon containerd")
    tried: list[str] = []
    for name in (engine,) if engine else ENGINES:
        ref = str(image) if name == "containerd" else arg
        found, why = engine_has(name, ref, namespace)
        if found:
            return _spawn(name, _export_argv(name, ref, namespace, platform), f"{name}:{arg}")
        tried.append(f"{name}: {why}")
    raise bad_input(f"image {arg!r} is not a file and no host engine has it ({'; '.join(tried)})",
                    "build or pull it on the host first, or give an archive file (`docker save`, "
                    "`ctr images export`)", reason="IMAGE_NOT_FOUND")


def _spawn(engine: str, argv: list[str], label: str) -> Archive:
    err = tempfile.TemporaryFile()  # noqa: SIM115  # closed by the Archive's closer
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    out = cast(BinaryIO, proc.stdout)

    def finish() -> None:
        out.close()
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        err.seek(0)
        detail = err.read().decode(errors="replace").strip().splitlines()
        err.close()
        if code != 0:
            raise MinisandError(f"`{' '.join(argv)}` failed with exit code {code}"
                                + (f": {detail[-1]}" if detail else ""),
                                hint=f"check that {engine} can export the image", code=ExitCode.BAD_INPUT,
                                reason="IMAGE_EXPORT_FAILED")

    try:
        stream = open_checked(out, f"the archive {engine} exported")
    except BaseException:
        with contextlib.suppress(MinisandError):
            proc.kill()
            finish()
        raise
    return Archive(label, stream, None, [finish])
