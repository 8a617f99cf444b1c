"""One error type for everything a user can cause or meet, with stable reason ids and exit codes.

The CLI maps a MinisandError to one line on stderr (message and hint) and its exit code; nothing else in
minisand prints tracebacks for expected failures.
"""

from __future__ import annotations

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


def not_available(capability: str) -> MinisandError:
    return MinisandError(
        f"{capability} is not available in this build of minisand",
        hint="it arrives with a later release; see the README's roadmap",
        code=ExitCode.NOT_AVAILABLE,
    )
