"""Expose the lab inside a network namespace, the way qemu's guestfwd exposes it to a VM.

    python -m e2e.lab.nsforward --netns /run/netns/NAME --forward 127.0.0.1:5000=127.0.0.1:41234 [...]

Each listening socket is created inside the namespace (the main thread enters it with setns(2) just for the
bind, then returns); every accepted connection is relayed to the target address in the namespace the forwarder
was started in (the host's loopback, where the lab's servers listen). Traffic never leaves this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import socket
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
BUFFER = 1 << 16


def setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def split_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def listen_in(netns: Path, address: tuple[str, int]) -> socket.socket:
    """A listening TCP socket bound inside netns (this thread returns to its own namespace afterwards)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(str(netns), os.O_RDONLY)
    try:
        setns(target)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(64)
        finally:
            setns(own)
    finally:
        os.close(own)
        os.close(target)
    return sock


def pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until EOF, then half-close dst (the other direction carries on)."""
    try:
        while data := src.recv(BUFFER):
            dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def relay(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
    back.start()
    pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, target), daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e2e.lab.nsforward")
    parser.add_argument("--netns", type=Path, required=True, help="e.g. /run/netns/NAME")
    parser.add_argument("--forward", action="append", required=True, metavar="LISTEN=TARGET",
                        help="HOST:PORT inside the namespace = HOST:PORT outside it")
    args = parser.parse_args(argv)
    pairs = []
    for spec in args.forward:
        listen, _, target = spec.partition("=")
        pairs.append((listen_in(args.netns, split_address(listen)), split_address(target)))
    print(f"forwarding {', '.join(args.forward)} into {args.netns} (pid {os.getpid()})", flush=True)
    threads = [threading.Thread(target=serve, args=pair, daemon=True) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
