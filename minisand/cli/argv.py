"""Where minisand's global options (-p/--profile, -v/--verbose) may appear, before typer parses the line.

They are moved to the front when they stand before the command, among the command's own options, or (for an
ordinary command) anywhere before `--`. `kubectl` and `ssh` hand their arguments to another tool: once the
tool's arguments have begun (the first token that is not minisand's), a `-p` or `-v` is the tool's as much as
minisand's, so that form is refused with a hint to use `--`; minisand never switches profiles on a guess."""

from __future__ import annotations

from typing import Any

from minisand.errors import ExitCode, MinisandError

_WITH_VALUE = ("-p", "--profile")
_FLAGS = ("-v", "--verbose")
_HELP = ("-h", "--help")


def _global(args: list[str], i: int) -> tuple[list[str], int] | None:
    """The global option at args[i] as tokens for the front of the line, and how many tokens it took."""
    a = args[i]
    if a in _WITH_VALUE:
        return (args[i:i + 2], 2) if i + 1 < len(args) else ([a], 1)
    if a.startswith("--profile=") or a in _FLAGS:
        return [a], 1
    if a.startswith("-p") and not a.startswith("--") and len(a) > 2:
        return ["-p", a[2:]], 1
    return None


def _own_options(cmd: Any) -> dict[str, bool]:
    """The command's own option strings, each with whether it takes a value."""
    own = {h: False for h in _HELP}
    for p in getattr(cmd, "params", []):
        if getattr(p, "param_type_name", "") != "option":
            continue
        takes_value = not (getattr(p, "is_flag", False) or getattr(p, "count", False))
        for opt in (*p.opts, *p.secondary_opts):
            own[opt] = takes_value
    return own


def _own_kind(a: str, own: dict[str, bool]) -> str | None:
    """"value" for an own option whose value is the next token, "inline" for one that is complete (a flag,
    --opt=value, -nVALUE), None for anything else."""
    if a in own:
        return "value" if own[a] else "inline"
    if a.startswith("--") and a.split("=", 1)[0] in own:
        return "inline"
    if a.startswith("-") and not a.startswith("--") and len(a) > 2 and own.get(a[:2]):
        return "inline"
    return None


def _passes_through(cmd: Any) -> bool:
    return bool(getattr(cmd, "context_settings", {}).get("allow_interspersed_args") is False)


def _ambiguous(tool: str, token: str) -> MinisandError:
    return MinisandError(
        f"{token!r} after the arguments of `minisand {tool}` could be minisand's option or {tool}'s",
        hint=f"put minisand's options before `{tool}` (`minisand -p NAME {tool} ...`) and {tool}'s arguments "
             f"after `--` (`minisand {tool} -- ... {token} ...`)",
        code=ExitCode.USAGE, reason="AMBIGUOUS_OPTION")


def hoist_globals(root: Any, args: list[str]) -> list[str]:
    """`minisand status -p dev` becomes `minisand -p dev status`; see the module docstring for the rules."""
    front: list[str] = []
    rest: list[str] = []
    cmd, path, i = root, [], 0
    while i < len(args):  # the command path: `addons enable`, `status`, ...
        a = args[i]
        g = _global(args, i) if a != "--" else None
        if g is not None:
            front += g[0]
            i += g[1]
            continue
        commands = getattr(cmd, "commands", None)
        if a == "--" or not commands or a.startswith("-"):
            if a.startswith("-") and a != "--" and commands:
                rest.append(a)  # a group's own option (--help)
                i += 1
                continue
            break
        rest.append(a)
        i += 1
        if a not in commands:
            return front + rest + args[i:]  # typer names the unknown command
        cmd = commands[a]
        path.append(a)
    own = _own_options(cmd)
    through = _passes_through(cmd)
    tool_started = False
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i:]
            break
        g = _global(args, i)
        if g is not None:
            if tool_started:
                raise _ambiguous(" ".join(path), a)
            front += g[0]
            i += g[1]
            continue
        kind = None if tool_started else _own_kind(a, own)
        if kind == "value":
            rest += args[i:i + 2]  # an option's value is never taken for a global option
            i += 2
            continue
        if through and kind is None:
            tool_started = True
        rest.append(a)
        i += 1
    return front + rest
