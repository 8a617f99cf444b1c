"""Image pulls through CRI (`crictl pull`), so containerd's registry hosts (mirrors) apply exactly as they do for
the kubelet; and the in-guest probe that choose_repository() uses."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from minisand.cruntime.apply import last_line
from minisand.cruntime.plan import endpoints_for
from minisand.errors import ExitCode, MinisandError
from minisand.images.ref import ImageRef, parse_image
from minisand.images.registries import RegistryHosts
from minisand.runner.base import CommandRunner

_IMAGE_ID = re.compile(r"(sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class Crictl:
    binary: str = "crictl"
    endpoint: str | None = None  # containerd's socket path; None: crictl's own config (/etc/crictl.yaml)

    def argv(self, *args: str) -> list[str]:
        head = [self.binary]
        if self.endpoint:
            url = f"unix://{self.endpoint}"
            head += ["--runtime-endpoint", url, "--image-endpoint", url]
        return [*head, *args]


def _short_reason(text: str) -> str:
    """crictl's last line carries containerd's whole error chain; keep its innermost cause, e.g.
    `dial tcp 127.0.0.1:5003: connect: connection refused` or `http: server gave HTTP response to HTTPS client`."""
    text = text.replace('\\"', '"')
    for marker in ("desc = ", "msg="):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    if '": ' in text:
        text = text.rsplit('": ', 1)[-1]
    return text.strip().strip('"')[:300]


def pull_image(runner: CommandRunner, ref: ImageRef | str, *, hosts: Sequence[RegistryHosts] = (),
               crictl: Crictl = Crictl(), timeout: float = 900.0) -> str:
    """Pulls ref through CRI; returns the image id. On failure raises DOWNLOAD_ERROR naming every endpoint that
    containerd tried (mirrors in order, then the registry itself)."""
    image = parse_image(ref) if isinstance(ref, str) else ref
    result = runner.run(crictl.argv("pull", str(image)), sudo=True, check=False, timeout=timeout)
    if result.ok:
        m = _IMAGE_ID.search(result.out)
        return m.group(1) if m else str(image)
    tried = endpoints_for(image.registry, hosts)
    raise MinisandError(
        f"pulling {image} failed on {runner.where} after trying {', '.join(tried)}: "
        f"{_short_reason(last_line(result)) or f'exit code {result.exit_code}'}",
        hint="check that a --registry-mirror serves this image (`minisand config view` lists them) "
             "or that the guest can reach the registry",
        code=ExitCode.DOWNLOAD_ERROR, reason="IMAGE_PULL_FAILED")


def guest_image_probe(runner: CommandRunner, pause_tag: str, *, hosts: Sequence[RegistryHosts] = (),
                      crictl: Crictl = Crictl(), timeout: float = 120.0) -> Callable[[str], bool]:
    """A probe for choose_repository(): pulls <repo>/pause:<tag> in the guest (through containerd's mirrors).
    The pause image is needed anyway as the sandbox image, so a successful probe is not wasted."""
    def probe(repository: str) -> bool:
        try:
            pull_image(runner, f"{repository.rstrip('/')}/pause:{pause_tag}", hosts=hosts, crictl=crictl,
                       timeout=timeout)
        except MinisandError:
            return False
        return True
    return probe
