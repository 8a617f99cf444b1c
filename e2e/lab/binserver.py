"""The lab's binary mirror: a small HTTP server (dl.k8s.io / gVisor bucket layouts) with Range support.

Run as `python -m e2e.lab.binserver --routes ROUTES.json --port P --access-log LOG.jsonl [--faults FAULTS.json]`.
ROUTES maps URL paths to files. Every request is appended to the access log as one JSON object (method, path,
status, bytes sent, range). FAULTS (re-read on every request, so a test can change it while the server runs)
injects failures at the true external boundary: {"/path": {"cut_after": N | "status": 503 | "body": "...",
"times": K}}; `times` counts down and the fault disappears at 0 (absent: forever).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1 << 16


class State:
    def __init__(self, routes: dict[str, str], access_log: Path, faults: Path | None) -> None:
        self.routes = routes
        self.access_log = access_log
        self.faults = faults
        self.lock = threading.Lock()

    def log(self, record: dict[str, Any]) -> None:
        line = json.dumps(record) + "\n"
        with self.lock, self.access_log.open("a") as f:
            f.write(line)

    def take_fault(self, path: str) -> dict[str, Any] | None:
        """The fault for path (and count it down), or None."""
        if self.faults is None:
            return None
        with self.lock:
            try:
                faults = json.loads(self.faults.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return None
            fault = faults.get(path)
            if not isinstance(fault, dict):
                return None
            if "times" in fault:
                if int(fault["times"]) <= 0:
                    return None
                fault["times"] = int(fault["times"]) - 1
                tmp = self.faults.with_suffix(".tmp")
                tmp.write_text(json.dumps(faults))
                tmp.replace(self.faults)
            return dict(fault)


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) inclusive; None to serve everything; "unsatisfiable" for 416."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multiple or malformed ranges: serve the whole entity (RFC 9110 allows it)
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else "unsatisfiable"
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        return "unsatisfiable"
    return first, min(last, size - 1)


class Handler(BaseHTTPRequestHandler):
    server_version = "minisand-lab-mirror/1"
    protocol_version = "HTTP/1.1"
    state: State  # set on the subclass made by serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the JSON access log replaces the stderr log

    def do_GET(self) -> None:
        self.respond(body=True)

    def do_HEAD(self) -> None:
        self.respond(body=False)

    def respond(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        record: dict[str, Any] = {"time": time.time(), "method": self.command, "path": path,
                                  "range": self.headers.get("Range"), "bytes": 0}
        try:
            record.update(self.serve(path, body))
        finally:
            self.state.log(record)

    def send_simple(self, status: int, text: str, body: bool) -> dict[str, Any]:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)
        return {"status": status, "bytes": len(data) if body else 0}

    def serve(self, path: str, body: bool) -> dict[str, Any]:
        fault = self.state.take_fault(path)
        if fault and "status" in fault:
            return {**self.send_simple(int(fault["status"]), "injected fault\n", body), "fault": "status"}
        if fault and "body" in fault:
            return {**self.send_simple(200, str(fault["body"]), body), "fault": "body"}
        target = self.state.routes.get(path)
        if target is None or not Path(target).is_file():
            return self.send_simple(404, "not found\n", body)
        return self.send_file(Path(target), body, int(fault["cut_after"]) if fault and "cut_after" in fault else None)

    def send_file(self, file: Path, body: bool, cut_after: int | None) -> dict[str, Any]:
        st = file.stat()
        size = st.st_size
        etag = f'"{size:x}-{st.st_mtime_ns:x}"'
        wanted = parse_range(self.headers.get("Range"), size)
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range != etag:
            wanted = None
        if wanted == "unsatisfiable":
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return {"status": 416}
        first, last = wanted if isinstance(wanted, tuple) else (0, size - 1)
        status = HTTPStatus.PARTIAL_CONTENT if isinstance(wanted, tuple) else HTTPStatus.OK
        length = last - first + 1 if size else 0
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
        self.send_header("Content-Length", str(length))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if not body:
            return {"status": int(status)}
        sent = self.copy(file, first, length, cut_after)
        result: dict[str, Any] = {"status": int(status), "bytes": sent}
        if cut_after is not None and sent < length:
            result["fault"] = "cut"
            self.close_connection = True
        return result

    def copy(self, file: Path, offset: int, length: int, cut_after: int | None) -> int:
        limit = length if cut_after is None else min(length, cut_after)
        sent = 0
        with file.open("rb") as f:
            f.seek(offset)
            while sent < limit:
                chunk = f.read(min(CHUNK, limit - sent))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
        return sent


def serve(routes: dict[str, str], port: int, access_log: Path, faults: Path | None,
          host: str = "127.0.0.1") -> ThreadingHTTPServer:
    state = State(routes, access_log, faults)
    handler = type("LabHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e2e.lab.binserver")
    parser.add_argument("--routes", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--access-log", type=Path, required=True)
    parser.add_argument("--faults", type=Path)
    args = parser.parse_args(argv)
    routes = json.loads(args.routes.read_text())
    server = serve(routes, args.port, args.access_log, args.faults)
    print(f"serving on 127.0.0.1:{server.server_address[1]} (pid {os.getpid()})", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
