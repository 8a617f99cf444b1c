"""The interactive shell of `minisand ssh`: a PTY over the SSH connection, the local terminal in raw mode,
window-size changes forwarded."""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import termios
import tty
from types import FrameType

from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandRunner
from minisand.runner.local import LocalRunner
from minisand.runner.logged import LoggedRunner
from minisand.runner.ssh import SSHRunner


def _unwrap(runner: CommandRunner) -> CommandRunner:
    while isinstance(runner, LoggedRunner):
        runner = runner.inner
    return runner


def interactive(runner: CommandRunner) -> int:
    if not sys.stdin.isatty():
        raise MinisandError("an interactive shell needs a terminal on stdin",
                            hint="run a command instead: `minisand ssh -- CMD ...`", code=ExitCode.BAD_INPUT)
    inner = _unwrap(runner)
    if isinstance(inner, LocalRunner):
        import subprocess

        shell = os.environ.get("SHELL", "/bin/bash")
        return subprocess.call([*inner.prefix, shell])
    if not isinstance(inner, SSHRunner):
        raise MinisandError("this driver has no interactive shell", code=ExitCode.BAD_INPUT)
    cols, rows = shutil.get_terminal_size()
    chan = inner.open_shell(os.environ.get("TERM", "xterm-256color"), cols, rows)
    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin)

    def on_resize(_sig: int, _frame: FrameType | None) -> None:
        c, r = shutil.get_terminal_size()
        chan.resize_pty(width=c, height=r)

    old_handler = signal.signal(signal.SIGWINCH, on_resize)
    try:
        tty.setraw(stdin)
        while True:
            readable, _, _ = select.select([chan, stdin], [], [], 1.0)
            if chan in readable:
                data = chan.recv(65536)
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if stdin in readable:
                data = os.read(stdin, 65536)
                if not data:
                    chan.shutdown_write()
                else:
                    chan.sendall(data)
            if chan.exit_status_ready() and not chan.recv_ready():
                break
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old_handler)
    code = chan.recv_exit_status()
    chan.close()
    return code if code >= 0 else 255
