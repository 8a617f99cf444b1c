"""Command runners: one interface (argv lists only) for the guest over SSH and for the local host."""

from minisand.runner.base import CommandError, CommandRunner, RunResult

__all__ = ["CommandError", "CommandRunner", "RunResult"]
