"""What the addons render: gVisor's shim configuration, the RuntimeClass objects, the probe pod. Golden files:
tests/unit/golden/addons/. A RuntimeClass's handler must be a runtime the addon adds to containerd's config."""

from __future__ import annotations

import tomllib

import pytest
import yaml

from minisand.addons import gvisor, registry
from minisand.addons.manifests import render_objects
from minisand.config.model import ClusterConfig
from minisand.templating import render
from tests.unit.golden import assert_golden


def test_runsc_toml_golden() -> None:
    text = gvisor.runsc_toml()
    assert_golden("addons", "gvisor-runsc.toml", text)
    data = tomllib.loads(text)
    assert data["binary_name"] == f"/var/lib/minisand/addons/gvisor/{gvisor.RELEASE}/runsc"
    assert data["runsc_config"]["platform"] == "systrap"  # no KVM needed


@pytest.mark.parametrize("addon", ["gvisor", "kata"])
def test_runtime_class_golden_names_a_handler_the_addon_adds(addon: str) -> None:
    spec = registry.addons()[addon]
    (template,) = spec.manifests
    assert_golden("addons", f"{addon}-runtimeclass.yaml", render(f"addons/{template}"))
    (obj,) = render_objects(template)
    assert (obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) == ("node.k8s.io/v1", "RuntimeClass", addon)
    handlers = {h.name for h in registry.runtime_handlers(ClusterConfig(name="p", driver="qemu", addons=(addon,)))}
    assert obj["handler"] in handlers
    assert obj["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "minisand", "minisand.io/addon": addon}


@pytest.mark.parametrize("runtime_class", ["gvisor", None])
def test_probe_pod_golden(runtime_class: str | None) -> None:
    values = dict(name="minisand-probe-x", addon="gvisor", runtime_class=runtime_class,
                  image="docker.io/library/busybox:1.35.0")
    text = render("addons/probe/pod.yaml.j2", **values)
    assert_golden("addons", f"probe-pod-{runtime_class or 'runc'}.yaml", text)
    spec = yaml.safe_load(text)["spec"]
    assert spec.get("runtimeClassName") == runtime_class
    assert spec["restartPolicy"] == "Never" and spec["containers"][0]["command"] == ["uname", "-r"]
