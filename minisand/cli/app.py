"""The minisand command line: thin typer apps that parse, call minisand.cluster, and print.

Errors: a MinisandError becomes one line on stderr and its exit code (README: "Exit codes"); an unexpected
exception becomes one line pointing at the log (with the traceback written there), exit code 1."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Annotated

import typer

from minisand import __version__
from minisand.cli.common import G, check_output
from minisand.errors import ExitCode, MinisandError
from minisand.paths import DEFAULT_PROFILE

app = typer.Typer(
    name="minisand",
    help="Local Kubernetes in a VM, with containerd and sandboxed runtimes (gVisor, Kata) as RuntimeClasses.",
    no_args_is_help=True,
    add_completion=False,  # one way to get completion: the `completion` command
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


@app.command()
def version(
    output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text",
) -> None:
    """Print minisand's version."""
    if check_output(output) == "json":
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
    from minisand.cli import addons, config, cp, dashboard, image, iso, machine, profile, service, start

    start.register(app)
    machine.register(app)
    dashboard.register(app)
    service.register(app)
    cp.register(app)
    app.add_typer(image.app, name="image")
    app.add_typer(addons.app, name="addons")
    app.add_typer(config.app, name="config")
    app.add_typer(profile.app, name="profile")
    app.add_typer(iso.app, name="iso")


_register()
if os.environ.get("_MINISAND_COMPLETE"):  # a shell asks for completions (the script `completion SHELL` prints)
    from typer._completion_classes import completion_init

    completion_init()


def _log_internal_error() -> str | None:
    """Writes the traceback to the profile's log; returns the log's path, or None when it could not be written."""
    from minisand.logsetup import attach_profile_log, profile_log_attached
    from minisand.paths import Home

    home = Home.from_env()
    path = None
    with contextlib.suppress(OSError, MinisandError):
        home.ensure(home.logs)
        path = home.profile_log(G.profile)
        attach_profile_log(path)
    logging.getLogger("minisand").exception("internal error")
    return str(path) if path is not None and profile_log_attached() else None


def _usage_hint(exc: Exception) -> str:
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "minisand"
    return f"run `{where} --help`"


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    from minisand.logsetup import detach_profile_log, install

    install()
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    finally:
        detach_profile_log()


def _run(argv: list[str]) -> int:
    import typer._click as click  # typer's vendored click
    from typer.core import Abort  # type: ignore[attr-defined]

    from minisand.cli.argv import hoist_globals
    from minisand.errors import filesystem_error

    command = typer.main.get_command(app)
    try:
        args = hoist_globals(command, argv)
        rv = command.main(args=args, prog_name="minisand", standalone_mode=False)
    except OSError as exc:
        fs = filesystem_error(exc)
        if fs is None:
            return _internal_error(exc)
        return _fail(fs, exc)
    except MinisandError as exc:
        return _fail(exc)
    except click.exceptions.NoArgsIsHelpError as exc:
        print(exc.format_message() if hasattr(exc, "format_message") else str(exc), file=sys.stderr)
        return 0
    except click.ClickException as exc:
        print(" ".join(f"minisand: {exc.format_message()} (hint: {_usage_hint(exc)})".split()), file=sys.stderr)
        return int(ExitCode.USAGE)
    except Abort:
        print("minisand: aborted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except KeyboardInterrupt:
        print("minisand: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug: keep the traceback out of the user's face, in the log
        return _internal_error(exc)
    if isinstance(rv, int):
        return rv
    return 0


def _fail(exc: MinisandError, cause: BaseException | None = None) -> int:
    log = logging.getLogger("minisand")
    log.info("error %s (%s): %s", exc.reason, int(exc.code), exc.message, exc_info=cause)
    print(exc.one_line(), file=sys.stderr)
    return int(exc.code)


def _internal_error(exc: Exception) -> int:
    where = _log_internal_error()
    told = f"the traceback is in {where}" if where else "run again with -v for details"
    print(" ".join(f"minisand: internal error: {type(exc).__name__}: {exc} (hint: {told}; please report it)"
                   .split()), file=sys.stderr)
    return int(ExitCode.FAILURE)
