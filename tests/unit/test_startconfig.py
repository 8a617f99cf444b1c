from __future__ import annotations

import pytest

from minisand.cluster.startconfig import StartRequest, resolve
from minisand.config.model import DEFAULT_KUBERNETES_VERSION, ClusterConfig, MirrorConfig
from minisand.config.validate import HostResources
from minisand.errors import ExitCode, MinisandError

HOST = HostResources(cpus=8, memory_mb=16384)  # a fixed host: results must not depend on the machine running tests


def test_defaults() -> None:
    r = resolve("dev", StartRequest(), None, {}, "qemu", host=HOST)
    c = r.config
    assert (c.driver, c.cpus, c.memory_mb, c.kubernetes_version) == ("qemu", 2, 4096, DEFAULT_KUBERNETES_VERSION)
    assert c.container_runtime == "containerd" and c.nodes == 1 and not r.warnings


def test_precedence_flag_over_stored_over_setting() -> None:
    settings: dict[str, str | list[str]] = {"memory": "8g", "registry-mirror": ["http://s:5000"]}
    fresh = resolve("dev", StartRequest(), None, settings, "qemu", host=HOST).config
    assert fresh.memory_mb == 8192 and fresh.mirrors.registry_mirrors == ("http://s:5000",)
    stored = ClusterConfig(name="dev", driver="qemu", memory_mb=3072)
    again = resolve("dev", StartRequest(registry_mirror=("http://f:5000",)), stored, settings, "qemu", host=HOST)
    assert again.config.memory_mb == 3072  # the stored value wins over the setting
    assert again.config.mirrors.registry_mirrors == ("http://f:5000",)
    assert again.sources["memory"] == "profile" and again.sources["registry-mirror"] == "flag"


def test_disk_size_of_existing_cluster_is_kept_with_a_warning() -> None:
    stored = ClusterConfig(name="dev", driver="qemu", disk_mb=20480)
    r = resolve("dev", StartRequest(disk_size="40g"), stored, {}, "qemu", host=HOST)
    assert r.config.disk_mb == 20480
    assert any("--disk-size" in w for w in r.warnings)


@pytest.mark.parametrize("driver", ["qemu", "kvm2"])
def test_a_vm_stores_changed_cpus_and_memory_for_its_next_boot(driver: str) -> None:
    stored = ClusterConfig(name="dev", driver=driver, memory_mb=3072, cpus=2)
    r = resolve("dev", StartRequest(memory="6g", cpus="1"), stored, {}, driver, host=HOST)
    assert (r.config.memory_mb, r.config.cpus) == (6144, 1) and not r.warnings


def test_the_none_driver_keeps_its_resources_with_a_warning() -> None:
    stored = ClusterConfig(name="dev", driver="none", memory_mb=3072)
    r = resolve("dev", StartRequest(memory="6g"), stored, {}, "none", host=HOST)
    assert r.config.memory_mb == 3072
    assert any("--memory" in w for w in r.warnings)


@pytest.mark.parametrize(("req", "needle"), [
    (StartRequest(memory="lots"), "--memory"),
    (StartRequest(cpus="0"), "--cpus"),
    (StartRequest(driver="foo"), "unknown driver"),
    (StartRequest(container_runtime="docker"), "Docker Engine"),
    (StartRequest(container_runtime="cri-o"), "CRI-O"),
    (StartRequest(kubernetes_version="v1.20.0"), "not supported"),
    (StartRequest(wait="apiserver,bogus"), "--wait"),
    (StartRequest(nodes=0), "--nodes"),
    (StartRequest(iso_url="ftp://x/y.iso"), "--iso-url"),
    (StartRequest(iso_checksum="md5:abc"), "--iso-checksum"),
    (StartRequest(registry_mirror=("not a url",)), "--registry-mirror"),
    (StartRequest(insecure_registry=("https://r:5000",)), "scheme"),
    (StartRequest(guest_forward=("10.0.2.100:5000",)), "--guest-forward"),
    (StartRequest(qemu_accel="hvf"), "--qemu-accel"),
    (StartRequest(no_kubernetes=True, kubernetes_version="v1.36.4"), "contradict"),
])
def test_bad_input(req: StartRequest, needle: str) -> None:
    with pytest.raises(MinisandError) as exc:
        resolve("dev", req, None, {}, "qemu", host=HOST)
    assert exc.value.code == ExitCode.BAD_INPUT
    assert needle in exc.value.message
    assert exc.value.hint


def test_immutable_fields_of_existing_cluster() -> None:
    stored = ClusterConfig(name="dev", driver="qemu")
    for req in (StartRequest(driver="kvm2"), StartRequest(kubernetes_version="v1.35.8"), StartRequest(nodes=2)):
        with pytest.raises(MinisandError) as exc:
            resolve("dev", req, stored, {}, "qemu", host=HOST)
        assert "minisand delete" in exc.value.hint


def test_ssh_driver_requires_address_and_key() -> None:
    with pytest.raises(MinisandError, match="--ssh-ip-address"):
        resolve("dev", StartRequest(driver="ssh"), None, {}, "ssh", host=HOST)


def test_addons_accumulate_and_split() -> None:
    stored = ClusterConfig(name="dev", driver="qemu", addons=("gvisor",))
    r = resolve("dev", StartRequest(addons=("kata,gvisor", "kata")), stored, {}, "qemu", host=HOST)
    assert r.config.addons == ("gvisor", "kata")


def test_machine_names() -> None:
    assert ClusterConfig(name="p", driver="qemu", nodes=3).machine_names() == ["p", "p-m02", "p-m03"]


def _bad(req: StartRequest, stored: ClusterConfig | None = None, settings: dict[str, str | list[str]] | None = None,
         host: HostResources = HOST, driver: str = "qemu") -> MinisandError:
    with pytest.raises(MinisandError) as exc:
        resolve("dev", req, stored, settings or {}, driver, host=host)
    assert exc.value.code == ExitCode.BAD_INPUT and exc.value.hint, exc.value.one_line()
    return exc.value


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "0", "25h", "1e9", "99999999999999999999"])
def test_wait_timeout_refuses_non_finite_negative_and_huge(value: str) -> None:
    assert "--wait-timeout" in _bad(StartRequest(wait_timeout=value)).message


def test_wait_timeout_accepts_durations() -> None:
    for text, secs in (("15m", 900.0), ("900", 900.0), ("24h", 86400.0), ("1h30m", 5400.0)):
        assert resolve("dev", StartRequest(wait_timeout=text), None, {}, "qemu", host=HOST).config.wait_timeout == secs


def test_memory_cap_and_host_memory() -> None:
    assert "1 TiB" in _bad(StartRequest(memory="99999999g")).message
    err = _bad(StartRequest(memory="20g"), host=HostResources(cpus=8, memory_mb=16384))
    assert "16384 MiB this host has" in err.message and "--memory=15360mb" in err.hint
    warned = resolve("dev", StartRequest(memory="15.5g"), None, {}, "qemu", host=HOST)
    assert warned.config.memory_mb == 15872 and any("less than 1 GiB" in w for w in warned.warnings)


def test_cpus_max_respects_host_and_cap() -> None:
    r = resolve("dev", StartRequest(cpus="max"), None, {}, "qemu", host=HostResources(cpus=4, memory_mb=16384))
    assert r.config.cpus == 4
    big = resolve("dev", StartRequest(cpus="max"), None, {}, "qemu", host=HostResources(cpus=200, memory_mb=16384))
    assert big.config.cpus == 64
    setting = resolve("dev", StartRequest(), None, {"cpus": "max"}, "qemu", host=HostResources(cpus=3, memory_mb=8192))
    assert setting.config.cpus == 3


def test_cpus_over_the_hosts_count_are_refused_for_vms_only() -> None:
    err = _bad(StartRequest(cpus="9"))
    assert "8 CPUs this host has" in err.message and "--cpus=8" in err.hint
    ssh = StartRequest(cpus="9", driver="ssh", ssh_ip_address="127.0.0.1", ssh_key="/k")
    assert resolve("dev", ssh, None, {}, "ssh", host=HOST).config.cpus == 9  # the ssh driver uses the machine as is


def test_existing_cluster_is_not_rechecked_against_the_host() -> None:
    stored = ClusterConfig(name="dev", driver="qemu", cpus=8, memory_mb=16384)
    r = resolve("dev", StartRequest(), stored, {}, "qemu", host=HostResources(cpus=2, memory_mb=4096))
    assert (r.config.cpus, r.config.memory_mb) == (8, 16384)


def test_cpus_max_on_an_existing_cluster_compares_the_concrete_count() -> None:
    stored = ClusterConfig(name="dev", driver="qemu", cpus=8)
    assert not resolve("dev", StartRequest(cpus="max"), stored, {}, "qemu", host=HOST).warnings


def test_unknown_addon_fails_up_front() -> None:
    err = _bad(StartRequest(addons=("gvisor,nosuchaddon",)))
    assert "nosuchaddon" in err.message and "gvisor" in err.hint and err.reason == "ADDON_UNKNOWN"


@pytest.mark.parametrize("port", ["0", "65536", "-1", "ssh", ""])
def test_ssh_port_out_of_range_is_refused(port: str) -> None:
    err = _bad(StartRequest(driver="ssh", ssh_ip_address="127.0.0.1", ssh_key="/k", ssh_port=port), driver="ssh")
    assert "--ssh-port" in err.message


def test_ssh_port_is_kept() -> None:
    req = StartRequest(driver="ssh", ssh_ip_address="127.0.0.1", ssh_key="/k", ssh_port="2222")
    assert resolve("dev", req, None, {}, "ssh", host=HOST).config.driver_options.ssh_port == 2222


@pytest.mark.parametrize(("req", "needle"), [
    (StartRequest(iso_checksum="sha512:abc"), "--iso-checksum"),
    (StartRequest(iso_checksum="md5:" + "a" * 32), "--iso-checksum"),
    (StartRequest(iso_checksum="sha256:" + "a" * 128), "--iso-checksum"),
    (StartRequest(registry_mirror=("ftp://x",)), "--registry-mirror"),
    (StartRequest(registry_mirror=("file:///srv/mirror",)), "--registry-mirror"),
    (StartRequest(binary_mirror="http://h:0"), "port 0"),
    (StartRequest(insecure_registry=("h:0",)), "--insecure-registry"),
    (StartRequest(guest_forward=("10.0.2.100:0=127.0.0.1:5000",)), "--guest-forward"),
    (StartRequest(extra_config=("kube-proxy.nosuch=1",)), "supported kube-proxy fields"),
    (StartRequest(extra_config=("kubeadm.pod-network-cidr=10.0.0.0/8",)), "supported kubeadm keys"),
    (StartRequest(nodes="many"), "--nodes"),
    (StartRequest(nodes="17"), "--nodes"),
    (StartRequest(image_mirror_country="zz"), "--image-mirror-country"),
    (StartRequest(libvirt_uri="not a uri"), "--libvirt-uri"),
    (StartRequest(network="bridge"), "--network"),
    (StartRequest(driver=""), "--driver"),
])
def test_more_bad_input(req: StartRequest, needle: str) -> None:
    assert needle in _bad(req).one_line()


def test_sha512_iso_checksum_is_kept_for_verification() -> None:
    digest = "AB" * 64
    r = resolve("dev", StartRequest(iso_checksum=f"sha512:{digest}"), None, {}, "qemu", host=HOST)
    assert r.config.iso_checksum == f"sha512:{digest.lower()}"
    bare = resolve("dev", StartRequest(iso_checksum="c" * 128), None, {}, "qemu", host=HOST)
    assert bare.config.iso_checksum == "sha512:" + "c" * 128


def test_file_mirrors_are_accepted_where_the_host_downloads() -> None:
    req = StartRequest(binary_mirror="file:///srv/k8s", gvisor_mirror="file:///srv/gvisor", offline=True)
    m = resolve("dev", req, None, {}, "qemu", host=HOST).config.mirrors
    assert (m.binary_mirror, m.gvisor_mirror, m.offline) == ("file:///srv/k8s", "file:///srv/gvisor", True)
    from_settings = resolve("dev", StartRequest(), None, {"binary-mirror": "file:///srv/k8s"}, "qemu", host=HOST)
    assert from_settings.config.mirrors.binary_mirror == "file:///srv/k8s"


def test_extra_config_of_an_existing_cluster_is_kept_with_a_warning() -> None:
    stored = ClusterConfig(name="dev", driver="qemu", extra_config=("kubelet.max-pods=50",))
    r = resolve("dev", StartRequest(extra_config=("kube-proxy.mode=ipvs",)), stored, {}, "qemu", host=HOST)
    assert r.config.extra_config == ("kubelet.max-pods=50",)
    assert any("--extra-config cannot change" in w for w in r.warnings)
    same = resolve("dev", StartRequest(extra_config=("kubelet.max-pods=50",)), stored, {}, "qemu", host=HOST)
    assert not same.warnings


def test_a_bad_config_set_default_names_the_key_and_how_to_fix_it() -> None:
    for key, value in (("wait", "bogus"), ("driver", "foo"), ("registry-mirror", ["ftp://x"]),
                       ("wait-timeout", "nan"), ("cpus", "0")):
        err = _bad(StartRequest(), settings={key: value})
        assert f"default for {key} is invalid" in err.message and f"minisand config unset {key}" in err.hint


def test_a_flag_overrides_a_bad_default_without_reading_it() -> None:
    r = resolve("dev", StartRequest(wait="none"), None, {"wait": "bogus"}, "qemu", host=HOST)
    assert r.config.wait == ()


def test_stored_profile_wins_over_settings_and_sources_are_recorded() -> None:
    settings: dict[str, str | list[str]] = {"binary-mirror": "https://s.example", "wait-timeout": "20m"}
    fresh = resolve("dev", StartRequest(cpus="4"), None, settings, "qemu", host=HOST)
    assert fresh.config.mirrors.binary_mirror == "https://s.example" and fresh.config.wait_timeout == 1200.0
    assert (fresh.sources["cpus"], fresh.sources["binary-mirror"], fresh.sources["memory"]) == \
        ("flag", "config", "default")
    stored = ClusterConfig(name="dev", driver="qemu")
    again = resolve("dev", StartRequest(), stored, settings, "qemu", host=HOST)
    assert again.config.mirrors.binary_mirror is None and again.sources["binary-mirror"] == "profile"
    options = again.options()
    assert options["wait-timeout"] == {"value": 900.0, "text": "900s", "source": "profile"}
    assert options["memory"]["text"] == "4096mb"


def test_empty_flags_clear_mirrors() -> None:
    stored = ClusterConfig(name="dev", driver="qemu", mirrors=MirrorConfig(binary_mirror="https://b.example",
                                                                          registry_mirrors=("http://m:5000",)))
    r = resolve("dev", StartRequest(binary_mirror="", registry_mirror=("",)), stored, {}, "qemu", host=HOST)
    assert r.config.mirrors.binary_mirror is None and r.config.mirrors.registry_mirrors == ()
    assert r.sources["binary-mirror"] == r.sources["registry-mirror"] == "flag"


def test_unknown_request_field_is_a_bug() -> None:
    with pytest.raises(TypeError):
        StartRequest(no_such_flag="x")


_STORED = [
    {"driver": "qemu"},
    {"driver": "kvm2", "network": "user", "cpus": "4", "memory": "6g", "disk_size": "30g", "nodes": "2",
     "addons": ["gvisor", "headlamp"], "wait": "all", "wait_timeout": "15m",
     "extra_config": ["kubelet.max-pods=50", "kube-proxy.mode=ipvs", "kubeadm.ignore-preflight-errors=all"],
     "registry_mirror": ["http://127.0.0.1:5000", "docker.io=https://m.example.com/x", "http://[::1]:5000/"],
     "insecure_registry": ["127.0.0.1:5000", "[::1]:5000"], "binary_mirror": "http://127.0.0.1:8080/",
     "gvisor_mirror": "https://g.example.com", "iso_url": "file:///tmp/x.iso", "iso_checksum": "sha256:" + "a" * 64,
     "image_repository": "127.0.0.1:5000/k8s", "offline": True},
    {"driver": "qemu", "guest_forward": ["10.0.2.100:80=127.0.0.1:8080"], "wait": "none", "wait_timeout": "90s",
     "iso_url": "https://x.example.com/a.iso", "iso_checksum": "sha512:" + "b" * 128, "qemu_accel": "tcg"},
    {"driver": "qemu", "image_mirror_country": "cn", "guest_egress": False, "kubernetes_version": "v1.33.0",
     "cpus": "max", "memory": "6000mb"},
    {"driver": "kvm2", "libvirt_uri": "qemu:///session", "wait": "apiserver,node_ready"},
    {"driver": "none", "no_kubernetes": True},
    {"driver": "ssh", "ssh_ip_address": "127.0.0.1", "ssh_key": "/tmp/k", "ssh_port": "2222", "ssh_user": "u"},
]


@pytest.mark.parametrize("flags", _STORED, ids=lambda f: ",".join(f))
def test_a_stored_profile_is_valid_on_the_next_start(flags: dict[str, object]) -> None:
    """What start stores passes the check of stored values (which calls a hand-edited value corrupt), unchanged."""
    first = resolve("dev", StartRequest(**flags), None, {}, "qemu", host=HOST).config
    assert resolve("dev", StartRequest(), first, {}, "qemu", host=HOST).config == first


def test_a_stored_value_no_flag_gives_is_corrupt() -> None:
    import dataclasses

    stored = dataclasses.replace(ClusterConfig(name="dev", driver="qemu"), cpus=-1)
    with pytest.raises(MinisandError) as exc:
        resolve("dev", StartRequest(), stored, {}, "qemu", host=HOST)
    assert exc.value.code == ExitCode.PROFILE_CORRUPT and "--cpus" in exc.value.message
