"""The user's kubeconfig (minisand.bootstrap.kubeconfig): the node's admin.conf renamed to the profile, merged
into an empty or an existing kubeconfig (made current, mode 0600), updated in place, and removed again leaving
everything else. Golden files: tests/unit/golden/kubeconfig/; inputs: tests/unit/fixtures/kubeconfig/ (admin.conf
as kubeadm writes it, a user's kubeconfig with two contexts of their own)."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from minisand.bootstrap import kubeconfig
from minisand.cluster import kubernetes
from minisand.cluster.context import Context
from minisand.config.model import ClusterConfig
from minisand.drivers.base import MachineRecord
from minisand.errors import ExitCode, MinisandError
from minisand.paths import Home
from tests.unit.fakes import FakeRunner, fake_node
from tests.unit.golden import assert_golden, fixture, fixture_path

SERVER = "https://127.0.0.1:40443"
USER_CONFIG = "kubeconfig/user-two-contexts.yaml"


def profile_config(profile: str = "dev", server: str = SERVER) -> dict[str, Any]:
    return kubeconfig.for_profile(fixture("kubeconfig/admin.conf"), profile, server)


def users_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / ".kube" / "config"
    path.parent.mkdir()
    path.write_text(fixture(USER_CONFIG))
    path.chmod(0o644)
    return path


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def names(data: dict[str, Any], key: str) -> list[str]:
    return [item["name"] for item in data[key]]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_admin_conf_becomes_the_profiles_config() -> None:
    admin = yaml.safe_load(fixture("kubeconfig/admin.conf"))
    data = profile_config()
    cluster, user = data["clusters"][0], data["users"][0]
    assert (cluster["name"], user["name"], data["current-context"]) == ("dev", "dev", "dev")
    assert cluster["cluster"]["server"] == SERVER  # the node's own address is not reachable from the host
    assert cluster["cluster"]["certificate-authority-data"] == \
        admin["clusters"][0]["cluster"]["certificate-authority-data"]
    assert user["user"] == admin["users"][0]["user"]  # client certificate and key, unchanged
    assert data["contexts"] == [{"name": "dev", "context": {"cluster": "dev", "user": "dev", "namespace": "default"}}]


@pytest.mark.parametrize("admin_conf", ["", "clusters: []\n", "- a\n", "clusters:\n- cluster: {}\nusers: []\n"])
def test_an_admin_conf_that_is_not_a_kubeconfig_is_a_clear_error(admin_conf: str) -> None:
    with pytest.raises(MinisandError) as exc:
        kubeconfig.for_profile(admin_conf, "dev", SERVER)
    assert exc.value.code == ExitCode.KUBERNETES_ERROR and exc.value.hint


def test_merge_into_no_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / ".kube" / "config"
    assert kubeconfig.merge(profile_config(), "dev", path) == path
    assert_golden("kubeconfig", "merged-into-empty.yaml", path.read_text())
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["config"]  # no temporary file left


def test_merge_into_an_existing_kubeconfig_keeps_everything_else(tmp_path: Path) -> None:
    path = users_kubeconfig(tmp_path)
    theirs = load(path)
    kubeconfig.merge(profile_config(), "dev", path)
    assert_golden("kubeconfig", "merged-into-existing.yaml", path.read_text())
    data = load(path)
    assert data["current-context"] == "dev"
    for key in ("clusters", "users", "contexts"):
        assert names(data, key) == [*names(theirs, key), "dev"]
        assert data[key][:-1] == theirs[key]  # the user's entries, byte for byte the same values
    assert data["preferences"] == {"colors": True}
    assert mode(path) == 0o600  # the credentials make it private, whatever it was before


def test_merging_again_updates_in_place(tmp_path: Path) -> None:
    path = users_kubeconfig(tmp_path)
    kubeconfig.merge(profile_config(), "dev", path)
    first = path.read_text()
    kubeconfig.merge(profile_config(), "dev", path)
    assert path.read_text() == first  # idempotent
    kubeconfig.merge(profile_config(server="https://127.0.0.1:40999"), "dev", path)
    data = load(path)
    assert names(data, "clusters") == ["kind-dev", "prod", "dev"]  # replaced, not appended
    assert data["clusters"][-1]["cluster"]["server"] == "https://127.0.0.1:40999"
    assert kubeconfig.context_server("dev", path) == "https://127.0.0.1:40999"


def test_two_profiles_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "config"
    kubeconfig.merge(profile_config("dev"), "dev", path)
    kubeconfig.merge(profile_config("ci", "https://127.0.0.1:41443"), "ci", path)
    data = load(path)
    assert names(data, "contexts") == ["dev", "ci"] and data["current-context"] == "ci"
    assert kubeconfig.context_server("dev", path) == SERVER
    assert kubeconfig.context_server("ci", path) == "https://127.0.0.1:41443"


def test_remove_leaves_the_other_contexts(tmp_path: Path) -> None:
    path = users_kubeconfig(tmp_path)
    theirs = load(path)
    kubeconfig.merge(profile_config(), "dev", path)
    assert kubeconfig.remove_context("dev", path) is True
    assert_golden("kubeconfig", "removed-from-existing.yaml", path.read_text())
    data = load(path)
    for key in ("clusters", "users", "contexts"):
        assert data[key] == theirs[key]
    # It was dev's: unset, not moved to another context (kubectl must not silently target the user's prod cluster).
    assert data["current-context"] == ""
    assert mode(path) == 0o600
    assert kubeconfig.remove_context("dev", path) is False  # nothing left to remove: the file is not rewritten
    assert not kubeconfig.has_context("dev", path) and kubeconfig.has_context("prod", path)


def test_remove_keeps_another_current_context(tmp_path: Path) -> None:
    path = users_kubeconfig(tmp_path)
    kubeconfig.merge(profile_config(), "dev", path)
    data = load(path)
    data["current-context"] = "prod"  # the user switched back with `kubectl config use-context prod`
    path.write_text(yaml.safe_dump(data))
    kubeconfig.remove_context("dev", path)
    assert load(path)["current-context"] == "prod"


def test_remove_of_the_last_context_empties_current_context(tmp_path: Path) -> None:
    path = tmp_path / "config"
    kubeconfig.merge(profile_config(), "dev", path)
    assert kubeconfig.remove_context("dev", path) is True
    data = load(path)
    assert data["current-context"] == "" and data["clusters"] == data["users"] == data["contexts"] == []


def test_remove_without_a_kubeconfig_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".kube" / "config"
    assert kubeconfig.remove_context("dev", path) is False
    assert not path.parent.exists()
    assert kubeconfig.context_server("dev", path) is None


@pytest.mark.parametrize(("content", "needle"), [("clusters: [unclosed\n", "not valid YAML"),
                                                 ("- just\n- a list\n", "not a kubeconfig")])
def test_a_broken_kubeconfig_is_refused_and_left_alone(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "config"
    path.write_text(content)
    with pytest.raises(MinisandError) as exc:
        kubeconfig.merge(profile_config(), "dev", path)
    assert exc.value.code == ExitCode.KUBERNETES_ERROR and needle in exc.value.message and exc.value.hint
    assert path.read_text() == content
    assert kubeconfig.context_server("dev", path) is None  # status reads it without failing


def test_kubeconfig_path_is_the_first_kubeconfig_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert kubeconfig.kubeconfig_path() == tmp_path / ".kube" / "config"
    monkeypatch.setenv("KUBECONFIG", f"::{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert kubeconfig.kubeconfig_path() == tmp_path / "a"
    monkeypatch.setenv("KUBECONFIG", "")
    assert kubeconfig.kubeconfig_path() == tmp_path / ".kube" / "config"


def test_the_recorded_admin_conf_is_what_kubeadm_writes() -> None:
    """The fixture keeps kubeadm's layout (one cluster, one user, one context, with embedded certificates)."""
    admin = yaml.safe_load(fixture_path("kubeconfig/admin.conf").read_text())
    assert (admin["apiVersion"], admin["kind"]) == ("v1", "Config")
    assert admin["current-context"] == "kubernetes-admin@dev"
    assert set(admin["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}
    ca = base64.b64decode(admin["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    assert ca.startswith("-----BEGIN CERTIFICATE-----\n")


def test_the_admin_conf_fetched_from_the_node_lands_in_the_profile_and_the_kubeconfig(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cluster/kubernetes.py: admin.conf read through the node's runner, the CA and credentials kept in the
    profile (ca.crt 0644, kubeconfig.json 0600), the context merged into $KUBECONFIG."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kube" / "config"))
    ctx = Context(Home(tmp_path / "home"), "dev")
    runner = FakeRunner({"/etc/kubernetes/admin.conf": fixture("kubeconfig/admin.conf")})
    record = MachineRecord(machine="dev", driver="qemu", apiserver_host="127.0.0.1", apiserver_port=40443)
    data = kubernetes._fetch_kubeconfig(ctx, ClusterConfig(name="dev", driver="qemu"),
                                        fake_node("dev", runner=runner, record=record))
    assert data == profile_config()
    profile = ctx.home.profile_dir("dev")
    assert (profile / "ca.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert mode(profile / "ca.crt") == 0o644 and mode(profile / "kubeconfig.json") == 0o600
    assert json.loads((profile / "kubeconfig.json").read_text()) == data
    assert kubeconfig.context_server("dev", tmp_path / "kube" / "config") == SERVER
    assert runner.commands == [["cat", "--", "/etc/kubernetes/admin.conf"]]
