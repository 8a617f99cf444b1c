# Sourced by the scripts: run as root, elevating with sudo only when not root already (CI and many machines run
# as root without a sudo binary).
as_root() {
  if [ "$(id -u)" = 0 ]; then return 0; fi
  if command -v sudo >/dev/null 2>&1; then exec sudo -E -- "$0" "$@"; fi
  echo "$(basename "$0") needs root (apt, qemu, libvirtd, network namespaces) and there is no sudo: run it as root" >&2
  exit 1
}
