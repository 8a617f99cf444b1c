"""Bad inputs of issue 11's items 1, 3 and 5 in one table: against a home holding a good profile, corrupt and
tampered ones, and stray entries, each case must give its documented exit code, exactly one line with a hint,
no traceback, and leave MINISAND_HOME byte-identical (paths, modes, bytes, symlink targets)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from minisand.errors import ExitCode
from tests.unit.clihelp import assert_unchanged, one_line_error, run_cli, snapshot

U, B, NF, C, FS = ExitCode.USAGE, ExitCode.BAD_INPUT, ExitCode.PROFILE_NOT_FOUND, ExitCode.PROFILE_CORRUPT, \
    ExitCode.FILESYSTEM_ERROR
M = ExitCode.MACHINE_NOT_RUNNING

_PROFILES: dict[str, bytes] = {
    "dev": json.dumps({"name": "dev", "driver": "qemu", "nodes": 2}).encode(),
    "copy": json.dumps({"name": "dev", "driver": "qemu"}).encode(),
    "tampered": json.dumps({"name": "../../victim", "driver": "qemu"}).encode(),
    "abs": json.dumps({"name": "/etc", "driver": "qemu"}).encode(),
    "json": b"{",
    "binary": b"\xff\x00",
    "list": b"[]",
    "types": json.dumps({"name": "types", "driver": "qemu", "nodes": "2"}).encode(),
    "unknown": json.dumps({"name": "unknown", "driver": "qemu", "x": 1}).encode(),
    "driver": json.dumps({"name": "driver", "driver": "nosuch"}).encode(),
    "schema": json.dumps({"name": "schema", "driver": "qemu", "schema": 2}).encode(),
}
# well-formed JSON with the right types, but values no flag would give: start refuses them as corrupt (13)
_TAMPERED_VALUES: dict[str, dict[str, object]] = {
    "v-cpus": {"cpus": -1}, "v-memory": {"memory_mb": 0}, "v-disk": {"disk_mb": 10**15}, "v-nodes": {"nodes": 0},
    "v-addons": {"addons": ["nosuch"]}, "v-wait": {"wait": ["bogus"]}, "v-timeout": {"wait_timeout": -1.0},
    "v-k8s": {"kubernetes_version": "../x"}, "v-runtime": {"container_runtime": "docker"},
    "v-iso": {"iso_url": "ftp://x"}, "v-sum": {"iso_checksum": "sha512:"}, "v-extra": {"extra_config": ["x.y=z"]},
    "v-mirror": {"mirrors": {"registry_mirrors": ["ftp://x"]}}, "v-port": {"driver_options": {"ssh_port": 0}},
    "v-accel": {"driver_options": {"qemu_accel": "bogus"}}, "v-net": {"driver_options": {"network": "../x"}},
}
for _name, _values in _TAMPERED_VALUES.items():
    _PROFILES[_name] = json.dumps({"name": _name, "driver": "qemu", **_values}).encode()


@pytest.fixture()
def populated(home: Path, tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("x")
    for name, raw in _PROFILES.items():
        (home / "profiles" / name).mkdir(parents=True)
        (home / "profiles" / name / "config.json").write_bytes(raw)
    (home / "profiles" / "cfgdir" / "config.json").mkdir(parents=True)
    os.symlink(victim, home / "profiles" / "escape")
    (home / "profiles" / "file").write_text("x")
    for m in ("dev", "dev-m02"):
        (home / "machines" / m).mkdir(parents=True)
        (home / "machines" / m / "machine.json").write_text(json.dumps({"machine": m, "driver": "qemu",
                                                                       "profile": "dev"}))
    (home / "machines" / "copy").mkdir()
    (home / "machines" / "copy" / "machine.json").write_text("{")
    os.symlink(victim, home / "machines" / "tampered")
    return home


_CORRUPT_PROFILES = ["copy", "tampered", "abs", "json", "binary", "list", "types", "unknown", "driver", "schema",
                     "cfgdir", "escape", "file"]

CASES: list[tuple[list[str], ExitCode]] = [
    # item 1: names and paths
    *[(["-p", bad, "status"], B) for bad in ("../dev", "..", "dev/x", "Dev", "dev_x", "-", "dev-m02", "a" * 50,
                                              "dev\n", " dev", "")],
    *[(["-p", "dev", cmd, "--node", node], B) for cmd in ("ip", "logs")
      for node in ("../../x", "../dev", "dev/..", "..", "nosuch", "dev-m03", "DEV", "dev-m02/..", "/etc")],
    *[(["-p", "dev", "ssh", "--node", node, "--", "true"], B) for node in ("../../x", "nosuch")],
    # item 5: corrupt profiles are corrupt for every command that reads them
    *[(["-p", name, cmd], C) for name in _CORRUPT_PROFILES for cmd in ("status", "ip", "stop")],
    *[(["-p", name, "logs"], C) for name in ("copy", "tampered", "escape")],
    *[(["-p", name, "ssh", "--", "true"], C) for name in ("copy", "tampered")],
    (["-p", "nope", "status"], NF), (["-p", "nope", "logs"], NF), (["-p", "nope", "ip"], NF),
    # item 5: argument handling
    (["-p", "dev", "logs", "--length", "-5"], B), (["-p", "dev", "logs", "--length", "0"], B),
    (["-p", "dev", "logs", "-n", "-1"], B), (["logs", "--length", "x"], U),
    (["kubectl", "logs", "-p", "pod"], U), (["kubectl", "get", "pods", "-v"], U),
    (["kubectl", "get", "pods", "--profile", "x"], U), (["kubectl", "get", "-pdev"], U),
    (["ssh", "ls", "-p", "x"], U), (["ssh", "ls", "-v"], U),
    (["frobnicate"], U), (["frobnicate", "--help"], U), (["addons", "enabel"], U), (["sttus"], U),
    (["profile", "lst"], U),
    (["delete", "--purge"], B), (["status", "-o", "yaml"], B), (["-p"], U), (["status", "--bogus"], U),
    (["profile", "list", "--bogus"], U), (["delete", "extra-arg"], U), (["ip", "--node"], U),
    (["logs", "--node"], U), (["-p", "dev", "stop", "--timeout", "soon"], U),
    *[(["-p", "dev", "stop", "--timeout", t], B) for t in ("-5", "nan", "inf")],
    # the commands added since: image load/ls/rm/pull
    (["image", "load"], U), (["image", "rm"], U), (["image", "pull"], U), (["image", "frob"], U),
    (["image", "load", "x.tar", "-o", "yaml"], B), (["image", "ls", "--format", "yaml"], B),
    (["-p", "dev", "image", "load", "/nonexistent/x.tar"], B),
    (["-p", "dev", "image", "load", "busybox", "--daemon", "nosuch"], B),
    *[(["-p", "nope", "image", *args], NF) for args in (["load", "x.tar"], ["ls"], ["rm", "busybox"],
                                                         ["pull", "busybox"], ["load", "x.tar", "-o", "json"])],
    *[(["-p", name, "image", *args], C) for name, args in (("copy", ["load", "x.tar"]), ("tampered", ["ls"]),
                                                           ("json", ["rm", "busybox"]), ("escape", ["pull", "x"]),
                                                           ("binary", ["load", "-", "-o", "json"]))],
    *[(["-p", "dev", "image", "load", "busybox", "--containerd-namespace", ns], B) for ns in ("", "../x", "a b",
                                                                                          "k8s..io", "x" * 77)],
    (["-p", "dev", "image", "ls"], M), (["-p", "dev", "image", "pull", "busybox"], M),
    (["-p", "dev", "image", "pull", "Bad Name"], B), (["-p", "dev", "image", "rm", ""], B),
    # service
    (["service"], U), (["service", "web", "--bogus"], U), (["service", "web", "-n"], U),
    (["-p", "nope", "service", "web"], NF), (["-p", "tampered", "service", "web"], C),
    (["-p", "list", "service", "web", "--url"], C), (["-p", "dev", "service", "web", "--url"], M),
    # cp
    (["cp"], U), (["cp", "only-one"], U), (["cp", "a", "b", "c"], U),
    (["-p", "nope", "cp", "/etc/hostname", "dev:/tmp/x"], NF),
    (["-p", "copy", "cp", "/etc/hostname", "dev:/tmp/x"], C),
    (["-p", "dev", "cp", "/nonexistent/file", "dev:/tmp/x"], B),
    (["-p", "dev", "cp", "nosuch:/tmp/x", "/tmp/y"], B), (["-p", "dev", "cp", "../../x:/a", "/tmp/y"], B),
    (["-p", "dev", "cp", "/etc/hostname", "dev:relative"], B),
    # dashboard
    *[(["dashboard", "--port", p], B) for p in ("0", "70000", "-1")], (["dashboard", "--port", "x"], U),
    (["-p", "nope", "dashboard", "--url"], NF), (["-p", "json", "dashboard", "--url"], C),
    # pause / unpause
    (["pause", "extra"], U), (["unpause", "--bogus"], U),
    (["version", "-o", "yaml"], B), (["profile", "list", "-o", "yaml"], B), (["profile", "list", "-o", ""], B),
    (["-p", "nope", "pause"], NF), (["-p", "nope", "unpause"], NF),
    (["-p", "tampered", "pause"], C), (["-p", "binary", "unpause"], C),
    # stop --cold
    (["-p", "nope", "stop", "--cold"], NF), (["-p", "tampered", "stop", "--cold"], C),
    (["-p", "dev", "stop", "--cold", "--timeout", "nan"], B), (["stop", "--cold=yes"], U),
    # logs --file / -f
    (["-p", "dev", "logs", "--file"], U), (["-p", "dev", "logs", "--file", ""], B),
    (["-p", "nope", "logs", "-f"], NF), (["-p", "tampered", "logs", "--follow"], C),
    (["-p", "dev", "logs", "-f", "--length", "0"], B), (["-p", "dev", "logs", "-f", "--node", "../x"], B),
    (["-p", "nope", "logs", "--file", "/tmp/minisand-bad-input-never"], NF),
    # start -o json
    (["start", "-o", "yaml"], B), (["-p", "dev", "start", "-o", "json", "--cpus", "0"], B),
    (["start", "-o", "json", "--memory", "99999999g"], B), (["start", "-o", "json", "--driver", "nosuch"], B),
    (["start", "-o", "json", "--addons", "nosuchaddon"], B), (["-p", "tampered", "start", "-o", "json"], C),
    (["-p", "schema", "start", "-o", "json"], C),
    # a URL urllib cannot split (a bracketed host that is no IPv6 address) is bad input, not an internal error
    *[(["config", "set", key, url], B) for key, url in (("iso-url", "http://[::1"), ("registry-mirror", "http://[::1"),
                                                        ("binary-mirror", "http://[zz]:5000"),
                                                        ("gvisor-mirror", "https://[::1/x"))],
    *[(["start", "--dry-run", "-o", "json", f"--{key}=http://[::1"], B) for key in ("iso-url", "registry-mirror",
                                                                                    "binary-mirror", "gvisor-mirror")],
    *[(["-p", name, "start", "--dry-run", "-o", "json"], C) for name in _TAMPERED_VALUES],
    (["-p", "v-cpus", "start", "--dry-run", "--cpus", "2"], C), (["-p", "v-addons", "start", "--dry-run"], C),
    # addons enable / disable -o json
    (["addons", "enable", "gvisor", "-o", "yaml"], B), (["addons", "disable", "gvisor", "-o", "xml"], B),
    (["addons", "enable", "nosuch", "-o", "json"], B), (["addons", "enable"], U),
    (["-p", "nope", "addons", "enable", "gvisor", "-o", "json"], NF),
    (["-p", "tampered", "addons", "enable", "gvisor", "-o", "json"], C),
    (["-p", "nope", "addons", "disable", "gvisor"], NF), (["-p", "json", "addons", "disable", "gvisor"], C),
    (["-p", "dev", "addons", "enable", "gvisor", "-o", "json"], M), (["-p", "dev", "addons", "disable", "gvisor"], M),
    # a stopped cluster: refused before the profile's log or lock is touched
    (["-p", "dev", "pause"], M), (["-p", "dev", "unpause"], M), (["-p", "dev", "dashboard", "--url"], M),
    (["-p", "dev", "cp", "/etc/hostname", "dev:/tmp/x"], M),
    (["-p", "dev", "image", "load", "/etc/hostname"], B),
    (["-p", "dev", "logs", "--file", "/nonexistent-dir/x"], B),
    # output files inside MINISAND_HOME would overwrite minisand's own files ({home} is the test's home)
    *[(["-p", "dev", "logs", "--file", f"{{home}}/{p}"], B) for p in ("profiles/dev/config.json", "logs/dev.log",
                                                                    "machines/dev/new", "profiles/escape/x")],
    (["-p", "dev", "logs", "-f", "--file", "{home}/profiles/dev/config.json"], B),
    *[(["-p", "dev", "cp", "dev:/etc/hostname", f"{{home}}/{p}"], B) for p in ("profiles/dev/config.json", "",
                                                                               "machines/dev/")],
]


@pytest.mark.parametrize(("argv", "code"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input(populated: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: ExitCode) -> None:
    before = snapshot(populated.parent)
    got, _out, err = run_cli([a.replace("{home}", str(populated)) for a in argv], capsys)
    assert got == code, err
    line = one_line_error(err)
    assert not re.search(r"internal error|Traceback", line)
    assert_unchanged(populated.parent, before)  # the home and the victim folder beside it


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 120


def test_every_exit_code_is_documented() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.M)}
    assert documented == {int(c) for c in ExitCode}
    assert FS == 14
