"""stop, pause, unpause, delete, status, ip, ssh, kubectl, logs."""

from __future__ import annotations

import sys
from typing import Annotated, cast

import typer

from minisand.cluster.context import Context
from minisand.errors import bad_input

Opt = typer.Option


def _ctx() -> Context:
    from minisand.cli.common import context

    return cast(Context, context())


def register(app: typer.Typer) -> None:
    app.command()(stop)
    app.command()(pause)
    app.command()(unpause)
    app.command()(delete)
    app.command()(status)
    app.command()(ip)
    app.command(context_settings={"allow_interspersed_args": False})(ssh)
    app.command(context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})(kubectl)
    app.command()(logs)


def stop(
    timeout: Annotated[float, Opt(help="Seconds to wait for the save, or a graceful power-off before killing.")
                       ] = 120.0,
    cold: Annotated[bool, Opt("--cold", help="Power the machines off instead of saving them.")] = False,
) -> None:
    """Stop the cluster's machines: a VM's state is saved beside it and `start` resumes it (qemu, kvm2);
    --cold (and the other drivers) power off gracefully, then kill after a timeout."""
    import math

    from minisand.cluster import ops

    if not math.isfinite(timeout) or timeout < 0:
        raise bad_input(f"--timeout {timeout} is not a number of seconds", "use e.g. --timeout 120")
    ops.stop(_ctx(), timeout, cold=cold)


def pause() -> None:
    """Freeze every node's VM in place (its vCPUs stop; memory stays allocated). `unpause` thaws it."""
    from minisand import ui
    from minisand.cluster import suspend

    n = suspend.pause(_ctx())
    ui.done(f"{n} node(s) paused." if n else "All nodes were already paused.")


def unpause() -> None:
    """Thaw the nodes `pause` froze."""
    from minisand import ui
    from minisand.cluster import suspend

    n = suspend.pause(_ctx(), thaw=True)
    ui.done(f"{n} node(s) unpaused." if n else "No node was paused.")


def delete(
    all_profiles: Annotated[bool, Opt("--all", help="Delete every profile.")] = False,
    purge: Annotated[bool, Opt("--purge", help="Also remove MINISAND_HOME (caches included).")] = False,
) -> None:
    """Delete a cluster: machines, disks, kubeconfig context, profile. Works from any state."""
    from minisand.cluster import delete as dl

    if purge and not all_profiles:
        raise bad_input("--purge removes every profile's files", "use it together with --all")
    dl.delete(_ctx(), all_profiles, purge)


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
    from minisand.cluster import kubectl as kc

    raise typer.Exit(kc.run(_ctx(), args or []))


def logs(
    length: Annotated[int, Opt("--length", "-n", help="Lines from each source.")] = 60,
    node: Annotated[str | None, Opt("--node", help="Node name.")] = None,
    console: Annotated[bool, Opt("--console", help="Show the node's serial console log.")] = False,
    commands: Annotated[bool, Opt("--commands", help="Show only minisand's command log.")] = False,
    file: Annotated[str | None, Opt("--file", help="Write the logs to this file instead of stdout.")] = None,
    follow: Annotated[bool, Opt("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
) -> None:
    """Show minisand's log of this profile (every remote command with its exit code and duration) and the
    node's containerd/kubelet journal when it runs."""
    from minisand.cli.logsout import write_logs

    if length < 1:
        raise bad_input(f"--length {length} is not a positive number of lines", "use e.g. --length 200")
    write_logs(_ctx(), file, follow=follow, length=length, node=node, console=console, commands_only=commands)
