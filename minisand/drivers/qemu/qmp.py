"""A minimal QMP (QEMU Machine Protocol) client over a unix socket: status, powerdown, quit, and file descriptors
handed to qemu (`getfd` with SCM_RIGHTS) for migration to and from a state file."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except OSError as exc:
            self._sock.close()
            raise QMPError(f"cannot connect to QMP socket {path}: {exc}") from exc
        self._buf = b""
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QMPError("QMP socket closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        data: dict[str, Any] = json.loads(line)
        return data

    def execute(self, command: str, **arguments: Any) -> Any:
        return self._execute(command, arguments, None)

    def send_fd(self, name: str, fd: int) -> None:
        """Hands qemu a copy of the open file descriptor fd under `name` (QMP getfd, the descriptor travels as
        SCM_RIGHTS ancillary data with the command): `migrate uri=fd:NAME` then uses it, no path or shell."""
        self._execute("getfd", {"fdname": name}, fd)

    def _execute(self, command: str, arguments: dict[str, Any], fd: int | None) -> Any:
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        try:
            data = json.dumps(msg).encode() + b"\n"
            if fd is None:
                self._sock.sendall(data)
            else:
                sent = socket.send_fds(self._sock, [data], [fd])
                if sent < len(data):
                    self._sock.sendall(data[sent:])
            while True:
                reply = self._read()
                if "return" in reply:
                    return reply["return"]
                if "error" in reply:
                    raise QMPError(f"{command}: {reply['error'].get('desc', reply['error'])}")
                # asynchronous events ("event" key) are skipped
        except (OSError, ValueError) as exc:
            if command == "quit":
                return None
            raise QMPError(f"{command}: {exc}") from exc

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> QMP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
