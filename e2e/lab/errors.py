"""The lab's one exception type: a one-line message and a hint, printed by the CLI without a traceback."""

from __future__ import annotations


class LabError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message
