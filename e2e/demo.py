"""The seed demo (../shared/seeds/000_*.txt), narrated: the commands a user types and what they print, run
offline against the local lab. `python -m e2e.demo` (root). Leaves nothing running; keeps caches.

    minisand start --container-runtime=containerd --image-mirror-country cn <the lab standing in for the mirrors>
    minisand dashboard --url &              the URL it prints answers (Headlamp, signed in); stopped by its PID
    kubectl apply -f nginx.yaml;            kubectl exec nginx -- uname -a
    minisand addons enable gvisor;          kubectl get runtimeclass
    kubectl apply -f nginx-untrusted.yaml;  kubectl exec nginx-untrusted -- uname -a
    minisand ssh -- sudo crictl pods;       minisand ssh -- sudo ctr -n k8s.io images ls
    minisand stop; minisand start;          the machine saved and resumed (same boot id); a new gvisor pod
    minisand addons disable gvisor --force; minisand delete
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from e2e.dashboard import DashboardProcess
from e2e.lab import Lab
from minisand.iso.build import build_iso

GUEST_REGISTRY = "10.0.2.100:5000"


def pod(name: str, runtime_class: str | None = None) -> str:
    """The article's nginx.yaml / nginx-untrusted.yaml (as JSON, which kubectl reads as YAML)."""
    spec: dict[str, object] = {"containers": [{"name": "nginx", "image": "nginx"}]}
    if runtime_class:
        spec = {"runtimeClassName": runtime_class, **spec}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}, indent=2)


class Narrator:
    def __init__(self, home: Path, profile: str) -> None:
        self.env = {**os.environ, "MINISAND_HOME": str(home), "MINISAND_PROFILE": profile,
                    "KUBECONFIG": str(home / "kubeconfig")}
        self.bin = Path(sys.executable).parent / "minisand"

    def sh(self, shown: str, argv: list[str], stdin: str | None = None, check: bool = True) -> str:
        print(f"\n$ {shown}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(argv, input=stdin, text=True, capture_output=True, env=self.env, check=False)
        sys.stdout.write(proc.stdout)
        sys.stdout.write(proc.stderr)
        print(f"  [{time.monotonic() - t0:.1f}s, exit {proc.returncode}]", flush=True)
        if check and proc.returncode != 0:
            raise SystemExit(f"demo step failed: {shown}")
        return proc.stdout

    def minisand(self, *args: str, check: bool = True) -> str:
        return self.sh("minisand " + shlex.join(args), [str(self.bin), *args], check=check)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.sh("kubectl " + shlex.join(args), [str(self.bin), "kubectl", "--", *args], stdin=stdin)

    def dashboard(self, log: Path) -> None:
        """`minisand dashboard --url &`: read the URL line, fetch it like a browser would, stop it by its PID."""
        print("\n$ minisand dashboard --url &", flush=True)
        with DashboardProcess([str(self.bin), "dashboard", "--url"], self.env, log) as dash:
            print(f"{dash.url}\n  [URL after {dash.seconds:.1f}s; its log: {log}]", flush=True)
            page = dash.fetch()
            print(f"$ curl {dash.url}\n  HTTP {page.status_code}, {len(page.text)} bytes, "
                  f"title {'Headlamp' if '<title>Headlamp</title>' in page.text else 'missing'}", flush=True)
            pid = dash.proc.pid if dash.proc else 0
        print(f"$ kill {pid}\n  [exit {dash.returncode}: forwarder stopped, Headlamp keeps running]", flush=True)
        if page.status_code != 200 or "<title>Headlamp</title>" not in page.text or dash.returncode != 0:
            raise SystemExit("demo step failed: minisand dashboard --url")


def run(home: Path) -> None:
    iso = build_iso(None)
    with Lab(run_dir=home / "lab-run") as ep:
        reg = f"http://{GUEST_REGISTRY}"
        flags = ["--driver=qemu", "--container-runtime=containerd", f"--iso-url=file://{iso.iso}",
                 f"--iso-checksum=sha256:{iso.sha256}", "--memory=4g", "--no-guest-egress",
                 f"--guest-forward={GUEST_REGISTRY}=127.0.0.1:{ep.registry.rsplit(':', 1)[1]}",
                 "--image-mirror-country=cn", f"--registry-mirror=registry.cn-hangzhou.aliyuncs.com={reg}",
                 f"--registry-mirror=docker.io={reg}",
                 f"--binary-mirror={ep.binary_mirror}", f"--gvisor-mirror={ep.gvisor_mirror}", "--offline",
                 "--wait-timeout=40m"]
        n = Narrator(home, "demo")
        try:
            n.minisand("start", *flags)
            n.dashboard(home / "dashboard.log")
            n.kubectl("apply", "-f", "-", stdin=pod("nginx"))
            n.kubectl("wait", "--for=condition=Ready", "pod/nginx", "--timeout=20m")
            node_kernel = n.minisand("ssh", "--", "uname", "-r").strip()
            runc_kernel = n.kubectl("exec", "nginx", "--", "uname", "-r").strip()
            n.kubectl("exec", "nginx", "--", "uname", "-a")
            n.minisand("addons", "enable", "gvisor")
            n.kubectl("get", "runtimeclass")
            n.kubectl("apply", "-f", "-", stdin=pod("nginx-untrusted", "gvisor"))
            n.kubectl("wait", "--for=condition=Ready", "pod/nginx-untrusted", "--timeout=20m")
            gvisor_kernel = n.kubectl("exec", "nginx-untrusted", "--", "uname", "-r").strip()
            n.kubectl("exec", "nginx-untrusted", "--", "uname", "-a")
            n.minisand("ssh", "--", "sudo", "crictl", "pods")
            n.minisand("ssh", "--", "sudo", "ctr", "--namespace=k8s.io", "images", "ls")
            boot_id = ["ssh", "--", "cat", "/proc/sys/kernel/random/boot_id"]
            booted = n.minisand(*boot_id).strip()
            n.minisand("stop")  # saves the machine: `start` resumes it
            n.minisand("start", *flags)
            resumed = n.minisand(*boot_id).strip() == booted
            n.kubectl("apply", "-f", "-", stdin=pod("nginx-untrusted-2", "gvisor"))
            n.kubectl("wait", "--for=condition=Ready", "pod/nginx-untrusted-2", "--timeout=20m")
            after_restart = n.kubectl("exec", "nginx-untrusted-2", "--", "uname", "-r").strip()
            n.minisand("addons", "disable", "gvisor", "--force")
            n.minisand("status")
        finally:
            n.minisand("delete", check=False)
    if not (runc_kernel == node_kernel and gvisor_kernel and gvisor_kernel != node_kernel
            and after_restart == gvisor_kernel and resumed):
        raise SystemExit(f"demo verdict failed: node kernel {node_kernel!r}, runc pod {runc_kernel!r}, gvisor pod "
                         f"{gvisor_kernel!r}, gvisor pod after restart {after_restart!r}, resumed {resumed}")
    print(f"\nrunc pod kernel: {node_kernel} (the node's); gvisor pod kernel: {gvisor_kernel} (gVisor's), "
          "also after stop/start, which resumed the saved machine (same boot id)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path.home() / ".cache" / "minisand-demo",
                        help="MINISAND_HOME for the demo (its cache makes a second run faster)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the demo needs root (qemu, the lab's registry)", file=sys.stderr)
        return 1
    args.home.mkdir(parents=True, exist_ok=True)
    run(args.home)
    print("Demo complete.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
