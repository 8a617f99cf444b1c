"""One error type for everything a user can cause or meet, with stable reason ids and exit codes.

The CLI maps a MinisandError to one line on stderr (message and hint) and its exit code; nothing else in
minisand prints tracebacks for expected failures.
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes, documented in the README. Stable: scripts may depend on them."""

    OK = 0
    FAILURE = 1  # an unexpected internal error (a bug): the log has the traceback
    USAGE = 2  # the command line could not be parsed (typer/click)
    BAD_INPUT = 10  # a flag or argument value is invalid
    PROFILE_NOT_FOUND = 11
    PROFILE_BUSY = 12  # another minisand command holds the profile's lock
    PROFILE_CORRUPT = 13
    FILESYSTEM_ERROR = 14  # MINISAND_HOME or another file unusable: not a folder, read-only, full, access denied
    DRIVER_UNAVAILABLE = 20  # the driver's health check failed
    DRIVER_ERROR = 21  # the driver failed to create/start/stop the machine
    MACHINE_NOT_RUNNING = 30
    SSH_ERROR = 31  # could not reach or authenticate to the guest
    HOST_KEY_MISMATCH = 32  # the guest presented a host key other than the pinned one
    DOWNLOAD_ERROR = 40
    CHECKSUM_MISMATCH = 41
    ISO_ERROR = 42
    GUEST_ERROR = 50  # a command in the guest failed
    RUNTIME_ERROR = 51  # the container runtime refused its configuration or did not come up
    KUBERNETES_ERROR = 60
    WAIT_TIMEOUT = 61
    ADDON_ERROR = 70
    NOT_AVAILABLE = 80  # a capability that this build of minisand does not have yet
    INTERRUPTED = 130


class MinisandError(Exception):
    """An error with a user-facing one-line message, a hint, a stable reason id and an exit code."""

    def __init__(self, message: str, *, hint: str = "", code: ExitCode = ExitCode.FAILURE,
                 reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.reason = reason or code.name

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        text = f"minisand: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return " ".join(text.split())


def bad_input(message: str, hint: str = "", reason: str = "BAD_INPUT") -> MinisandError:
    return MinisandError(message, hint=hint, code=ExitCode.BAD_INPUT, reason=reason)


_FS_HINTS = {
    errno.ENOSPC: "free space on that file system, or set MINISAND_HOME to one with room",
    errno.EDQUOT: "free space within your quota, or set MINISAND_HOME to another file system",
    errno.EROFS: "the file system is read-only: set MINISAND_HOME to a writable folder",
    errno.EACCES: "check its owner and permissions, or set MINISAND_HOME to a folder you own",
    errno.EPERM: "check its owner and permissions, or set MINISAND_HOME to a folder you own",
    errno.ENOTDIR: "a file stands where a folder is needed: move it away or set MINISAND_HOME elsewhere",
    errno.EISDIR: "a folder stands where a file is needed: move it away",
    errno.EEXIST: "something is in the way: move it away",
    errno.ENOENT: "check that it exists",
    errno.ELOOP: "a symlink loops: remove it",
    errno.ENAMETOOLONG: "use a shorter MINISAND_HOME",
    errno.EMFILE: "raise the open-files limit (ulimit -n)",
    errno.EIO: "the disk reported an I/O error: check it",
}


def filesystem_error(exc: OSError) -> MinisandError | None:
    """A MinisandError(FILESYSTEM_ERROR) for an OSError a file operation raised; None for others (sockets)."""
    if exc.errno not in _FS_HINTS:
        return None
    what = exc.strerror or str(exc)
    if exc.filename:
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
        message = f"cannot use a file or folder: {where}: {what}"
    else:
        message = f"a file operation failed: {what}"
    return MinisandError(message, hint=_FS_HINTS[exc.errno],
                         code=ExitCode.FILESYSTEM_ERROR, reason=errno.errorcode.get(exc.errno, "OSError"))
