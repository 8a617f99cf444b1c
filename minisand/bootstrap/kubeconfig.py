"""The user's kubeconfig: the cluster's admin credentials merged in as context <profile> (made current),
written atomically with mode 0600, and removed again on delete (current-context is then unset if it was the
profile's, never moved to another cluster). $KUBECONFIG's first entry, else ~/.kube/config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from minisand.errors import ExitCode, MinisandError
from minisand.fsutil import atomic_write_text


def kubeconfig_path() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def _load(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        data = {}
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise MinisandError(f"{path} is not a kubeconfig: {exc}", hint="fix it or point KUBECONFIG elsewhere",
                            code=ExitCode.KUBERNETES_ERROR) from None
    except yaml.YAMLError as exc:
        raise MinisandError(f"{path} is not valid YAML: {exc}", hint=f"fix {path} or point KUBECONFIG elsewhere",
                            code=ExitCode.KUBERNETES_ERROR) from None
    if not isinstance(data, dict):
        raise MinisandError(f"{path} is not a kubeconfig", hint="fix it or point KUBECONFIG elsewhere",
                            code=ExitCode.KUBERNETES_ERROR)
    data.setdefault("apiVersion", "v1")
    data.setdefault("kind", "Config")
    for key in ("clusters", "users", "contexts"):
        if not isinstance(data.get(key), list):
            data[key] = []
    data.setdefault("preferences", {})
    return data


def write_target(path: Path) -> Path:
    """The file to rewrite: path itself, or, when path is a symlink (a kubeconfig kept in a dotfiles repo), the
    file it points at, so the link stays a link. Anything but a regular file (or a file still to be created) is
    refused: the atomic rename must never replace a device or a folder."""
    try:
        target = path.resolve() if path.is_symlink() else path
    except (OSError, RuntimeError):
        raise MinisandError(f"{path} is a symlink that cannot be resolved (a loop?)",
                            hint="fix the link or point KUBECONFIG at a file", code=ExitCode.KUBERNETES_ERROR) from None
    if os.path.lexists(target) and not target.is_file():
        raise MinisandError(f"kubeconfig {path} is not a regular file" + (f" ({target})" if target != path else ""),
                            hint="point KUBECONFIG at a file", code=ExitCode.KUBERNETES_ERROR)
    return target


def _save(path: Path, data: dict[str, Any]) -> None:
    import yaml

    atomic_write_text(write_target(path), yaml.safe_dump(data, sort_keys=False), mode=0o600)


def _upsert(items: list[dict[str, Any]], name: str, key: str, value: dict[str, Any]) -> None:
    for item in items:
        if item.get("name") == name:
            item[key] = value
            return
    items.append({"name": name, key: value})


def for_profile(admin_conf: str, profile: str, server: str) -> dict[str, Any]:
    """The guest's admin.conf renamed to the profile and pointed at a host-reachable server."""
    import yaml

    src = yaml.safe_load(admin_conf)
    try:
        cluster = dict(src["clusters"][0]["cluster"])
        user = dict(src["users"][0]["user"])
    except (KeyError, IndexError, TypeError):
        raise MinisandError("the node's admin.conf is not a kubeconfig", code=ExitCode.KUBERNETES_ERROR,
                            hint="`minisand delete` and start again") from None
    cluster["server"] = server
    return {"apiVersion": "v1", "kind": "Config", "current-context": profile,
            "clusters": [{"name": profile, "cluster": cluster}], "users": [{"name": profile, "user": user}],
            "contexts": [{"name": profile, "context": {"cluster": profile, "user": profile, "namespace": "default"}}],
            "preferences": {}}


def merge(profile_config: dict[str, Any], profile: str, path: Path | None = None) -> Path:
    path = path or kubeconfig_path()
    write_target(path)  # refused before anything is read or changed
    data = _load(path)
    _upsert(data["clusters"], profile, "cluster", profile_config["clusters"][0]["cluster"])
    _upsert(data["users"], profile, "user", profile_config["users"][0]["user"])
    _upsert(data["contexts"], profile, "context", profile_config["contexts"][0]["context"])
    data["current-context"] = profile
    _save(path, data)
    return path


def remove_context(profile: str, path: Path | None = None) -> bool:
    path = path or kubeconfig_path()
    if not path.exists():
        return False
    data = _load(path)
    before = sum(len(data[k]) for k in ("clusters", "users", "contexts"))
    for key in ("clusters", "users", "contexts"):
        data[key] = [i for i in data[key] if i.get("name") != profile]
    changed = sum(len(data[k]) for k in ("clusters", "users", "contexts")) != before
    if data.get("current-context") == profile:
        data["current-context"] = ""  # as minikube and kind do: kubectl must not silently target another cluster
        changed = True
    if changed:
        _save(path, data)
    return changed


def context_server(profile: str, path: Path | None = None) -> str | None:
    path = path or kubeconfig_path()
    if not path.exists():
        return None
    try:
        data = _load(path)
    except MinisandError:
        return None
    ctx = next((c for c in data["contexts"] if c.get("name") == profile), None)
    if ctx is None:
        return None
    cluster_name = (ctx.get("context") or {}).get("cluster")
    cluster = next((c for c in data["clusters"] if c.get("name") == cluster_name), None)
    server = ((cluster or {}).get("cluster") or {}).get("server")
    return str(server) if server else None


def has_context(profile: str, path: Path | None = None) -> bool:
    return context_server(profile, path) is not None
