"""The -o json event stream (minisand/events.py, ui.json_events): the encoding against a golden stream, the flows'
step order, and what `start -o json` / `addons enable -o json` / `image load -o json` print on bad input."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import pytest

from minisand import events, ui
from minisand.config.model import ClusterConfig
from minisand.config.store import ProfileStore
from minisand.errors import ExitCode, MinisandError
from minisand.paths import Home
from tests.unit.clihelp import one_line_error, run_cli

ROOT = Path(__file__).resolve().parents[2]

# The stream of a short run, byte for byte (ids are a counter here; uuid4 otherwise).
GOLDEN = """\
{"data":{"currentstep":"1","message":"Using the qemu driver","name":"Selecting Driver","totalsteps":"10"},"datacontenttype":"application/json","id":"1","source":"https://github.com/minisand/minisand","specversion":"1.0","type":"io.minisand.step"}
{"data":{"artifact":"kubelet","current":"0","currentstep":"1","progress":"0.00","total":"400","totalsteps":"10"},"datacontenttype":"application/json","id":"2","source":"https://github.com/minisand/minisand","specversion":"1.0","type":"io.minisand.download.progress"}
{"data":{"message":"KVM is not usable here"},"datacontenttype":"application/json","id":"3","source":"https://github.com/minisand/minisand","specversion":"1.0","type":"io.minisand.warning"}
{"data":{"message":"containerd restarted"},"datacontenttype":"application/json","id":"4","source":"https://github.com/minisand/minisand","specversion":"1.0","type":"io.minisand.info"}
{"data":{"currentstep":"5","message":"Preparing Kubernetes v1.36.4 ...","name":"Preparing Kubernetes","totalsteps":"10"},"datacontenttype":"application/json","id":"5","source":"https://github.com/minisand/minisand","specversion":"1.0","type":"io.minisand.step"}
{"data":{"advice":"raise --wait-timeout","exitcode":"61","message":"not ready after 900s","name":"WAIT_TIMEOUT"},"datacontenttype":"application/json","id":"6","source":"https://github.com/minisand/minisand","specversion":"1.0","type":"io.minisand.error"}
"""


def _counter() -> object:
    n = iter(range(1, 1000))
    return lambda: str(next(n))


def test_encoding_matches_the_golden_stream() -> None:
    out = io.StringIO()
    s = events.Stream(out, events.Flow(events.START_FLOW), new_id=_counter())  # type: ignore[arg-type]
    s.step("Using the qemu driver", "Selecting Driver")
    s.progress("kubelet", 0, 400)
    s.warning("KVM is not usable here")
    s.info("containerd restarted")
    s.step("Preparing Kubernetes v1.36.4 ...", "Preparing Kubernetes")
    s.error("not ready after 900s", 61, "WAIT_TIMEOUT", "raise --wait-timeout")
    assert out.getvalue() == GOLDEN


def test_every_event_is_a_cloudevent_with_string_data() -> None:
    for line in GOLDEN.splitlines():
        ev = json.loads(line)
        assert set(ev) == {"specversion", "id", "source", "type", "datacontenttype", "data"}
        assert ev["specversion"] == "1.0" and ev["type"].startswith("io.minisand.")
        assert ev["type"].removeprefix("io.minisand.") in events.TYPES
        assert all(isinstance(v, str) for v in ev["data"].values())


def test_envelope_refuses_unknown_types_and_non_string_data() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        events.envelope("bogus", {}, "1")
    with pytest.raises(TypeError, match="strings"):
        events.envelope("info", {"n": 1}, "1")  # type: ignore[dict-item]


def test_a_flow_only_moves_forward() -> None:
    f = events.Flow(events.START_FLOW)
    assert (f.index, f.total, f.name) == (0, 10, "Initial Setup")
    f.set("Preparing Kubernetes")
    f.set("Guest ISO")  # earlier: ignored
    f.set("no such step")
    f.set(None)
    assert f.name == "Preparing Kubernetes" and f.position() == {"currentstep": "5", "totalsteps": "10"}
    f.set(events.DONE)
    assert f.position() == {"currentstep": "10", "totalsteps": "10"}


@pytest.mark.parametrize("steps", [(), ("A",), ("A", "Done", "A"), ("Done", "Done")])
def test_a_flow_is_distinct_names_ending_with_done(steps: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="flow"):
        events.Flow(steps)


def test_progress_text() -> None:
    assert events.progress_text(0, None) == "" and events.progress_text(5, 0) == ""
    assert events.progress_text(1, 3) == "0.33" and events.progress_text(9, 3) == "1.00"


def _step_names_in_code() -> dict[str, str]:
    """Every constant step name passed to ui.step(text, NAME) in minisand/, with where it is."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "minisand").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "step"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "ui" and len(node.args) > 1):
                arg = node.args[1]
                assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), f"{path}:{node.lineno}"
                found[arg.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


def test_every_step_name_in_the_code_is_in_a_flow() -> None:
    names = _step_names_in_code()
    known = {s for flow in events.FLOWS.values() for s in flow}
    assert len(names) >= 10, names  # the scan sees the call sites
    assert not {n: w for n, w in names.items() if n not in known}


def test_start_reports_every_step_of_its_flow_but_joining_nodes() -> None:
    """A single-node start passes every named step of START_FLOW (Joining Nodes is for multi-node clusters)."""
    names = set(_step_names_in_code())
    assert set(events.START_FLOW) - names - {events.DONE} == {"Joining Nodes"} - names


def test_json_events_ends_with_an_error_event_and_reraises(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(MinisandError), ui.json_events("addons enable"):
        ui.step("Enabling addon 'gvisor' ...", "Enabling Addon")
        ui.warn("slow host")
        raise MinisandError("boom", hint="try again", code=ExitCode.ADDON_ERROR, reason="ADDON_X")
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [e["type"] for e in lines] == ["io.minisand.step", "io.minisand.warning", "io.minisand.error"]
    assert lines[0]["data"] == {"currentstep": "0", "totalsteps": "1", "name": "Enabling Addon",
                                "message": "Enabling addon 'gvisor' ..."}
    assert lines[2]["data"] == {"message": "boom", "exitcode": "70", "name": "ADDON_X", "advice": "try again"}
    assert not ui.json_mode()


def test_json_events_reports_an_interrupt_with_exit_code_130(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(KeyboardInterrupt), ui.json_events("start"):
        raise KeyboardInterrupt
    (event,) = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert event["data"]["exitcode"] == "130"


def test_progress_in_json_mode_is_download_progress_events(capsys: pytest.CaptureFixture[str]) -> None:
    with ui.json_events("start"):
        bar = ui.Progress("kubeadm", 1000)
        bar.update(400)
        bar.update(600)
        bar.close()
    out = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert {e["type"] for e in out} == {"io.minisand.download.progress"}
    assert out[0]["data"]["progress"] == "0.00" and out[-1]["data"]["progress"] == "1.00"
    assert out[-1]["data"]["current"] == "1000" and out[-1]["data"]["total"] == "1000"


def test_progress_in_a_pipe_is_a_few_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    bar = ui.Progress("kubelet", 4_000_000)
    for _ in range(40):
        bar.update(100_000)
    bar.close()
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == ""
    assert lines[0] == "    > kubelet (4.0 MB) ..."
    assert lines[1:4] == [f"    > kubelet: {p}% of 4.0 MB" for p in (25, 50, 75)]
    assert lines[4].startswith("    > kubelet: 4.0 MB in ") and len(lines) == 5


def test_waiting_in_a_pipe_prints_a_line_per_interval(capsys: pytest.CaptureFixture[str]) -> None:
    with ui.waiting("waiting for the cluster", every=0.0) as w:
        w.update("system_pods: coredns is Pending")
    assert "still waiting" in capsys.readouterr().err


@pytest.fixture()
def stopped(home: Path) -> Home:
    h = Home(home)
    ProfileStore(h).save(ClusterConfig(name="minisand", driver="qemu"))
    return h


def test_start_json_with_a_bad_flag_is_an_error_event_and_one_line(home: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["start", "-o", "json", "--memory", "lots"], capsys)
    assert code == ExitCode.BAD_INPUT
    one_line_error(err)
    (event,) = [json.loads(ln) for ln in out.splitlines()]
    assert event["type"] == "io.minisand.error" and event["data"]["exitcode"] == "10"
    assert "--memory" in event["data"]["message"]
    assert not (home / "profiles" / "minisand").exists()


def test_start_dry_run_json_is_still_the_plan(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["start", "--dry-run", "-o", "json", "--driver", "qemu"], capsys)
    assert code == 0, err
    plan = json.loads(out)  # one JSON document, not a stream of events
    assert "binaries" in plan and "type" not in plan


def test_addons_enable_json_on_a_stopped_cluster(stopped: Home, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["addons", "enable", "gvisor", "-o", "json"], capsys)
    assert code == ExitCode.MACHINE_NOT_RUNNING
    one_line_error(err)
    (event,) = [json.loads(ln) for ln in out.splitlines()]
    assert event["data"]["exitcode"] == "30" and event["data"]["name"] == "MACHINE_NOT_RUNNING"


def test_output_must_be_text_or_json(stopped: Home, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["addons", "disable", "gvisor", "-o", "yaml"], ["start", "-o", "yaml"]):
        code, _out, err = run_cli(argv, capsys)
        assert code == ExitCode.BAD_INPUT
        one_line_error(err)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_is_a_live_rich_bar_that_leaves_the_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    bar = ui.Progress("kubelet", 1000)
    ui.step("Preparing Kubernetes v1.36.4 ...")  # printed above the live bar
    bar.update(1000)
    with ui.waiting("kubeadm init") as w:
        w.update("still booting")
    bar.close()
    text = term.getvalue()
    assert "* Preparing Kubernetes v1.36.4 ..." in text
    assert "kubelet" in text  # the bar was drawn at least once (transient: cleared at the end)
    assert ui._BOARD is not None and ui._BOARD._progress is None  # the display stopped with its last task
