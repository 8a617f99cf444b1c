"""The lab's distribution registry: Debian's docker-registry as a child process on 127.0.0.1.

Its storage lives in the lab cache, so images pushed once stay there; population is idempotent (a repository
whose tag already has the image's manifest digest is skipped). Its access log (combined log format, written to
a file) is parsed into records; containerd's mirror pulls carry `?ns=<upstream host>` in the path.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from e2e.lab.cache import log
from e2e.lab.errors import LabError

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json"])
_ACCESS = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "([A-Z]+) (\S+) [^"]*" (\d{3}) (\d+|-)')
_V2_PATH = re.compile(r"^/v2/(.+)/(manifests|blobs)/([^/]+)$")


def render_config(storage: Path, port: int) -> str:
    config = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False},
                "fields": {"service": "minisand-lab-registry"}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"addr": f"127.0.0.1:{port}", "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    return str(yaml.safe_dump(config, sort_keys=False))


def registry_argv(config: Path) -> list[str]:
    return ["docker-registry", "serve", str(config)]


@dataclass(frozen=True)
class RegistryRecord:
    method: str
    path: str  # without the query
    ns: str | None  # containerd's ?ns=<upstream registry host> on mirror pulls
    status: int
    repository: str | None = None  # e.g. google_containers/kube-apiserver
    kind: str | None = None  # manifests | blobs
    reference: str | None = None  # tag or digest


def parse_access_line(line: str) -> RegistryRecord | None:
    m = _ACCESS.match(line)
    if not m:
        return None
    parts = urlsplit(m.group(4))
    ns = parse_qs(parts.query).get("ns", [None])[0]
    v2 = _V2_PATH.match(parts.path)
    repo, kind, ref = v2.groups() if v2 else (None, None, None)
    return RegistryRecord(method=m.group(3), path=parts.path, ns=ns, status=int(m.group(5)), repository=repo,
                          kind=kind, reference=ref)


def parse_access_log(path: Path) -> list[RegistryRecord]:
    """Every HTTP request the registry logged (its application log lines are skipped)."""
    if not path.is_file():
        return []
    records = (parse_access_line(line) for line in path.read_text(errors="replace").splitlines())
    return [r for r in records if r is not None]


def remote_digest(address: str, repository: str, tag: str) -> str | None:
    """The manifest digest the registry serves for repository:tag, or None when it has none."""
    req = urllib.request.Request(f"http://{address}/v2/{repository}/manifests/{tag}", method="HEAD",
                                 headers={"Accept": MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            digest = resp.headers.get("Docker-Content-Digest")
            return str(digest) if digest else None
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def push(layout: str, tag: str, address: str, repository: str, dest_tag: str | None = None) -> None:
    """skopeo copy of the layout's tag to address/repository:dest_tag (default: the same tag), digest kept."""
    argv = ["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
            f"oci:{layout}:{tag}", f"docker://{address}/{repository}:{dest_tag or tag}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        raise LabError(f"skopeo copy to {address}/{repository}:{dest_tag or tag} failed: "
                       f"{out.stderr.strip()[-300:]}", "check the registry log in the lab's run directory")


@dataclass(frozen=True)
class PushItem:
    layout: str
    tag: str  # the tag in the layout
    digest: str
    repositories: tuple[str, ...]
    aliases: tuple[str, ...] = ()  # more tags to push the same manifest under


def populate(address: str, images: list[PushItem]) -> dict[str, int]:
    """Push every image to each of its repositories at its tag and aliases; skip what the registry already
    serves with the same digest. Returns counts."""
    counts = {"pushed": 0, "present": 0}
    for item in images:
        for repo in item.repositories:
            for dest_tag in (item.tag, *item.aliases):
                if remote_digest(address, repo, dest_tag) == item.digest:
                    counts["present"] += 1
                    continue
                push(item.layout, item.tag, address, repo, dest_tag)
                if remote_digest(address, repo, dest_tag) != item.digest:
                    raise LabError(f"{address}/{repo}:{dest_tag} does not serve {item.digest} after the push",
                                   "skopeo changed the manifest; check --preserve-digests")
                counts["pushed"] += 1
    log(f"registry {address}: {counts['pushed']} pushed, {counts['present']} already present")
    return counts


def catalog(address: str) -> list[str]:
    with urllib.request.urlopen(f"http://{address}/v2/_catalog?n=1000", timeout=10) as resp:
        data = json.loads(resp.read())
    return [str(r) for r in data.get("repositories", [])]
