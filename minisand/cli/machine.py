"""stop, delete, status, ip, ssh, kubectl, logs."""

from __future__ import annotations

import sys
from typing import Annotated, cast

import typer

from minisand.cluster.context import Context
from minisand.errors import bad_input

Opt = typer.Option


def _ctx() -> Context:
    from minisand.cli.app import context

    return cast(Context, context())


def register(app: typer.Typer) -> None:
    app.command()(stop)
    app.command()(delete)
    app.command()(status)
    app.command()(ip)
    app.command(context_settings={"allow_interspersed_args": False})(ssh)
    app.command(context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})(kubectl)
    app.command()(logs)


def stop(
    timeout: Annotated[float, Opt(help="Seconds to wait for a graceful power-off before killing.")] = 120.0,
) -> None:
    """Stop the cluster's machines (graceful power-off, then kill after a timeout)."""
    from minisand.cluster import ops

    ops.stop(_ctx(), timeout)


def delete(
    all_profiles: Annotated[bool, Opt("--all", help="Delete every profile.")] = False,
    purge: Annotated[bool, Opt("--purge", help="Also remove MINISAND_HOME (caches included).")] = False,
) -> None:
    """Delete a cluster: machines, disks, kubeconfig context, profile. Works from any state."""
    from minisand.cluster import ops

    if purge and not all_profiles:
        raise bad_input("--purge removes every profile's files", "use it together with --all")
    ops.delete(_ctx(), all_profiles, purge)


def status(
    output: Annotated[str, Opt("--output", "-o", help="text or json")] = "text",
) -> None:
    """Show host, kubelet, apiserver and kubeconfig state. Exit code is a bitmask: 1 host not running,
    2 cluster not running, 4 kubeconfig not configured."""
    import json

    from minisand.cluster import status as st

    if output not in ("text", "json"):
        raise bad_input(f"--output {output!r} is not text or json", "use -o json")
    nodes, code = st.collect(_ctx())
    if output == "json":
        data = [n.as_dict() for n in nodes]
        typer.echo(json.dumps(data[0] if len(data) == 1 else data, indent=2))
    else:
        typer.echo("\n\n".join(n.text() for n in nodes))
    raise typer.Exit(code)


def ip(node: Annotated[str | None, Opt("--node", "-n", help="Node name.")] = None) -> None:
    """Print a node's IP address."""
    from minisand.cluster import ops

    typer.echo(ops.ip(_ctx(), node))


def ssh(
    command: Annotated[list[str] | None, typer.Argument(help="Command to run (after --).")] = None,
    node: Annotated[str | None, Opt("--node", "-n", help="Node name.")] = None,
) -> None:
    """Open a shell on a node, or run `-- CMD ...` there and exit with its exit code."""
    from minisand.cli.shell import interactive
    from minisand.cluster import ops

    runner = ops.runner_for(_ctx(), node)
    try:
        if command:
            code = runner.stream(command, stdin=None if sys.stdin.isatty() else sys.stdin.buffer,
                                 stdout=sys.stdout.buffer, stderr=sys.stderr.buffer)
        else:
            code = interactive(runner)
    finally:
        runner.close()
    raise typer.Exit(code)


def kubectl(
    args: Annotated[list[str] | None, typer.Argument(help="kubectl arguments (after --).")] = None,
) -> None:
    """Run kubectl of the cluster's version against this profile's context."""
    from minisand.bootstrap import kubectl as kc

    raise typer.Exit(kc.run(_ctx(), args or []))


def logs(
    length: Annotated[int, Opt("--length", "-n", help="Lines from each source.")] = 60,
    node: Annotated[str | None, Opt("--node", help="Node name.")] = None,
    console: Annotated[bool, Opt("--console", help="Show the node's serial console log.")] = False,
    commands: Annotated[bool, Opt("--commands", help="Show only minisand's command log.")] = False,
) -> None:
    """Show minisand's log of this profile (every remote command with its exit code and duration) and the
    node's containerd/kubelet journal when it runs."""
    from minisand.cluster import logs as lg

    typer.echo(lg.collect(_ctx(), length=length, node=node, console=console, commands_only=commands))
