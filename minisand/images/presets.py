"""Mirror presets selected with --image-mirror-country: where control-plane images, Kubernetes binaries, the
ISO and gVisor come from. Data only; resolution lives in minisand.images.sources."""

from __future__ import annotations

from dataclasses import dataclass

from minisand.errors import bad_input

DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io"
DEFAULT_BINARY_BASE = "https://dl.k8s.io"  # laid out as <base>/release/<v>/bin/linux/<arch>/<bin>
ALIYUN_IMAGE_REPOSITORY = "registry.cn-hangzhou.aliyuncs.com/google_containers"
ALIYUN_BINARY_BASE = "https://kubernetes.oss-cn-hangzhou.aliyuncs.com/kubernetes-release"
ALIYUN_ISO_BASE = "https://kubernetes.oss-cn-hangzhou.aliyuncs.com/minisand/iso/"


@dataclass(frozen=True)
class MirrorPreset:
    country: str
    image_repositories: tuple[str, ...]  # candidates, probed in order (first that answers wins)
    binary_base: str | None  # a dl.k8s.io-shaped base URL, tried before dl.k8s.io; None: dl.k8s.io only
    iso_base: str | None  # a folder URL holding minisand ISOs by file name; None: the default location only
    gvisor_base: str | None  # a gVisor release-bucket-shaped base; None: no preset mirror exists
    note: str = ""


PRESETS: dict[str, MirrorPreset] = {
    "global": MirrorPreset(
        country="global",
        image_repositories=(DEFAULT_IMAGE_REPOSITORY,),
        binary_base=None,
        iso_base=None,
        gvisor_base=None,
    ),
    "cn": MirrorPreset(
        country="cn",
        image_repositories=(ALIYUN_IMAGE_REPOSITORY, DEFAULT_IMAGE_REPOSITORY),
        binary_base=ALIYUN_BINARY_BASE,
        iso_base=ALIYUN_ISO_BASE,
        # No public mirror of gVisor's release bucket in mainland China is known; users point
        # --gvisor-mirror at their own copy.
        gvisor_base=None,
        note="gVisor has no cn mirror: use --gvisor-mirror",
    ),
}


def known_countries() -> list[str]:
    return sorted(PRESETS)


def preset_for(country: str | None) -> MirrorPreset:
    """The preset for --image-mirror-country (None and "" mean global)."""
    key = (country or "global").strip().lower()
    try:
        return PRESETS[key]
    except KeyError:
        raise bad_input(f"--image-mirror-country {country!r} is not a known country",
                        f"known countries: {', '.join(known_countries())}") from None
