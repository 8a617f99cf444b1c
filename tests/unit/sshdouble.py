"""A test double of the guest's sshd: an in-process paramiko server on 127.0.0.1 that accepts one client public
key and runs a handful of built-in commands, so the SSH runner and the ssh driver can be unit-tested without a VM.
(The real counterpart, OpenSSH in minisand's guest, is exercised by the integration tests.)

Commands (the exec string is split with shlex, as a shell would; a leading `sudo -n --` is dropped and recorded):
  echo ARGS...        prints ARGS joined by spaces, exit 0
  argv ARGS...        prints each argument on its own line (proves quoting round-trips), exit 0
  fail CODE MESSAGE   prints MESSAGE on stderr, exits CODE
  cat                 copies stdin to stdout
  true                exit 0
  anything else       "not found" on stderr, exit 127
"""

from __future__ import annotations

import shlex
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import paramiko


@dataclass
class Seen:
    commands: list[list[str]] = field(default_factory=list)
    sudo: list[bool] = field(default_factory=list)


class _Server(paramiko.ServerInterface):
    def __init__(self, client_pub_b64: str, seen: Seen) -> None:
        self.client_pub_b64 = client_pub_b64
        self.seen = seen

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = key.get_base64() == self.client_pub_b64
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=self._run, args=(channel, command.decode()), daemon=True).start()
        return True

    def _run(self, chan: paramiko.Channel, command: str) -> None:
        # paramiko acknowledges the exec request after this callback returns, from its own thread: answering
        # (and closing) before that would race it. The client sends stdin or EOF only once acknowledged.
        deadline = time.monotonic() + 10
        while not (chan.eof_received or chan.recv_ready()) and time.monotonic() < deadline:
            time.sleep(0.005)
        argv = shlex.split(command)
        sudo = argv[:3] == ["sudo", "-n", "--"]
        if sudo:
            argv = argv[3:]
        self.seen.commands.append(argv)
        self.seen.sudo.append(sudo)
        code = 0
        name, args = (argv[0], argv[1:]) if argv else ("", [])
        if name == "echo":
            chan.sendall((" ".join(args) + "\n").encode())
        elif name == "argv":
            chan.sendall("".join(a + "\n" for a in args).encode())
        elif name == "fail":
            chan.sendall_stderr((" ".join(args[1:]) + "\n").encode())
            code = int(args[0])
        elif name == "cat":
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                chan.sendall(data)
        elif name != "true":
            chan.sendall_stderr(f"{name}: not found\n".encode())
            code = 127
        chan.send_exit_status(code)
        chan.close()


@dataclass
class SSHDouble:
    port: int
    host_key: paramiko.PKey
    seen: Seen

    @property
    def host_key_line(self) -> str:
        return f"{self.host_key.get_name()} {self.host_key.get_base64()}"


@contextmanager
def ssh_double(client_pub_line: str, host_key: paramiko.PKey | None = None) -> Iterator[SSHDouble]:
    """Serves on 127.0.0.1 (an ephemeral port) until the block ends; every thread and socket is closed after."""
    key = host_key or paramiko.ECDSAKey.generate()
    seen = Seen()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    transports: list[paramiko.Transport] = []
    server = _Server(client_pub_line.split()[1], seen)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(key)
            transports.append(t)
            try:
                t.start_server(server=server)
            except (paramiko.SSHException, EOFError, OSError):
                t.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield SSHDouble(listener.getsockname()[1], key, seen)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for t in transports:
            t.close()
