"""The kubeadm configuration minisand renders (kubeadm API v1beta4, KubeletConfiguration v1beta1,
KubeProxyConfiguration v1alpha1), and --extra-config from the flag to it: every accepted value lands somewhere, and
everything else is refused up front. Every key rendered must be a field of those APIs (API_FIELDS below).
Golden files: tests/unit/golden/kubeadm/ (MINISAND_UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from minisand.bootstrap import kubeadm
from minisand.config.extraconfig import (
    KUBE_PROXY_FIELDS,
    ExtraConfig,
    kube_proxy_settings,
    parse_extra_config,
    preflight_ignores,
)
from minisand.errors import ExitCode, MinisandError
from tests.unit.golden import GOLDEN, assert_golden

EXTRA = ("kube-proxy.mode=ipvs", "kube-proxy.ipvs.strictARP=true", "kube-proxy.ipvs.scheduler=lc",
         "kube-proxy.nodePortAddresses=10.0.0.0/8,192.168.0.0/16", "kube-proxy.iptables.masqueradeBit=14",
         "kubelet.max-pods=50", "kubelet.eviction-hard=memory.available<5%",
         "apiserver.audit-log-maxage=7", "controller-manager.node-cidr-mask-size=25", "scheduler.v=2",
         "etcd.quota-backend-bytes=4294967296", "kubeadm.ignore-preflight-errors=FileAvailable--etc-kubernetes-x")


CA_HASH = "sha256:" + "a" * 64

# The JSON field names of the Go types, read from k8s.io/kubernetes@v1.36.4
# (cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go, bootstraptoken/v1 for BootstrapToken), k8s.io/kubelet@v0.36.4
# (config/v1beta1/types.go: only the fields minisand may render are listed) and k8s.io/kube-proxy@v0.36.4
# (config/v1alpha1/types.go, the only KubeProxyConfiguration version there is). A dict is a struct (its fields),
# a one-item list a list of that struct, None a value of any shape (a map, a list of strings, a scalar).
Fields = dict[str, "Fields | list[Fields] | None"]
ARG: Fields = {"name": None, "value": None}
COMPONENT: Fields = {"extraArgs": [ARG], "extraVolumes": None, "extraEnvs": None}
NODE_REGISTRATION: Fields = {"name": None, "criSocket": None, "taints": None, "kubeletExtraArgs": [ARG],
                             "ignorePreflightErrors": None, "imagePullPolicy": None, "imagePullSerial": None}
TIMEOUTS: Fields = dict.fromkeys(("controlPlaneComponentHealthCheck", "kubeletHealthCheck", "kubernetesAPICall",
                                  "etcdAPICall", "tlsBootstrap", "discovery", "upgradeManifests"))
API_ENDPOINT: Fields = {"advertiseAddress": None, "bindPort": None}
IPVS_FIELDS = ("syncPeriod", "minSyncPeriod", "scheduler", "excludeCIDRs", "strictARP", "tcpTimeout",
               "tcpFinTimeout", "udpTimeout")
IPTABLES_FIELDS = ("masqueradeBit", "masqueradeAll", "localhostNodePorts", "syncPeriod", "minSyncPeriod")
NFTABLES_FIELDS = ("masqueradeBit", "masqueradeAll", "syncPeriod", "minSyncPeriod")
API_FIELDS: dict[tuple[str, str], Fields] = {
    ("kubeadm.k8s.io/v1beta4", "InitConfiguration"): {
        "bootstrapTokens": [dict.fromkeys(("token", "description", "ttl", "expires", "usages", "groups"))],
        "dryRun": None, "nodeRegistration": NODE_REGISTRATION, "localAPIEndpoint": API_ENDPOINT,
        "certificateKey": None, "skipPhases": None, "patches": None, "timeouts": TIMEOUTS},
    ("kubeadm.k8s.io/v1beta4", "ClusterConfiguration"): {
        "etcd": {"local": {"imageRepository": None, "imageTag": None, "dataDir": None, "extraArgs": [ARG],
                           "extraEnvs": None, "serverCertSANs": None, "peerCertSANs": None}, "external": None},
        "networking": dict.fromkeys(("serviceSubnet", "podSubnet", "dnsDomain")),
        "kubernetesVersion": None, "controlPlaneEndpoint": None, "apiServer": {**COMPONENT, "certSANs": None},
        "controllerManager": COMPONENT, "scheduler": COMPONENT, "dns": None, "proxy": None, "certificatesDir": None,
        "imageRepository": None, "featureGates": None, "clusterName": None, "encryptionAlgorithm": None,
        "certificateValidityPeriod": None, "caCertificateValidityPeriod": None},
    ("kubeadm.k8s.io/v1beta4", "JoinConfiguration"): {
        "dryRun": None, "nodeRegistration": NODE_REGISTRATION, "caCertPath": None,
        "discovery": {"bootstrapToken": dict.fromkeys(("token", "apiServerEndpoint", "caCertHashes",
                                                       "unsafeSkipCAVerification")),
                      "file": None, "tlsBootstrapToken": None},
        "controlPlane": None, "skipPhases": None, "patches": None, "timeouts": TIMEOUTS},
    ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"): {
        **dict.fromkeys(("cgroupDriver", "containerRuntimeEndpoint", "failSwapOn", "failCgroupV1", "hairpinMode",
                         "clusterDomain", "runtimeRequestTimeout", "imageGCHighThresholdPercent", "evictionHard",
                         "resolvConf")),
        "crashLoopBackOff": {"maxContainerRestartPeriod": None}},
    ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"): {
        **dict.fromkeys(("featureGates", "clientConnection", "logging", "hostnameOverride", "bindAddress",
                         "healthzBindAddress", "metricsBindAddress", "bindAddressHardFail", "enableProfiling",
                         "showHiddenMetricsForVersion", "mode", "winkernel", "detectLocalMode", "detectLocal",
                         "clusterCIDR", "nodePortAddresses", "oomScoreAdj", "configSyncPeriod", "portRange",
                         "windowsRunAsService")),
        "iptables": dict.fromkeys(IPTABLES_FIELDS), "ipvs": dict.fromkeys(IPVS_FIELDS),
        "nftables": dict.fromkeys(NFTABLES_FIELDS),
        "conntrack": dict.fromkeys(("maxPerCore", "min", "tcpEstablishedTimeout", "tcpCloseWaitTimeout",
                                    "tcpBeLiberal", "udpTimeout", "udpStreamTimeout"))},
}


def params(extra: tuple[str, ...] = (), **kw: Any) -> kubeadm.KubeadmParams:
    base: dict[str, Any] = dict(kubernetes_version="v1.36.4", cluster_name="dev", node_name="dev-m02",
                                node_ip="192.168.39.12", image_repository="registry.k8s.io",
                                token="abcdef.0123456789abcdef", extra_config=extra)
    return kubeadm.KubeadmParams(**{**base, **kw})


def unknown_fields(value: Any, fields: Fields | list[Fields] | None, where: str) -> list[str]:
    """The keys of value that its API type does not have (a typo kubeadm would refuse or ignore)."""
    if fields is None:
        return []
    if isinstance(fields, list):
        assert isinstance(value, list), where
        return [u for i, item in enumerate(value) for u in unknown_fields(item, fields[0], f"{where}[{i}]")]
    assert isinstance(value, dict), where
    return [f"{where}.{k}" for k in value if k not in fields] + \
        [u for k, v in value.items() if k in fields for u in unknown_fields(v, fields[k], f"{where}.{k}")]


def docs(text: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(text)}


def args(items: list[dict[str, str]]) -> dict[str, str]:
    return {a["name"]: a["value"] for a in items}


def test_init_golden_default() -> None:
    assert_golden("kubeadm", "init-default.yaml", kubeadm.render_init(params()))


def test_init_golden_for_a_host_node() -> None:
    """A none/ssh node: cgroupfs on cgroup v1 (no systemd), the API server reached by the node's IP, extra SANs,
    the kubelet's own resolv.conf, the cn image repository."""
    text = kubeadm.render_init(params(
        node_name="dev", node_ip="10.200.0.2", cgroup_driver="cgroupfs", fail_cgroup_v1=False,
        control_plane_host="10.200.0.2", cert_sans=("127.0.0.1", "10.200.0.2", "dev.example"),
        kubelet_config=(("resolvConf", "/var/lib/minisand/kubelet-resolv.conf"),), health_timeout="20m0s",
        image_repository="registry.cn-hangzhou.aliyuncs.com/google_containers"))
    assert_golden("kubeadm", "init-host-cgroupfs.yaml", text)
    d = docs(text)
    assert d["ClusterConfiguration"]["controlPlaneEndpoint"] == "10.200.0.2:8443"
    assert d["ClusterConfiguration"]["apiServer"]["certSANs"] == [
        "127.0.0.1", "localhost", "10.200.0.2", "control-plane.minisand.internal", "dev.example"]
    kubelet = d["KubeletConfiguration"]
    assert (kubelet["cgroupDriver"], kubelet["failCgroupV1"]) == ("cgroupfs", False)
    assert kubelet["resolvConf"] == "/var/lib/minisand/kubelet-resolv.conf"
    assert d["InitConfiguration"]["timeouts"]["kubeletHealthCheck"] == "20m0s"


def test_join_golden_default() -> None:
    text = kubeadm.render_join(params(), CA_HASH)
    assert_golden("kubeadm", "join-default.yaml", text)
    join = docs(text)["JoinConfiguration"]
    assert join["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": "control-plane.minisand.internal:8443", "token": "abcdef.0123456789abcdef",
        "caCertHashes": [CA_HASH]}
    assert join["nodeRegistration"]["ignorePreflightErrors"] == list(kubeadm.IGNORED_PREFLIGHT)


@pytest.mark.parametrize("golden", sorted(p.name for p in (GOLDEN / "kubeadm").glob("*.yaml")))
def test_every_rendered_key_is_a_field_of_its_api(golden: str) -> None:
    """Each document of each golden kubeadm file has a known apiVersion and kind, and only fields its Go type has."""
    found = []
    for doc in yaml.safe_load_all((GOLDEN / "kubeadm" / golden).read_text()):
        key = (doc.pop("apiVersion"), doc.pop("kind"))
        assert key in API_FIELDS, f"{golden}: unexpected {key}"
        found.append(key[1])
        assert unknown_fields(doc, API_FIELDS[key], key[1]) == [], golden
    expected = ["JoinConfiguration"] if golden.startswith("join") else \
        ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"]
    assert found == expected


def test_the_field_check_catches_a_typo() -> None:
    doc = docs(kubeadm.render_init(params()))["ClusterConfiguration"]
    del doc["apiVersion"], doc["kind"]
    doc["apiServer"]["extraArgs"].append({"name": "v", "valeu": "2"})
    doc["networking"]["podSubnets"] = "10.0.0.0/8"
    assert unknown_fields(doc, API_FIELDS[("kubeadm.k8s.io/v1beta4", "ClusterConfiguration")], "c") == [
        "c.networking.podSubnets", "c.apiServer.extraArgs[1].valeu"]


def test_every_kube_proxy_field_minisand_accepts_is_in_kube_proxy_v1alpha1() -> None:
    proxy = API_FIELDS[("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")]
    for key in KUBE_PROXY_FIELDS:
        section, dot, field = key.partition(".")
        if dot:
            sub = proxy[section]
            assert isinstance(sub, dict) and field in sub, key
        else:
            assert section in proxy and proxy[section] is None, key


def test_init_golden_with_extra_config() -> None:
    text = kubeadm.render_init(params(EXTRA))
    assert_golden("kubeadm", "init-extra-config.yaml", text)
    d = docs(text)
    proxy = d["KubeProxyConfiguration"]
    assert proxy["mode"] == "ipvs" and proxy["ipvs"] == {"strictARP": True, "scheduler": "lc"}
    assert proxy["nodePortAddresses"] == ["10.0.0.0/8", "192.168.0.0/16"]
    assert proxy["iptables"] == {"masqueradeBit": 14}
    assert proxy["clusterCIDR"] == kubeadm.POD_SUBNET and proxy["conntrack"]["maxPerCore"] == 0
    reg = d["InitConfiguration"]["nodeRegistration"]
    assert args(reg["kubeletExtraArgs"]) == {"node-ip": "192.168.39.12", "max-pods": "50",
                                             "eviction-hard": "memory.available<5%"}
    assert reg["ignorePreflightErrors"] == [*kubeadm.IGNORED_PREFLIGHT, "FileAvailable--etc-kubernetes-x"]
    cluster = d["ClusterConfiguration"]
    assert args(cluster["apiServer"]["extraArgs"])["audit-log-maxage"] == "7"
    assert args(cluster["controllerManager"]["extraArgs"])["node-cidr-mask-size"] == "25"
    assert args(cluster["scheduler"]["extraArgs"])["v"] == "2"
    assert args(cluster["etcd"]["local"]["extraArgs"]) == {"quota-backend-bytes": "4294967296"}


def test_join_golden_with_extra_config() -> None:
    text = kubeadm.render_join(params(EXTRA), CA_HASH)
    assert_golden("kubeadm", "join-extra-config.yaml", text)
    reg = docs(text)["JoinConfiguration"]["nodeRegistration"]
    assert args(reg["kubeletExtraArgs"]) == {"node-ip": "192.168.39.12", "max-pods": "50",
                                             "eviction-hard": "memory.available<5%"}
    assert "FileAvailable--etc-kubernetes-x" in reg["ignorePreflightErrors"]


def test_every_accepted_extra_config_lands_in_the_rendered_config() -> None:
    """Nothing is validated and then dropped: each component's values appear in init's output."""
    init = kubeadm.render_init(params(EXTRA))
    for item in EXTRA:
        e = parse_extra_config(item)
        assert e.value.split(",")[0] in init, item
        assert e.component == "kubeadm" or e.key.rsplit(".", 1)[-1] in init, item


def test_ignore_all_preflight_checks_replaces_the_list() -> None:
    assert preflight_ignores(["kubeadm.ignore-preflight-errors=all"], kubeadm.IGNORED_PREFLIGHT) == ("all",)
    text = kubeadm.render_init(params(("kubeadm.ignore-preflight-errors=NumCPU,All",)))
    assert docs(text)["InitConfiguration"]["nodeRegistration"]["ignorePreflightErrors"] == ["all"]
    k = kubeadm.Kubeadm(runner=None, services=None, version="v1.36.4",  # type: ignore[arg-type]
                        ignore_preflight=kubeadm.ignored_preflight(("kubeadm.ignore-preflight-errors=all",)))
    assert k._ignore() == "--ignore-preflight-errors=all"


def test_kube_proxy_last_value_wins_and_types() -> None:
    s = kube_proxy_settings(["kube-proxy.mode=iptables", "kube-proxy.mode=nftables", "kubelet.v=2",
                             "kube-proxy.configSyncPeriod=15m0s", "kube-proxy.bindAddress=0.0.0.0"])
    assert s.fields == (("mode", "nftables"), ("configSyncPeriod", "15m0s"), ("bindAddress", "0.0.0.0"))


def test_parse_extra_config_keeps_the_value() -> None:
    assert parse_extra_config("kubelet.max-pods=50") == ExtraConfig("kubelet", "max-pods", "50")
    assert parse_extra_config("apiserver.oidc-username-claim=a=b") == \
        ExtraConfig("apiserver", "oidc-username-claim", "a=b")


@pytest.mark.parametrize(("text", "needle"), [
    ("nosuch.key=1", "components:"),
    ("kubelet", "components:"),
    ("kubelet.max-pods", "components:"),
    ("kubelet.--max-pods=1", "flag name"),
    ("kubelet.max pods=1", "flag name"),
    ("kubelet.v=1\n2", "control characters"),
    ("kube-proxy.mode=userspace", "one of iptables, ipvs, nftables"),
    ("kube-proxy.nosuch=1", "supported kube-proxy fields: mode"),
    ("kube-proxy.clusterCIDR=10.0.0.0/8", "supported kube-proxy fields"),
    ("kube-proxy.conntrack.maxPerCore=1", "supported kube-proxy fields"),
    ("kube-proxy.ipvs.strictARP=yes", "true or false"),
    ("kube-proxy.ipvs.syncPeriod=soon", "duration"),
    ("kube-proxy.iptables.masqueradeBit=32", "0..31"),
    ("kube-proxy.nodePortAddresses=nowhere", "CIDR"),
    ("kube-proxy.healthzBindAddress=0.0.0.0:0", "IP:PORT"),
    ("kubeadm.skip-phases=addon/kube-proxy", "supported kubeadm keys: ignore-preflight-errors"),
    ("kubeadm.ignore-preflight-errors=", "check names"),
    ("kubeadm.ignore-preflight-errors=a b", "check names"),
])
def test_bad_extra_config_is_refused_with_what_is_supported(text: str, needle: str) -> None:
    with pytest.raises(MinisandError) as exc:
        parse_extra_config(text)
    assert exc.value.code == ExitCode.BAD_INPUT
    assert needle in exc.value.one_line()


@pytest.mark.parametrize("version, capped", [("v1.36.4", True), ("v1.35.0", True), ("v1.34.2", False)])
def test_crash_loop_back_off_is_capped_where_the_kubelet_accepts_it(version: str, capped: bool) -> None:
    """KubeletCrashLoopBackOffMax is on by default from v1.35; an older kubelet refuses the field."""
    text = kubeadm.render_init(kubeadm.KubeadmParams(
        kubernetes_version=version, cluster_name="m", node_name="m", node_ip="10.0.2.15",
        image_repository="registry.k8s.io", token="abcdef.0123456789abcdef"))
    kubelet = next(d for d in yaml.safe_load_all(text) if d["kind"] == "KubeletConfiguration")
    assert (kubelet.get("crashLoopBackOff") == {"maxContainerRestartPeriod": "20s"}) is capped
