"""A minimal QMP (QEMU Machine Protocol) client over a unix socket: enough for status, powerdown and quit."""

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
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(msg).encode() + b"\n")
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
