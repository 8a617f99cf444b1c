"""Image references, mirror presets, kubeadm's image list, registry hosts (hosts.toml) and source resolution.
Pure functions: nothing here runs a command or touches the network."""

from minisand.images.kubeadm import control_plane_images, coredns_image, pause_image, pins_for
from minisand.images.presets import known_countries, preset_for
from minisand.images.ref import ImageRef, parse_image
from minisand.images.registries import RegistryHosts, registry_hosts, render_hosts_toml
from minisand.images.sources import (
    BinarySource,
    ImageMirrors,
    SourceCandidates,
    binary_sources,
    choose_repository,
    iso_urls,
    mirror_advice,
    rewrite_image,
    source_candidates,
    validate_mirrors,
)

__all__ = [
    "BinarySource", "ImageMirrors", "ImageRef", "RegistryHosts", "SourceCandidates", "binary_sources",
    "choose_repository", "control_plane_images", "coredns_image", "iso_urls", "known_countries", "mirror_advice",
    "parse_image",
    "pause_image", "pins_for", "preset_for", "registry_hosts", "render_hosts_toml", "rewrite_image",
    "source_candidates", "validate_mirrors",
]
