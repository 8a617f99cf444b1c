"""Runs commands in the guest over one persistent paramiko connection, with the guest's host key pinned.

The remote side of SSH always receives a command *string*; we build it with shlex.join from an argv list, so
every argument is quoted and nothing from the user is ever interpreted by the remote shell."""

from __future__ import annotations

import logging
import secrets
import select
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

from minisand.errors import ExitCode, MinisandError
from minisand.runner.base import CommandError, RunResult, sudo_argv, write_file_argv

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SSHTarget:
    host: str
    port: int
    user: str
    key_path: Path
    host_key: str | None  # "ssh-ed25519 AAAA..." pinned; None only for trust-on-first-use (ssh driver)

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def parse_host_key(line: str) -> tuple[str, str]:
    parts = line.split()
    if len(parts) < 2:
        raise ValueError(f"not an OpenSSH public key: {line!r}")
    return parts[0], parts[1]


class SSHRunner:
    def __init__(self, target: SSHTarget, *, connect_timeout: float = 120.0,
                 on_new_host_key: Callable[[str], None] | None = None) -> None:
        self.target = target
        self._connect_timeout = connect_timeout
        self._on_new_host_key = on_new_host_key
        if not target.host_key and on_new_host_key is None:
            raise MinisandError(f"no host key is pinned for {target.address}",
                                hint="run `minisand start`: it pins the key before anything connects",
                                code=ExitCode.SSH_ERROR)
        self._client: paramiko.SSHClient | None = None
        self._pkey: paramiko.PKey | None = None
        self._is_root = target.user == "root"
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"the guest ({self.target.address})"

    # -- connection -------------------------------------------------------------------------------------
    def _connect_once(self) -> paramiko.SSHClient:
        import paramiko

        client = paramiko.SSHClient()
        name = _known_hosts_name(self.target.host, self.target.port)
        recorded: list[str] = []
        if self.target.host_key:
            ktype, kb64 = parse_host_key(self.target.host_key)
            client.get_host_keys().add(name, ktype, paramiko.PKey.from_type_string(ktype, _b64(kb64)))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            client.set_missing_host_key_policy(_record_policy(recorded))
        pkey = self._pkey or load_private_key(self.target.key_path)
        self._pkey = pkey
        client.connect(self.target.host, port=self.target.port, username=self.target.user, pkey=pkey,
                       look_for_keys=False, allow_agent=False, timeout=10, banner_timeout=30,
                       auth_timeout=15, transport_factory=_gcm_first)
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        if recorded and self._on_new_host_key:
            self._on_new_host_key(recorded[0])
        return client

    def connect(self) -> paramiko.SSHClient:
        with self._lock:
            if self._client is not None:
                transport = self._client.get_transport()
                if transport is not None and transport.is_active():
                    return self._client
                self._client.close()
                self._client = None
            self._client = self._connect_with_retries()
            return self._client

    def _connect_with_retries(self) -> paramiko.SSHClient:
        import paramiko
        import tenacity

        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        retryable = (OSError, EOFError, paramiko.SSHException)

        def is_retryable(exc: BaseException) -> bool:
            if isinstance(exc, paramiko.BadHostKeyException | paramiko.AuthenticationException):
                return False
            return isinstance(exc, retryable)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(self._connect_timeout),
            wait=tenacity.wait_exponential(multiplier=0.25, max=2.0),
            retry=tenacity.retry_if_exception(is_retryable),
            reraise=True,
            before_sleep=lambda rs: log.debug("ssh connect to %s: attempt %d failed: %s", self.target.address,
                                              rs.attempt_number, rs.outcome.exception() if rs.outcome else ""),
        )
        self._pkey = load_private_key(self.target.key_path)  # a bad key file is not worth a retry
        try:
            return retrying(self._connect_once)
        except paramiko.BadHostKeyException as exc:
            raise MinisandError(
                f"the guest at {self.target.host}:{self.target.port} presented host key "
                f"{exc.key.get_name()} {exc.key.fingerprint} which is not the pinned key",
                hint="if the machine was recreated, run `minisand delete` and `minisand start`; otherwise "
                     "something else answers on that port",
                code=ExitCode.HOST_KEY_MISMATCH) from None
        except paramiko.AuthenticationException:
            raise MinisandError(f"the guest at {self.target.address} refused minisand's key {self.target.key_path}",
                                hint="`minisand delete` and `minisand start` recreate the machine with a fresh key",
                                code=ExitCode.SSH_ERROR) from None
        except retryable as exc:
            raise MinisandError(f"could not reach the guest over SSH at {self.target.address} within "
                                f"{self._connect_timeout:.0f}s: {exc or type(exc).__name__}",
                                hint="`minisand logs` shows the serial console", code=ExitCode.SSH_ERROR) from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- commands ---------------------------------------------------------------------------------------
    def _open(self, argv: Sequence[str], sudo: bool, env: Mapping[str, str] | None = None,
              pty: bool = False) -> tuple[paramiko.Channel, list[str]]:
        if env:
            argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
        full = sudo_argv(argv, sudo, self._is_root)
        client = self.connect()
        transport = client.get_transport()
        if transport is None:
            raise MinisandError("SSH connection to the guest was lost", code=ExitCode.SSH_ERROR)
        chan = transport.open_session(timeout=30)
        if pty:
            chan.get_pty()
        chan.exec_command(shlex.join(full))
        return chan, full

    def run(self, argv: Sequence[str], *, sudo: bool = False, input: bytes | None = None,
            timeout: float | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> RunResult:
        start = time.monotonic()
        chan, full = self._open(argv, sudo, env)
        out: list[bytes] = []
        err: list[bytes] = []
        writer = None
        if input is not None:
            writer = threading.Thread(target=_send_all, args=(chan, input), daemon=True)
            writer.start()
        else:
            chan.shutdown_write()
        code = _pump(chan, out.append, err.append, timeout, full)
        if writer is not None:
            writer.join(timeout=5)
        result = RunResult(tuple(full), code, b"".join(out), b"".join(err), time.monotonic() - start)
        if check and not result.ok:
            raise CommandError(result, self.where)
        return result

    def stream(self, argv: Sequence[str], *, sudo: bool = False, stdin: BinaryIO | None = None,
               stdout: BinaryIO, stderr: BinaryIO, timeout: float | None = None) -> int:
        chan, full = self._open(argv, sudo)
        if stdin is not None:
            threading.Thread(target=_copy_stdin, args=(stdin, chan), daemon=True).start()
        else:
            chan.shutdown_write()

        def w(dst: BinaryIO) -> Callable[[bytes], None]:
            def write(b: bytes) -> None:
                dst.write(b)
                dst.flush()
            return write

        return _pump(chan, w(stdout), w(stderr), timeout, full)

    def write_file(self, dest: PurePosixPath, data: bytes, *, mode: int = 0o644, sudo: bool = True) -> None:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        self.run(write_file_argv(dest, tmp, mode), sudo=sudo, input=data, timeout=600)

    def read_file(self, path: PurePosixPath, *, sudo: bool = True) -> bytes:
        return self.run(["cat", "--", str(path)], sudo=sudo, timeout=600).stdout

    def open_shell(self, term: str, cols: int, rows: int) -> paramiko.Channel:
        client = self.connect()
        transport = client.get_transport()
        if transport is None:
            raise MinisandError("SSH connection to the guest was lost", code=ExitCode.SSH_ERROR)
        chan = transport.open_session(timeout=30)
        chan.get_pty(term=term, width=cols, height=rows)
        chan.invoke_shell()
        return chan


def load_private_key(path: Path, code: ExitCode = ExitCode.SSH_ERROR) -> paramiko.PKey:
    """An RSA, ECDSA or ed25519 private key (OpenSSH or PEM format) without a passphrase."""
    import paramiko
    from paramiko.pkey import UnknownKeyType

    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.PasswordRequiredException, TypeError) as exc:
        if isinstance(exc, TypeError) and "password" not in str(exc).lower():
            raise MinisandError(f"the SSH key {path} is not a private key minisand can read ({exc})",
                                hint="use an RSA, ECDSA or ed25519 private key file", code=code) from None
        raise MinisandError(f"the SSH key {path} is protected by a passphrase",
                            hint="use a key without a passphrase (minisand never prompts for one)", code=code) from None
    except (paramiko.SSHException, UnknownKeyType, ValueError, UnicodeDecodeError) as exc:
        raise MinisandError(f"the SSH key {path} is not a private key minisand can read ({exc or type(exc).__name__})",
                            hint="use an RSA, ECDSA or ed25519 private key file", code=code) from None
    except OSError as exc:
        raise MinisandError(f"cannot read the SSH key {path}: {exc.strerror or exc}",
                            hint="check the path and its permissions", code=code) from None


def _gcm_first(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """A transport that offers AES-GCM first (paramiko offers CTR with HMAC first): an AEAD cipher needs no
    separate MAC, which moves data into an emulated guest ~20-40% faster (measured: 5.3 against 3.8 MB/s). Servers
    without it negotiate the next cipher as before."""
    import paramiko

    transport = paramiko.Transport(sock, **kwargs)
    opts = transport.get_security_options()
    gcm = tuple(c for c in opts.ciphers if c.endswith("-gcm@openssh.com"))
    opts.ciphers = (*gcm, *(c for c in opts.ciphers if c not in gcm))
    return transport


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def _send_all(chan: paramiko.Channel, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            n = chan.send(bytes(view[:65536]))
            if n <= 0:
                break
            view = view[n:]
        chan.shutdown_write()
    except (OSError, EOFError):
        pass


def _copy_stdin(src: BinaryIO, chan: paramiko.Channel) -> None:
    try:
        while True:
            chunk = src.read1(65536) if hasattr(src, "read1") else src.read(65536)
            if not chunk:
                break
            chan.sendall(chunk)
        chan.shutdown_write()
    except (OSError, EOFError):
        pass


def _pump(chan: paramiko.Channel, on_out: Callable[[bytes], None], on_err: Callable[[bytes], None],
          timeout: float | None, argv: Sequence[str]) -> int:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        drained = False
        while chan.recv_ready():
            on_out(chan.recv(65536))
            drained = True
        while chan.recv_stderr_ready():
            on_err(chan.recv_stderr(65536))
            drained = True
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        if chan.closed and not drained:
            break
        if deadline is not None and time.monotonic() > deadline:
            chan.close()
            raise MinisandError(f"`{shlex.join(argv)}` timed out after {timeout:.0f}s in the guest",
                                hint="`minisand logs` shows the command log", code=ExitCode.GUEST_ERROR)
        if not drained:
            try:
                select.select([chan], [], [], 0.5)
            except (OSError, ValueError):
                time.sleep(0.05)
    code = chan.recv_exit_status()
    chan.close()
    return code if code >= 0 else 255


def _record_policy(sink: list[str]) -> paramiko.MissingHostKeyPolicy:
    """Trust on first use (ssh driver only): accept the key once and hand it to the caller to pin."""
    import paramiko

    class RecordPolicy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            sink.append(f"{key.get_name()} {key.get_base64()}")

    return RecordPolicy()
