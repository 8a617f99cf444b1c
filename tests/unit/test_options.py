"""The option table (minisand/cluster/options.py) against what is built from it: the `start` flags, the README's
`start` flags table and `config` keys, `config set/get/unset/view`, and `start --dry-run`."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from minisand.cli.app import app
from minisand.cluster.options import OPTIONS, SETTABLE, Option, parse_setting, setting_value
from minisand.cluster.startconfig import StartRequest, resolve
from minisand.config.model import ClusterConfig, DriverOptions, MirrorConfig
from minisand.config.validate import HostResources
from minisand.errors import ExitCode, MinisandError
from tests.unit.clihelp import assert_unchanged, one_line_error, run_cli, snapshot

README = Path(__file__).resolve().parents[2] / "README.md"
HOST = HostResources(cpus=8, memory_mb=16384)


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start:end if end > 0 else None]


def _readme_flag_rows() -> list[set[str]]:
    rows = []
    for line in _section("### `start` flags").splitlines():
        if not line.startswith("| `"):
            continue
        first = re.split(r"(?<!\\)\|", line)[1]
        rows.append(set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", first)))
    return rows


def _start_flags() -> dict[str, set[str]]:
    """Every name the real `start` command accepts, per parameter."""
    command = typer.main.get_command(app).commands["start"]  # type: ignore[attr-defined]
    return {p.name: {*p.opts, *p.secondary_opts} for p in command.params}


def test_start_flags_are_built_from_the_table() -> None:
    flags = _start_flags()
    for opt in OPTIONS:
        names = {opt.flag, *opt.aliases} | ({opt.off} if opt.off else set())
        assert flags[opt.attr] == names, opt.name
    assert set(flags) == {o.attr for o in OPTIONS} | {"dry_run", "output"}


def test_readme_start_table_documents_every_option_and_nothing_stale() -> None:
    rows = _readme_flag_rows()
    documented = set().union(*rows)
    real = set().union(*_start_flags().values())
    missing = sorted(o.flag for o in OPTIONS if o.flag not in documented)
    assert not missing, f"README `start` flags table lacks {missing}"
    stale = sorted(documented - real)
    assert not stale, f"README `start` flags table names flags `start` does not have: {stale}"
    assert all(row for row in rows), "a README row names no flag"
    assert {"--dry-run", "-o"} <= documented


def test_readme_config_keys_are_the_settable_options() -> None:
    text = _section("### `config`")
    keys_line = text[text.index("Keys:"):]
    assert re.findall(r"`([a-z-]+)`", keys_line) == list(SETTABLE)


def test_table_targets_and_defaults_match_the_profile_model() -> None:
    fields = {f.name for f in dataclasses.fields(ClusterConfig)}
    groups = {"mirrors": {f.name for f in dataclasses.fields(MirrorConfig)},
              "driver_options": {f.name for f in dataclasses.fields(DriverOptions)}}
    seen = set()
    for opt in OPTIONS:
        group, _, attr = opt.target.partition(".")
        assert (attr in groups[group]) if attr else (group in fields), opt.target
        assert opt.target not in seen
        seen.add(opt.target)
    assert OPTIONS[0].default() is None  # the driver: chosen by health checks
    defaults = {o.name: o.default() for o in OPTIONS}
    assert defaults["memory"] == 4096 and defaults["wait-timeout"] == 900.0 and defaults["ssh-port"] == 22


def test_every_settable_option_parses_its_own_stored_form() -> None:
    """What `config set` stores is read back at start by the same parser."""
    samples = {"binary-mirror": "file:///srv/k8s", "container-runtime": "containerd", "cpus": "max",
               "disk-size": "30g", "driver": "kvm", "guest-egress": "no", "gvisor-mirror": "https://g.example",
               "image-mirror-country": "CN", "image-repository": "r.example/k8s",
               "insecure-registry": "r.local:5000,10.0.0.5", "iso-checksum": "sha512:" + "a" * 128,
               "iso-url": "file:///tmp/x.iso", "kubernetes-version": "1.35.2", "libvirt-uri": "qemu:///session",
               "memory": "6g", "network": "user", "nodes": "2", "offline": "on", "qemu-accel": "tcg",
               "registry-mirror": "http://a:5000,quay.io=https://q.example", "wait": "all", "wait-timeout": "15m"}
    assert set(samples) == set(SETTABLE)
    for key, text in samples.items():
        opt = next(o for o in OPTIONS if o.name == key)
        stored = setting_value(key, text)
        json.dumps(stored)
        parse_setting(opt, stored)
    assert setting_value("offline", "on") == "true" and setting_value("guest-egress", "no") == "false"
    assert setting_value("registry-mirror", "http://a:5000, http://b:5000") == ["http://a:5000", "http://b:5000"]


# -------------------------------------------------------------------------------------------- config CLI

BAD_SETTINGS = [
    ("wait", "bogus"), ("driver", "foo"), ("registry-mirror", "ftp://x"), ("registry-mirror", "file:///srv/m"),
    ("wait-timeout", "nan"), ("wait-timeout", "inf"), ("wait-timeout", "-5"), ("wait-timeout", "25h"),
    ("memory", "99999999g"), ("memory", "lots"), ("cpus", "0"), ("cpus", "65"), ("disk-size", "1g"),
    ("nodes", "0"), ("nodes", "many"), ("kubernetes-version", "v1.20.0"), ("kubernetes-version", "latest"),
    ("container-runtime", "docker"), ("iso-url", "ftp://x/y.iso"), ("iso-checksum", "sha512:abc"),
    ("image-mirror-country", "zz"), ("image-repository", "https://r.example"), ("insecure-registry", "h:0"),
    ("binary-mirror", "http://h:0"), ("gvisor-mirror", "ftp://g"), ("offline", "maybe"), ("qemu-accel", "hvf"),
    ("guest-egress", "2"), ("network", "bridge"), ("libvirt-uri", "nope"), ("memory", ""),
    ("addons", "gvisor"), ("extra-config", "kubelet.v=2"), ("ssh-port", "22"), ("nosuch", "1"),
]


@pytest.mark.parametrize(("key", "value"), BAD_SETTINGS)
def test_config_set_refuses_what_start_would_refuse(home: Path, capsys: pytest.CaptureFixture[str], key: str,
                                                   value: str) -> None:
    assert run_cli(["config", "set", "memory", "6g"], capsys)[0] == 0
    before = snapshot(home)
    code, _out, err = run_cli(["config", "set", key, value], capsys)
    assert code == ExitCode.BAD_INPUT, err
    one_line_error(err)
    assert_unchanged(home, before)


@pytest.mark.parametrize(("key", "value"), BAD_SETTINGS[:3])
def test_config_set_refused_without_a_settings_file_creates_nothing(home: Path, capsys: pytest.CaptureFixture[str],
                                                                    key: str, value: str) -> None:
    code, _out, err = run_cli(["config", "set", key, value], capsys)
    assert code == ExitCode.BAD_INPUT
    one_line_error(err)
    assert not home.exists() or not any(home.iterdir())


def test_config_set_accepts_what_the_flag_accepts(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in (("wait-timeout", "15m"), ("cpus", "max"), ("binary-mirror", "file:///srv/k8s"),
                       ("offline", "yes"), ("wait", "apiserver,node_ready"), ("iso-checksum", "a" * 64)):
        code, _o, err = run_cli(["config", "set", key, value], capsys)
        assert code == 0, err
    code, out, _ = run_cli(["config", "view", "-o", "json"], capsys)
    defaults = json.loads(out)["defaults"]
    assert defaults["wait-timeout"] == "15m" and defaults["offline"] == "true" and defaults["cpus"] == "max"
    cfg = resolve("dev", StartRequest(), None, defaults, "qemu", host=HOST).config
    assert cfg.wait_timeout == 900.0 and cfg.cpus == 8 and cfg.mirrors.binary_mirror == "file:///srv/k8s"
    assert cfg.wait == ("apiserver", "node_ready") and cfg.mirrors.offline


def test_config_get_unset_and_view_check_the_key(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["config", "get", "nosuch"], ["config", "unset", "nosuch"], ["config", "get", "addons"],
                 ["config", "view", "-o", "yaml"]):
        code, _o, err = run_cli(argv, capsys)
        assert code == ExitCode.BAD_INPUT, argv
        one_line_error(err)
    assert run_cli(["config", "unset", "memory"], capsys)[0] == 0
    assert not home.exists() or not any(home.iterdir())  # unsetting what is not set writes nothing
    code, out, _ = run_cli(["config", "view"], capsys)
    assert code == 0 and f"Settable keys: {', '.join(SETTABLE)}" in out


def test_start_refuses_a_bad_stored_default(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home.mkdir(parents=True)
    (home / "config.json").write_text(json.dumps({"wait": "bogus"}))
    before = snapshot(home)
    code, _o, err = run_cli(["start"], capsys)
    assert code == ExitCode.BAD_INPUT
    line = one_line_error(err)
    assert "default for wait is invalid" in line and "minisand config unset wait" in line
    assert_unchanged(home, before)


# -------------------------------------------------------------------------------------------- start CLI

BAD_START = [
    ["--wait-timeout", "nan"], ["--wait-timeout", "inf"], ["--wait-timeout", "-1"], ["--wait-timeout", "0"],
    ["--wait-timeout", "1e9"], ["--wait-timeout", "48h"], ["--memory", "99999999g"], ["--disk-size", "99t"],
    ["--cpus", "65"], ["--cpus", "max2"], ["--nodes", "abc"], ["-n", "0"], ["--addons", "nosuchaddon"],
    ["--addons", "gvisor,nosuchaddon"], ["--iso-checksum", "sha512:abcd"], ["--iso-checksum", "md5:" + "a" * 32],
    ["--extra-config", "kube-proxy.bogus=1"], ["--extra-config", "kubeadm.skip-phases=x"],
    ["--extra-config", "kube-proxy.mode=userspace"], ["--registry-mirror", "ftp://x"],
    ["--registry-mirror", "file:///srv"], ["--binary-mirror", "http://h:0"], ["--insecure-registry", "h:0"],
    ["--guest-forward", "10.0.2.100:0=127.0.0.1:5000"], ["--driver", "ssh", "--ssh-ip-address", "127.0.0.1",
                                                         "--ssh-key", "/k", "--ssh-port", "0"],
    ["--driver", "ssh", "--ssh-ip-address", "127.0.0.1", "--ssh-key", "/k", "--ssh-port", "65536"],
    ["--driver", "foo"], ["--driver", ""], ["--kubernetes-version", "v1.99.0"], ["--libvirt-uri", "x y"],
    ["--ssh-user", "root;rm"], ["--wait", "bogus"], ["--no-kubernetes", "--kubernetes-version", "v1.36.4"],
]


@pytest.mark.parametrize("flags", BAD_START, ids=lambda f: " ".join(f)[:60])
def test_start_bad_values_exit_10_with_one_line_and_touch_nothing(home: Path, capsys: pytest.CaptureFixture[str],
                                                                  flags: list[str]) -> None:
    from minisand.config.store import ProfileStore
    from minisand.paths import Home

    ProfileStore(Home(home)).save(ClusterConfig(name="other", driver="qemu"))
    assert run_cli(["config", "set", "memory", "6g"], capsys)[0] == 0
    before = snapshot(home)
    for argv in (["start", *flags], ["start", "--dry-run", "-o", "json", *flags]):
        code, out, err = run_cli(argv, capsys)
        assert code == ExitCode.BAD_INPUT, (argv, err)
        one_line_error(err)
        assert out == ""
    assert_unchanged(home, before)


def test_bad_values_on_an_existing_profile_leave_it_byte_identical(home: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from minisand.config.store import ProfileStore
    from minisand.paths import Home

    ProfileStore(Home(home)).save(ClusterConfig(name="minisand", driver="qemu", memory_mb=3000))
    before = snapshot(home)
    for flags in BAD_START:
        code, _o, err = run_cli(["start", *flags], capsys)
        assert code == ExitCode.BAD_INPUT, (flags, err)
        one_line_error(err)
    assert_unchanged(home, before)


def test_dry_run_shows_resolved_options_and_rendered_extra_config(home: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["config", "set", "wait-timeout", "20m"], capsys)[0] == 0
    before = snapshot(home)
    cli_args = ["start", "--dry-run", "-o", "json", "--driver", "ssh", "--ssh-ip-address", "127.0.0.1", "--ssh-key",
            str(tmp_path / "k"), "--ssh-port", "2222", "--extra-config", "kube-proxy.mode=ipvs", "--addons", "gvisor"]
    code, out, err = run_cli(cli_args, capsys)
    assert code == 0, err
    plan = json.loads(out)
    opts = plan["options"]
    assert set(opts) == {o.name for o in OPTIONS}
    assert opts["wait-timeout"] == {"value": 1200.0, "text": "1200s", "source": "config"}
    assert opts["ssh-port"] == {"value": 2222, "text": "2222", "source": "flag"}
    assert opts["memory"]["source"] == "default" and opts["extra-config"]["value"] == ["kube-proxy.mode=ipvs"]
    assert 'mode: "ipvs"' in plan["files"]["/var/tmp/minisand/kubeadm.yaml"]
    assert_unchanged(home, before)  # a dry run creates nothing
    code, text, _ = run_cli([*cli_args[:3], "text", *cli_args[4:]], capsys)
    assert code == 0 and "--wait-timeout: 1200s (config)" in text and "--ssh-port: 2222 (flag)" in text


@pytest.mark.allow_subprocess
def test_start_help_and_addon_check_import_nothing_heavy() -> None:
    probe = ("import sys; from minisand.cli.app import run; rc = run(['start', '--help']); "
             "from minisand.cluster.options import BY_NAME, parse_flag\n"
             "try:\n    parse_flag(BY_NAME['addons'], ['nosuchaddon'])\nexcept Exception as e:\n    err = str(e)\n"
             "heavy = [m for m in ('kubernetes', 'paramiko', 'libvirt', 'requests', 'jinja2', "
             "'minisand.addons.gvisor', 'minisand.addons.registry') if m in sys.modules]\n"
             "print(repr((rc, heavy, err)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    rc, heavy, err = eval(proc.stderr.strip().splitlines()[-1])
    assert rc == 0 and heavy == [] and "nosuchaddon" in err


def test_addon_names_match_the_registry() -> None:
    from minisand.addons.names import NAMES
    from minisand.addons.registry import addons

    assert tuple(addons()) == NAMES


def test_option_shows() -> None:
    opt = Option("x", str, "cpus", "help")
    assert (opt.show(None), opt.show(True), opt.show(("a", "b")), opt.show(3)) == ("", "true", "a,b", "3")
    with pytest.raises(MinisandError):
        setting_value("addons", "gvisor")
