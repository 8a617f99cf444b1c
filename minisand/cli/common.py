"""What the subcommand modules share: the global options as parsed, and the Context of the profile they name.
cli.app registers the subcommands; they import this module, never cli.app."""

from __future__ import annotations

from minisand.paths import DEFAULT_PROFILE


class Globals:
    profile: str = DEFAULT_PROFILE
    verbose: bool = False


G = Globals()


def check_output(output: str) -> str:
    """`-o/--output` of the commands that print a result: text or json, anything else refused (exit 10)."""
    if output not in ("text", "json"):
        from minisand.errors import bad_input

        raise bad_input(f"--output {output!r} is not text or json", "use -o json")
    return output


def context() -> object:
    """The Context of the profile named by -p (imported lazily: `--help` stays fast)."""
    from minisand.cluster.context import Context
    from minisand.paths import Home

    home = Home.from_env()
    home.check_usable()
    return Context(home, G.profile)
