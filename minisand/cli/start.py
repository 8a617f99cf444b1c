"""`minisand start`."""

from __future__ import annotations

from typing import Annotated, cast

import typer

Opt = typer.Option


def register(app: typer.Typer) -> None:
    app.command(name="start")(start)


def start(
    driver: Annotated[str | None, Opt(help="Driver: kvm2 (kvm, libvirt), qemu, hyperkit, none, ssh. "
                                            "Default: the best healthy one.")] = None,
    container_runtime: Annotated[str | None, Opt("--container-runtime",
                                                 help="Container runtime (containerd).")] = None,
    kubernetes_version: Annotated[str | None, Opt("--kubernetes-version",
                                                  help="Kubernetes version, e.g. v1.36.4.")] = None,
    cpus: Annotated[str | None, Opt(help="vCPUs per node (a number or 'max'). Default 2.")] = None,
    memory: Annotated[str | None, Opt(help="Memory per node, e.g. 4g or 4096mb. Default 4g.")] = None,
    disk_size: Annotated[str | None, Opt("--disk-size", help="Data disk per node, e.g. 20g.")] = None,
    iso_url: Annotated[str | None, Opt("--iso-url", help="Guest ISO (https://, http://, file://).")] = None,
    iso_checksum: Annotated[str | None, Opt("--iso-checksum",
                                            help="sha256:HEX of the ISO (default: URL + .sha256).")] = None,
    image_mirror_country: Annotated[str | None, Opt("--image-mirror-country",
                                                    help="Mirror preset by country code (cn).")] = None,
    image_repository: Annotated[str | None, Opt("--image-repository",
                                                help="Control-plane image repository.")] = None,
    registry_mirror: Annotated[list[str] | None, Opt("--registry-mirror",
                                                     help="[REGISTRY=]URL containerd mirror (repeatable; "
                                                          "docker.io when no registry is named).")] = None,
    insecure_registry: Annotated[list[str] | None, Opt("--insecure-registry",
                                                       help="HOST[:PORT] reached over plain HTTP or without "
                                                            "TLS verification (repeatable).")] = None,
    binary_mirror: Annotated[str | None, Opt("--binary-mirror",
                                             help="Base URL laid out like dl.k8s.io for kubelet/kubeadm/"
                                                  "kubectl.")] = None,
    gvisor_mirror: Annotated[str | None, Opt("--gvisor-mirror",
                                             help="Base URL laid out like gVisor's release bucket.")] = None,
    offline: Annotated[bool | None, Opt("--offline/--online",
                                        help="Download only from the mirrors given (--binary-mirror, "
                                             "--gvisor-mirror, --iso-url); never fall back to upstream.")] = None,
    nodes: Annotated[int | None, Opt("--nodes", "-n", help="Number of nodes. Default 1.")] = None,
    wait: Annotated[str | None, Opt(help="Components to wait for: all, none, or a comma list of apiserver,"
                                         "system_pods,node_ready,default_sa,apps_running.")] = None,
    wait_timeout: Annotated[str | None, Opt("--wait-timeout", help="How long to wait, e.g. 15m.")] = None,
    addons: Annotated[list[str] | None, Opt("--addons", help="Addons to enable (repeatable or a,b).")] = None,
    no_kubernetes: Annotated[bool | None, Opt("--no-kubernetes/--kubernetes",
                                              help="A machine with containerd only.")] = None,
    extra_config: Annotated[list[str] | None, Opt("--extra-config",
                                                  help="component.key=value for kubeadm/kubelet "
                                                       "(repeatable).")] = None,
    qemu_accel: Annotated[str | None, Opt("--qemu-accel", help="qemu/kvm2: auto, kvm or tcg.")] = None,
    guest_egress: Annotated[bool | None, Opt("--guest-egress/--no-guest-egress",
                                             help="qemu user networking: may the guest reach beyond its "
                                                  "forwards? Default on.")] = None,
    guest_forward: Annotated[list[str] | None, Opt("--guest-forward",
                                                   help="qemu: expose a host service to the guest, "
                                                        "GUESTIP:PORT=HOSTIP:PORT (repeatable).")] = None,
    network: Annotated[str | None, Opt(help="kvm2: 'default' (private libvirt network) or 'user' "
                                            "(host forwards).")] = None,
    libvirt_uri: Annotated[str | None, Opt("--libvirt-uri", help="kvm2: libvirt URI "
                                                                 "(default qemu:///system).")] = None,
    ssh_ip_address: Annotated[str | None, Opt("--ssh-ip-address", help="ssh driver: address.")] = None,
    ssh_user: Annotated[str | None, Opt("--ssh-user", help="ssh driver: user (default root).")] = None,
    ssh_key: Annotated[str | None, Opt("--ssh-key", help="ssh driver: private key file.")] = None,
    ssh_port: Annotated[int | None, Opt("--ssh-port", help="ssh driver: port (default 22).")] = None,
    dry_run: Annotated[bool, Opt("--dry-run", help="Print the plan; create nothing.")] = False,
    output: Annotated[str, Opt("--output", "-o", help="Plan format for --dry-run: text or json.")] = "text",
) -> None:
    """Start a local Kubernetes cluster (create or fix its machines, then reconcile everything)."""
    from minisand.cli.app import context
    from minisand.cluster import start as start_ops
    from minisand.cluster.context import Context
    from minisand.cluster.startconfig import StartRequest

    def tup(v: list[str] | None) -> tuple[str, ...] | None:
        return tuple(v) if v is not None else None

    req = StartRequest(
        driver=driver, container_runtime=container_runtime, kubernetes_version=kubernetes_version, cpus=cpus,
        memory=memory, disk_size=disk_size, iso_url=iso_url, iso_checksum=iso_checksum,
        image_mirror_country=image_mirror_country, image_repository=image_repository,
        registry_mirror=tup(registry_mirror), insecure_registry=tup(insecure_registry),
        binary_mirror=binary_mirror, gvisor_mirror=gvisor_mirror, offline=offline, nodes=nodes, wait=wait,
        wait_timeout=wait_timeout, addons=tup(addons), no_kubernetes=no_kubernetes,
        extra_config=tup(extra_config), qemu_accel=qemu_accel, guest_egress=guest_egress,
        guest_forward=tup(guest_forward), network=network, libvirt_uri=libvirt_uri,
        ssh_ip_address=ssh_ip_address, ssh_user=ssh_user, ssh_key=ssh_key, ssh_port=ssh_port)
    if output not in ("text", "json"):
        from minisand.errors import bad_input

        raise bad_input(f"--output {output!r} is not text or json", "use -o json")
    ctx = cast(Context, context())
    if dry_run:
        from minisand.cluster import dryrun

        typer.echo(dryrun.render(dryrun.build(ctx, req), output))
        return
    start_ops.run(ctx, req)


