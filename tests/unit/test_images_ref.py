"""ImageRef: Docker's normalisation rules, formatting and one-line errors."""

from __future__ import annotations

import pytest

from minisand.errors import ExitCode, MinisandError
from minisand.images.ref import ImageRef, parse_image

CASES = [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io/library/nginx:1.27"),
    ("library/nginx", "docker.io/library/nginx:latest"),
    ("user/app:v2", "docker.io/user/app:v2"),
    ("docker.io/nginx", "docker.io/library/nginx:latest"),
    ("index.docker.io/library/nginx", "docker.io/library/nginx:latest"),
    ("registry-1.docker.io/user/app", "docker.io/user/app:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:dev", "localhost:5000/app:dev"),
    ("127.0.0.1:5000/library/busybox", "127.0.0.1:5000/library/busybox:latest"),
    ("[::1]:5000/app:1", "[::1]:5000/app:1"),
    ("registry.k8s.io/pause:3.10.2", "registry.k8s.io/pause:3.10.2"),
    ("registry.k8s.io/coredns/coredns:v1.14.2", "registry.k8s.io/coredns/coredns:v1.14.2"),
    ("ghcr.io/a/b/c:v1.0-rc.1", "ghcr.io/a/b/c:v1.0-rc.1"),
    ("Host.Example:5000/x", "Host.Example:5000/x:latest"),
    ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
    ("busybox:1.36@sha256:" + "b" * 64, "docker.io/library/busybox:1.36@sha256:" + "b" * 64),
]


@pytest.mark.parametrize(("text", "want"), CASES)
def test_normalisation(text: str, want: str) -> None:
    ref = parse_image(text)
    assert str(ref) == want
    assert str(parse_image(str(ref))) == want  # normalising twice changes nothing


def test_parts() -> None:
    ref = parse_image("localhost:5000/team/app:dev")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == ("localhost:5000", "team/app", "dev", None)
    assert ref.basename == "app"
    assert ref.name == "localhost:5000/team/app"
    assert parse_image("nginx") == ImageRef("docker.io", "library/nginx", "latest", None)


def test_digest_only_has_no_tag() -> None:
    ref = parse_image("busybox@sha256:" + "c" * 64)
    assert (ref.tag, ref.digest) == (None, "sha256:" + "c" * 64)
    assert str(ref) == "docker.io/library/busybox@sha256:" + "c" * 64


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "not an image reference"),
    ("with space", "not an image reference"),
    ("https://registry.k8s.io/pause", "not an image reference"),
    ("Nginx", "invalid name component"),
    ("nginx:", "invalid tag"),
    ("nginx:" + "x" * 129, "invalid tag"),
    ("nginx@sha256:xyz", "invalid digest"),
    ("foo//bar", "invalid name component"),
    ("bad_host.example..com/x", "invalid registry host"),
])
def test_bad_references_are_one_line_bad_input(text: str, fragment: str) -> None:
    with pytest.raises(MinisandError) as err:
        parse_image(text)
    assert err.value.code == ExitCode.BAD_INPUT
    assert fragment in err.value.message
    assert err.value.hint
    assert "\n" not in err.value.one_line()
