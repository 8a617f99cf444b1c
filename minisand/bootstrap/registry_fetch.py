"""A small OCI distribution client for the host: pulls an image (linux/<arch>) through the same mirror order
containerd uses (certs.d hosts, then the registry itself unless --offline), verifying every blob's digest.

Used to build the preload tarball on the host, where it is fast (under TCG, exporting images inside the guest
takes minutes). Addresses the guest reaches through qemu's guest forwards are translated to their host ends."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from minisand.errors import ExitCode, MinisandError
from minisand.images.ref import ImageRef
from minisand.images.registries import RegistryHosts, upstream_server

log = logging.getLogger(__name__)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
INDEXES = (OCI_INDEX, DOCKER_LIST)


@dataclass(frozen=True)
class Endpoint:
    base: str  # scheme://host[:port] or a full API root when override_path
    override_path: bool
    skip_verify: bool

    def url(self, repository: str, kind: str, reference: str, ns: str) -> str:
        root = self.base.rstrip("/") if self.override_path else f"{self.base.rstrip('/')}/v2"
        return f"{root}/{repository}/{kind}/{reference}?ns={ns}"


@dataclass
class PulledImage:
    ref: ImageRef
    manifest: bytes
    media_type: str
    digest: str
    blobs: dict[str, Path] = field(default_factory=dict)


def endpoints(registry: str, hosts: list[RegistryHosts], offline: bool,
              translate: Callable[[str], str]) -> list[Endpoint]:
    entry = next((h for h in hosts if h.registry == registry), None)
    out = []
    if entry is not None:
        out += [Endpoint(translate(h.url), h.override_path, h.skip_verify) for h in entry.hosts]
        server = entry.server
    else:
        server = upstream_server(registry)
    if not offline:
        out.append(Endpoint(translate(server), False, bool(entry and entry.server_skip_verify)))
    return out


def forward_translator(forwards: tuple[str, ...]) -> Callable[[str], str]:
    """'10.0.2.100:5000=127.0.0.1:45803' guest forwards: a URL at the guest side is fetched at the host side."""
    table = {}
    for f in forwards:
        guest, host = f.split("=", 1)
        table[guest] = host

    def translate(url: str) -> str:
        parts = urlsplit(url)
        if parts.netloc in table:
            return urlunsplit(parts._replace(netloc=table[parts.netloc]))
        return url

    return translate


class _Session:
    def __init__(self) -> None:
        import requests

        self.http = requests.Session()
        self.tokens: dict[str, str] = {}

    def get(self, url: str, *, verify: bool, accept: str | None = None) -> Any:
        import requests

        headers = {"Accept": accept} if accept else {}
        host = urlsplit(url).netloc
        if host in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[host]}"
        resp = self.http.get(url, headers=headers, verify=verify, timeout=(10, 120), stream=True)
        if resp.status_code == 401 and "bearer" in resp.headers.get("WWW-Authenticate", "").lower():
            self.tokens[host] = self._token(resp.headers["WWW-Authenticate"], verify)
            headers["Authorization"] = f"Bearer {self.tokens[host]}"
            resp = self.http.get(url, headers=headers, verify=verify, timeout=(10, 120), stream=True)
        if resp.status_code != 200:
            raise requests.HTTPError(f"{resp.status_code} for {url.split('?')[0]}")
        return resp

    def _token(self, challenge: str, verify: bool) -> str:
        params = dict(part.split("=", 1) for part in challenge.split(" ", 1)[1].replace('"', "").split(","))
        realm = params.pop("realm")
        resp = self.http.get(realm, params=params, verify=verify, timeout=(10, 60))
        resp.raise_for_status()
        data = resp.json()
        return str(data.get("token") or data.get("access_token"))


def _check(data: bytes, digest: str, what: str) -> None:
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or hashlib.sha256(data).hexdigest() != hexd:
        raise MinisandError(f"{what} does not match its digest {digest}", code=ExitCode.CHECKSUM_MISMATCH,
                            hint="the registry or mirror served corrupt content")


def pull(ref: ImageRef, eps: list[Endpoint], blob_dir: Path, arch: str) -> PulledImage:
    """The image's manifest for linux/arch and its blobs (written to blob_dir/<hex>), from the first endpoint
    that serves it."""
    import requests

    errors = []
    session = _Session()
    reference = ref.digest or ref.tag or "latest"
    for ep in eps:
        try:
            return _pull_from(session, ep, ref, reference, blob_dir, arch)
        except (requests.RequestException, MinisandError, ValueError, KeyError) as exc:
            log.info("pull of %s from %s failed: %s", ref, ep.base, exc)
            errors.append(f"{ep.base}: {exc}")
    raise MinisandError(f"could not fetch {ref} for the preload: " + "; ".join(errors) if errors else
                        f"no endpoint for {ref.registry}", code=ExitCode.DOWNLOAD_ERROR,
                        hint="check --registry-mirror (the preload is built on the host from the same mirrors)")


def _pull_from(s: _Session, ep: Endpoint, ref: ImageRef, reference: str, blob_dir: Path,
               arch: str) -> PulledImage:
    ns = ref.registry
    verify = not ep.skip_verify
    resp = s.get(ep.url(ref.repository, "manifests", reference, ns), verify=verify, accept=ACCEPT)
    body = resp.content
    media = resp.headers.get("Content-Type", "").split(";")[0] or json.loads(body).get("mediaType", "")
    if media in INDEXES:
        index = json.loads(body)
        match = next(m for m in index["manifests"] if m.get("platform", {}).get("os") == "linux"
                     and m.get("platform", {}).get("architecture") == arch)
        resp = s.get(ep.url(ref.repository, "manifests", match["digest"], ns), verify=verify, accept=ACCEPT)
        body = resp.content
        media = match.get("mediaType") or resp.headers.get("Content-Type", "").split(";")[0]
        _check(body, match["digest"], f"manifest of {ref}")
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if ref.digest and media not in INDEXES and ref.digest != digest:
        _check(body, ref.digest, f"manifest of {ref}")
    manifest = json.loads(body)
    pulled = PulledImage(ref, body, media, digest)
    for desc in [manifest["config"], *manifest["layers"]]:
        d = desc["digest"]
        dest = blob_dir / d.split(":", 1)[1]
        if not dest.exists():
            data = s.get(ep.url(ref.repository, "blobs", d, ns), verify=verify).content
            _check(data, d, f"blob of {ref}")
            tmp = dest.with_name(dest.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(dest)
        pulled.blobs[d] = dest
    return pulled
