"""The kubeadm configuration minisand renders, checked by the real kubeadm of the offline lab
(`kubeadm config validate`: strict decoding of every document, so an unknown or mistyped field of
InitConfiguration, ClusterConfiguration, JoinConfiguration, KubeletConfiguration or KubeProxyConfiguration fails).
Checked: every golden kubeadm file, the kubeadm.yaml of every golden dry-run plan, and a configuration carrying a
value for every kube-proxy field `--extra-config` accepts. kubeadm runs in an empty network namespace."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from e2e.lab.builder import load_manifest
from e2e.lab.cache import LabCache
from e2e.lab.versions import Versions
from minisand.bootstrap import kubeadm
from minisand.config.extraconfig import KUBE_PROXY_FIELDS
from tests.unit.golden import GOLDEN

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

# a valid value for every kube-proxy field minisand accepts (tests/unit checks that the keys are the API's)
KUBE_PROXY_VALUES = {
    "mode": "ipvs", "bindAddress": "0.0.0.0", "healthzBindAddress": "0.0.0.0:10256",
    "nodePortAddresses": "10.0.0.0/8,192.168.0.0/16", "configSyncPeriod": "15m0s", "ipvs.scheduler": "lc",
    "ipvs.strictARP": "true", "ipvs.syncPeriod": "30s", "ipvs.minSyncPeriod": "1s", "ipvs.tcpTimeout": "900s",
    "ipvs.tcpFinTimeout": "120s", "ipvs.udpTimeout": "300s", "ipvs.excludeCIDRs": "10.1.0.0/16",
    "iptables.masqueradeAll": "true", "iptables.masqueradeBit": "14", "iptables.syncPeriod": "30s",
    "iptables.minSyncPeriod": "1s", "iptables.localhostNodePorts": "false", "nftables.masqueradeAll": "false",
    "nftables.masqueradeBit": "15", "nftables.syncPeriod": "30s", "nftables.minSyncPeriod": "1s",
}


@pytest.fixture(scope="module")
def kubeadm_bin() -> Path:
    manifest = load_manifest(LabCache.default(), Versions())
    if manifest is None:
        pytest.skip("the offline lab is not built (python -m e2e.lab build; scripts/setup does it)")
    return Path(manifest.kubernetes_bin) / "kubeadm"


def validate(kubeadm_bin: Path, text: str, tmp_path: Path) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(text)
    proc = subprocess.run(["unshare", "--net", "--", str(kubeadm_bin), "config", "validate", "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("golden", sorted(p.name for p in (GOLDEN / "kubeadm").glob("*.yaml")))
def test_golden_kubeadm_configs_validate(kubeadm_bin: Path, tmp_path: Path, golden: str) -> None:
    validate(kubeadm_bin, (GOLDEN / "kubeadm" / golden).read_text(), tmp_path)


@pytest.mark.parametrize("plan", sorted(p.name for p in (GOLDEN / "dryrun").glob("*.json")))
def test_dry_run_kubeadm_configs_validate(kubeadm_bin: Path, tmp_path: Path, plan: str) -> None:
    files = json.loads((GOLDEN / "dryrun" / plan).read_text())["files"]
    text = files.get(str(kubeadm.KUBEADM_YAML))
    if text is None:
        assert plan.startswith("no-kubernetes")
        return
    # the plan's placeholders, as a start fills them in
    text = text.replace("<generated at start>", "abcdef.0123456789abcdef").replace(
        "<node IP, known after boot>", "192.168.39.10")
    validate(kubeadm_bin, text, tmp_path)


def test_every_kube_proxy_field_minisand_accepts_validates(kubeadm_bin: Path, tmp_path: Path) -> None:
    assert set(KUBE_PROXY_VALUES) == set(KUBE_PROXY_FIELDS)
    extra = tuple(f"kube-proxy.{k}={v}" for k, v in KUBE_PROXY_VALUES.items())
    text = kubeadm.render_init(kubeadm.KubeadmParams(
        kubernetes_version="v1.36.4", cluster_name="dev", node_name="dev", node_ip="192.168.39.10",
        image_repository="registry.k8s.io", token="abcdef.0123456789abcdef", extra_config=extra))
    validate(kubeadm_bin, text, tmp_path)
    broken = text.replace("masqueradeBit: 14", "masqueradeBit: \"14\"")
    assert broken != text
    with pytest.raises(AssertionError, match="masqueradeBit"):
        validate(kubeadm_bin, broken, tmp_path)  # the check has teeth: a string where kubeadm wants a number
