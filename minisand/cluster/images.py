"""`minisand image load|ls|rm|pull`: images in containerd's k8s.io namespace on every node of the profile, the
namespace the CRI (and so the kubelet) uses.

load streams one archive to every node at once (`ctr images import -` reading the SSH channel): a reader thread
copies the source in 1 MiB chunks into one pipe per node, so memory stays bounded whatever the image's size.
ls, rm and pull go through the CRI (`crictl`), so pull uses containerd's registry hosts (the mirrors)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from minisand import guest, ui
from minisand.cluster.context import Context
from minisand.cluster.imagesource import Archive
from minisand.cluster.nodes import driver_for, require_running
from minisand.errors import ExitCode, MinisandError, bad_input
from minisand.images.archive import CHUNK, HINT
from minisand.runner.base import CommandRunner

log = logging.getLogger(__name__)

SOCKET = guest.CRI_SOCKET
CRICTL = ["crictl", "--runtime-endpoint", SOCKET, "--image-endpoint", SOCKET]
CTR = ["ctr", "--address", str(guest.CONTAINERD_SOCK), "--namespace", "k8s.io"]
IMPORT_TIMEOUT = 3600.0
# what ctr says when the archive itself is at fault (the input, not the node)
ARCHIVE_FAULTS = ("unexpected eof", "invalid tar header", "archive/tar", "index.json", "manifest.json",
                  "unrecognized", "not a tar", "unexpected end", "no such file or directory", "invalid character",
                  "gzip", "content digest", "failed to read", "unexpected media type", "does not match")


def node_runners(ctx: Context) -> list[tuple[str, CommandRunner]]:
    """A runner for every node; MACHINE_NOT_RUNNING (one line) unless every node runs."""
    cfg = ctx.store.load(ctx.profile)
    require_running(ctx, cfg)
    out: list[tuple[str, CommandRunner]] = []
    try:
        for machine in cfg.machine_names():
            out.append((machine, driver_for(ctx, cfg, machine).runner()))
    except BaseException:
        close_all(out)
        raise
    return out


def close_all(runners: list[tuple[str, CommandRunner]]) -> None:
    for _, r in runners:
        with contextlib.suppress(Exception):
            r.close()


# -- load ------------------------------------------------------------------------------------------------------
@dataclass
class PipeSink:
    """The writing end of one node's stdin pipe: non-blocking writes that give up once the node's import ended."""

    fd: int
    finished: threading.Event = field(default_factory=threading.Event)
    broken: bool = False

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.broken:
            if self.finished.is_set():
                self.broken = True
                return
            _, ready, _ = select.select([], [self.fd], [], 0.5)
            if not ready:
                continue
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                continue
            except OSError:  # EPIPE: the node's import exited
                self.broken = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def fan_out(src: BinaryIO, sinks: list[PipeSink], on_chunk: Callable[[int], None]) -> int:
    """Copies src to every sink in CHUNK pieces; a sink whose reader ended is dropped. Returns the bytes read."""
    total = 0
    try:
        while any(not s.broken for s in sinks):
            chunk = src.read(CHUNK)
            if not chunk:
                break
            total += len(chunk)
            on_chunk(len(chunk))
            for s in sinks:
                s.send(chunk)
    finally:
        for s in sinks:
            s.close()
    return total


@dataclass
class NodeImport:
    machine: str
    runner: CommandRunner
    platform: str
    code: int | None = None
    out: io.BytesIO = field(default_factory=io.BytesIO)
    err: io.BytesIO = field(default_factory=io.BytesIO)
    failure: BaseException | None = None

    def argv(self) -> list[str]:
        return [*CTR, "images", "import", "--platform", self.platform, "-"]

    def run(self, stdin: BinaryIO, finished: threading.Event) -> None:
        try:
            self.code = self.runner.stream(self.argv(), sudo=True, stdin=stdin, stdout=self.out, stderr=self.err,
                                           timeout=IMPORT_TIMEOUT)
        except BaseException as exc:  # reported by the caller, in the main thread
            self.failure = exc
        finally:
            finished.set()
            with contextlib.suppress(OSError):
                stdin.close()


_SAVED = re.compile(r"^(\S.*?)\s+saved\s*$")  # containerd 2.x (transfer service): "NAME<tab>saved"
_UNPACKING = re.compile(r"^unpacking (\S+) \(")  # containerd 1.7 (or --local): "unpacking NAME (sha256:...)...done"
UNNAMED = re.compile(r"^import[- ]\d{4}[- ]\d{2}[- ]\d{2}(:|$)")  # what ctr calls an image its archive names not


def imported_names(output: str) -> list[str]:
    """The image names ctr import reports, in order, without repeats."""
    names: list[str] = []
    for line in output.replace("\r", "\n").splitlines():
        m = _SAVED.match(line.strip()) or _UNPACKING.match(line.strip())
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names


def describe_failure(node: NodeImport, label: str) -> MinisandError:
    if node.failure is not None:
        if isinstance(node.failure, MinisandError):
            return node.failure
        return MinisandError(f"loading {label} into {node.machine} failed: {node.failure}",
                             hint="`minisand logs` shows the command log", code=ExitCode.GUEST_ERROR)
    text = (node.err.getvalue() or node.out.getvalue()).decode(errors="replace").strip()
    last = text.splitlines()[-1] if text else f"exit code {node.code}"
    if any(marker in text.lower() for marker in ARCHIVE_FAULTS):
        return bad_input(f"containerd on {node.machine} refused {label}: {last[-300:]}", HINT,
                         reason="IMAGE_ARCHIVE_CORRUPT")
    return MinisandError(f"importing {label} on {node.machine} failed: {last[-300:]}",
                         hint="`minisand logs` shows the command log", code=ExitCode.GUEST_ERROR,
                         reason="IMAGE_LOAD_FAILED")


def load(ctx: Context, opener: Callable[[], Archive], platform: str = "linux/amd64") -> list[str]:
    """Streams the archive opener() gives into every node; returns the image names loaded."""
    archive = opener()  # a missing file or a non-tar input is refused before any node is asked
    try:
        runners = node_runners(ctx)
    except BaseException:
        _close_quietly(archive)
        raise
    ctx.attach_log()
    try:
        ui.step(f"Reading {archive.label}" + (f" ({archive.size / 1e6:.1f} MB)" if archive.size else "") + " ...",
                "Reading Image")
        ui.step(f"Loading {archive.label} into {len(runners)} node(s) ...", "Loading Image")
        t0 = time.monotonic()
        try:
            nodes, total, cut_short = _stream(archive, runners, platform)
        finally:
            close_error = _close_quietly(archive)
    finally:
        close_all(runners)
    error = load_error(nodes, close_error, cut_short, archive.label)
    if error is not None:
        raise error
    reported = imported_names(nodes[0].out.getvalue().decode(errors="replace"))
    names = [n for n in reported if not UNNAMED.match(n)]
    seconds = time.monotonic() - t0
    log.info("image load %s: %d bytes to %d node(s) in %.2fs: %s", archive.label, total, len(nodes), seconds, reported)
    if not names:
        raise bad_input(f"{archive.label} names no image, so containerd imported it as "
                        f"{reported[0] if reported else 'nothing'}",
                        "tag the image in the archive (`docker save NAME:TAG`, `skopeo copy ... "
                        "oci-archive:FILE:NAME:TAG`)", reason="IMAGE_ARCHIVE_UNNAMED")
    ui.done(f"Loaded {', '.join(names)} ({total / 1e6:.1f} MB in {seconds:.1f}s) into {len(nodes)} node(s).")
    return names


def load_error(nodes: list[NodeImport], source_error: MinisandError | None, cut_short: bool,
               label: str) -> MinisandError | None:
    """What a load that went wrong reports: the source's own failure (an exporter that died mid-stream: every node
    then got a cut archive) unless a node's import ended first (then the source only saw its pipe close)."""
    failed = [n for n in nodes if n.failure is not None or n.code != 0]
    if source_error is not None and (not failed or not cut_short):
        return source_error
    if failed:
        return describe_failure(failed[0], label)
    return None


def _close_quietly(archive: Archive) -> MinisandError | None:
    try:
        archive.close()
    except MinisandError as exc:
        return exc
    return None


def _stream(archive: Archive, runners: list[tuple[str, CommandRunner]], platform: str
            ) -> tuple[list[NodeImport], int, bool]:
    """The imports, the bytes read, and whether a node's import ended before the source did."""
    nodes = [NodeImport(m, r, platform) for m, r in runners]
    sinks: list[PipeSink] = []
    threads: list[threading.Thread] = []
    for node in nodes:
        r_fd, w_fd = os.pipe()
        os.set_blocking(w_fd, False)
        sink = PipeSink(w_fd)
        sinks.append(sink)
        reader = os.fdopen(r_fd, "rb")
        threads.append(threading.Thread(target=node.run, args=(reader, sink.finished), daemon=True,
                                        name=f"image-load-{node.machine}"))
    for t in threads:
        t.start()
    bar = ui.Progress(archive.label, archive.size)
    try:
        total = fan_out(archive.stream, sinks, bar.update)
    finally:
        bar.close()
        for s in sinks:
            s.close()
        for t in threads:
            t.join(IMPORT_TIMEOUT)
    return nodes, total, any(s.broken for s in sinks)


# -- ls, rm, pull -------------------------------------------------------------------------------------------------
def list_images(ctx: Context) -> list[dict[str, object]]:
    """What the CRI reports on each node, merged by image id: id, repoTags, repoDigests, size, nodes."""
    runners = node_runners(ctx)
    merged: dict[str, dict[str, object]] = {}
    try:
        for machine, runner in runners:
            res = runner.run([*CRICTL, "images", "-o", "json"], sudo=True, timeout=120)
            for img in json.loads(res.out or "{}").get("images", []):
                row = merged.setdefault(img["id"], {"id": img["id"], "repoTags": img.get("repoTags") or [],
                                                    "repoDigests": img.get("repoDigests") or [],
                                                    "size": int(img.get("size") or 0), "nodes": []})
                nodes = row["nodes"]
                assert isinstance(nodes, list)
                nodes.append(machine)
    finally:
        close_all(runners)
    return sorted(merged.values(), key=lambda r: (list(r["repoTags"]) or [""])[0])  # type: ignore[call-overload]


def remove_argv(image: str) -> list[str]:
    """A name is removed as that one name (`ctr images rm`: other tags of the same image stay, as with
    `docker rmi NAME:TAG`); an image id (sha256:..., or its first 12+ hex digits) through the CRI, every tag."""
    from minisand.images.ref import parse_image

    if re.fullmatch(r"(sha256:)?[0-9a-f]{12,64}", image):
        return [*CRICTL, "rmi", image]
    return [*CTR, "images", "rm", str(parse_image(image))]


def remove(ctx: Context, images: list[str]) -> list[str]:
    """Removes images from every node; an image no node has is refused (IMAGE_NOT_FOUND)."""
    argvs = [remove_argv(i) for i in images]  # bad names are refused before any node is asked
    runners = node_runners(ctx)
    ctx.attach_log()
    removed: list[str] = []
    try:
        for image, argv in zip(images, argvs, strict=True):
            hits = 0
            for machine, runner in runners:
                res = runner.run(argv, sudo=True, check=False, timeout=120)
                text = (res.err + res.out).lower()
                if res.ok and "not found" not in text:
                    hits += 1
                elif "not found" not in text and "no such image" not in text:
                    raise MinisandError(f"removing {image} on {machine} failed: {res.err.strip()[-300:]}",
                                        hint="an image a container still uses cannot be removed; delete the pod "
                                             "first", code=ExitCode.GUEST_ERROR, reason="IMAGE_REMOVE_FAILED")
            if not hits:
                raise bad_input(f"no node of profile {ctx.profile!r} has image {image!r}",
                                "`minisand image ls` lists the images", reason="IMAGE_NOT_FOUND")
            removed.append(image)
            ui.done(f"Removed {image}.")
    finally:
        close_all(runners)
    return removed


def pull(ctx: Context, images: list[str]) -> None:
    """Pulls through each node's CRI, so containerd's registry hosts (the profile's mirrors) apply."""
    from minisand.cruntime.pull import Crictl, pull_image
    from minisand.images.ref import parse_image
    from minisand.images.sources import source_candidates

    refs = [parse_image(i) for i in images]  # bad names are refused before any node is asked
    cfg = ctx.store.load(ctx.profile)
    hosts = source_candidates(cfg.mirrors).registry_hosts
    runners = node_runners(ctx)
    ctx.attach_log()
    try:
        for ref in refs:
            for machine, runner in runners:
                ui.step(f"Pulling {ref} on {machine} ...")
                with ui.waiting(f"pulling {ref}"):
                    image_id = pull_image(runner, ref, hosts=hosts, crictl=Crictl(endpoint=SOCKET[len("unix://"):]))
                ui.info(f"{ref}: {image_id}")
    finally:
        close_all(runners)
    ui.done(f"Pulled {', '.join(str(r) for r in refs)}.")


def short_rows(rows: list[dict[str, object]]) -> list[str]:
    out: list[str] = []
    for r in rows:
        tags = r["repoTags"]
        assert isinstance(tags, list)
        out += [str(t) for t in tags] or [f"<none>@{r['id']}"]
    return out


def table(rows: list[dict[str, object]]) -> str:
    lines = [f"{'IMAGE':<60} {'IMAGE ID':<13} {'SIZE':>9}  NODES"]
    for r in rows:
        tags = r["repoTags"]
        nodes = r["nodes"]
        size = r["size"]
        assert isinstance(tags, list) and isinstance(nodes, list) and isinstance(size, int)
        for tag in tags or ["<none>"]:
            image_id = str(r["id"]).removeprefix("sha256:")[:12]
            lines.append(f"{tag!s:<60} {image_id:<13} {size / 1e6:>7.1f}MB  {','.join(nodes)}")
    return "\n".join(lines)
