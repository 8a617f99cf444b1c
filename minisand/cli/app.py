"""The minisand command line: thin typer apps that parse, call minisand.cluster, and print.

Errors: a MinisandError becomes one line on stderr and its exit code (README: "Exit codes"); an unexpected
exception becomes one line pointing at the log (with the traceback written there), exit code 1."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Annotated

import typer

from minisand import __version__
from minisand.errors import ExitCode, MinisandError
from minisand.paths import DEFAULT_PROFILE

app = typer.Typer(
    name="minisand",
    help="Local Kubernetes in a VM, with containerd and sandboxed runtimes (gVisor, Kata) as RuntimeClasses.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Globals:
    profile: str = DEFAULT_PROFILE
    verbose: bool = False


G = Globals()


@app.callback()
def _root(
    profile: Annotated[str, typer.Option("--profile", "-p", envvar="MINISAND_PROFILE",
                                         help="Profile (cluster) name.")] = DEFAULT_PROFILE,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print debug logging to stderr.")] = False,
) -> None:
    from minisand.config.validate import check_profile_name
    from minisand.logsetup import configure

    G.profile = check_profile_name(profile)
    G.verbose = verbose
    configure(verbose)


def context() -> object:
    from minisand.cluster.context import Context
    from minisand.paths import Home

    return Context(Home.from_env(), G.profile)


@app.command()
def version(
    output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text",
) -> None:
    """Print minisand's version."""
    if output == "json":
        import json

        typer.echo(json.dumps({"minisandVersion": __version__}))
    else:
        typer.echo(f"minisand version: v{__version__}")


@app.command()
def completion(
    shell: Annotated[str, typer.Argument(help="bash, zsh, fish or powershell")],
) -> None:
    """Print a shell completion script, e.g. `source <(minisand completion bash)`."""
    from typer._completion_shared import get_completion_script

    if shell not in ("bash", "zsh", "fish", "powershell", "pwsh"):
        from minisand.errors import bad_input

        raise bad_input(f"unknown shell {shell!r}", "use bash, zsh, fish or powershell")
    typer.echo(get_completion_script(prog_name="minisand", complete_var="_MINISAND_COMPLETE", shell=shell))


def _register() -> None:
    from minisand.cli import addons, config, iso, machine, profile, start

    start.register(app)
    machine.register(app)
    app.add_typer(addons.app, name="addons")
    app.add_typer(config.app, name="config")
    app.add_typer(profile.app, name="profile")
    app.add_typer(iso.app, name="iso")


_register()


_GLOBAL_WITH_VALUE = ("-p", "--profile")
_GLOBAL_FLAGS = ("-v", "--verbose")


def hoist_globals(args: list[str]) -> list[str]:
    """Global options may appear anywhere before `--` (as with minikube's persistent flags): move them to the
    front so `minisand status -p dev` works like `minisand -p dev status`."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest.extend(args[i:])
            break
        if a in _GLOBAL_WITH_VALUE and i + 1 < len(args):
            front += [a, args[i + 1]]
            i += 2
            continue
        if a.startswith("--profile=") or a in _GLOBAL_FLAGS:
            front.append(a)
        elif a.startswith("-p") and len(a) > 2 and not a.startswith("--"):
            front += ["-p", a[2:]]
        else:
            rest.append(a)
        i += 1
    return front + rest


def _log_internal_error() -> str:
    from minisand.logsetup import attach_profile_log
    from minisand.paths import Home

    path = Home.from_env().profile_log(G.profile)
    with contextlib.suppress(OSError):
        attach_profile_log(path)
    logging.getLogger("minisand").exception("internal error")
    return str(path)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    import typer._click as click  # typer's vendored click
    from typer.core import Abort  # type: ignore[attr-defined]

    command = typer.main.get_command(app)
    args = hoist_globals(list(sys.argv[1:] if argv is None else argv))
    try:
        rv = command.main(args=args, prog_name="minisand", standalone_mode=False)
    except MinisandError as exc:
        logging.getLogger("minisand").info("error %s (%s): %s", exc.reason, int(exc.code), exc.message)
        print(exc.one_line(), file=sys.stderr)
        return int(exc.code)
    except click.exceptions.NoArgsIsHelpError as exc:
        print(exc.format_message() if hasattr(exc, "format_message") else str(exc), file=sys.stderr)
        return 0
    except click.ClickException as exc:
        cmd = " ".join(a for a in args if not a.startswith("-"))[:40]
        print(f"minisand: {exc.format_message()} (hint: run `minisand {cmd} --help`)".replace("  ", " "),
              file=sys.stderr)
        return int(ExitCode.USAGE)
    except Abort:
        print("minisand: aborted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except KeyboardInterrupt:
        print("minisand: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug: keep the traceback out of the user's face, in the log
        where = _log_internal_error()
        print(f"minisand: internal error: {type(exc).__name__}: {exc} (hint: the traceback is in {where}; "
              "please report it)", file=sys.stderr)
        return int(ExitCode.FAILURE)
    if isinstance(rv, int):
        return rv
    return 0
