"""crictl, built from its Go module (Debian has no package): CGO_ENABLED=0, -trimpath, cached by version
under the build cache (crictl/<version>/crictl), never in the repository."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from minisand.iso.recipe import CrictlSpec, build_cache_root
from minisand.iso.tools import BuildLog, require_tools

_GO_MOD = """module minisand.local/crictl-build

go 1.26

require {module} {version}
"""

_TOOLS_GO = """//go:build tools

package tools

import _ "{package}"
"""


def crictl_binary(spec: CrictlSpec, blog: BuildLog) -> Path:
    """The cached crictl for spec.version, building it first when missing."""
    out = build_cache_root() / "crictl" / spec.version / "crictl"
    if out.is_file() and os.access(out, os.X_OK):
        return out
    require_tools(["go"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="minisand-crictl-") as tmp:
        work = Path(tmp)
        # A wrapper module: `go install pkg@version` needs the proxy's version list, which it may refuse.
        (work / "go.mod").write_text(_GO_MOD.format(module=spec.module, version=spec.version))
        (work / "tools.go").write_text(_TOOLS_GO.format(package=spec.package))
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
        blog.run(["go", "mod", "tidy"], env=env, cwd=work, timeout=1200)
        ldflags = f"-s -w -X {spec.module}/pkg/version.Version={spec.version}"
        blog.run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(work / "crictl"), spec.package],
                 env=env, cwd=work, timeout=1800)
        tmp_out = out.with_name(".crictl.tmp")
        shutil.copy2(work / "crictl", tmp_out)
        tmp_out.chmod(0o755)
        tmp_out.replace(out)
    return out
