"""The daily loop on a real qemu VM (a --no-kubernetes machine: containerd only, ~30 s to boot under TCG):
`image load` (a file, stdin, gzip, -o json), `image ls`, `image rm`, refusals of a corrupt or missing archive;
`cp` both ways; host forwards added and removed at run time through QMP (what `minisand service` uses), released
by stop; `logs -f` ended by Ctrl-C with nothing left running in the guest."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minisand.cluster.context import Context
from minisand.cluster.nodes import driver_for
from minisand.drivers.qemu import hostfwd
from minisand.drivers.qemu.driver import NETDEV, QemuDriver
from minisand.iso.build import build_iso
from minisand.paths import Home
from minisand.procs import free_port
from tests.integration.helpers.cli import CLI, VENV_BIN, qemu_pids
from tests.integration.helpers.oci import web_image

pytestmark = [pytest.mark.root, pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1200)]

PROFILE = "loop"
IMAGE = "example.com/minisand/web:1.0"


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CLI]:
    iso = build_iso(None)
    cli = CLI(tmp_path_factory.mktemp("loop-home"), PROFILE)
    try:
        cli.ok("start", "--driver=qemu", "--no-kubernetes", f"--iso-url=file://{iso.iso}",
               f"--iso-checksum=sha256:{iso.sha256}", "--memory=2g", "--cpus=2", "--no-guest-egress",
               label="start")
        yield cli
    finally:
        cli.run("delete")
        assert qemu_pids(f"minisand-{PROFILE}") == []
        out = Path(os.environ.get("MINISAND_BENCH_OUT", tmp_path_factory.getbasetemp()))
        out.mkdir(parents=True, exist_ok=True)
        (out / "daily-loop.json").write_text(json.dumps(cli.timings, indent=2))


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return web_image(tmp_path_factory.mktemp("web"), IMAGE)


def _ctr_names(cli: CLI) -> list[str]:
    return cli.ok("ssh", "--", "sudo", "ctr", "-n", "k8s.io", "images", "ls", "-q").split()


def _last_command_seconds(cli: CLI, word: str) -> float:
    """How long the node's last command with `word` in its argv took (minisand's command log)."""
    log = (cli.home / "logs" / f"{PROFILE}.log").read_text().splitlines()
    records = [json.loads(ln.split(" minisand.commands: ", 1)[1]) for ln in log if " minisand.commands: {" in ln]
    return float([r for r in records if word in r["argv"] and r.get("exit") is not None][-1]["seconds"])


def test_image_load_from_a_file_shows_in_ls_and_rm_removes_it(vm: CLI, archives: dict[str, Path]) -> None:
    size = archives["docker"].stat().st_size
    t0 = time.monotonic()
    out = vm.ok("image", "load", str(archives["docker"]), label="image load (file)")
    vm.timings["image load (file) bytes"] = size
    vm.timings["image load (file) MB/s"] = round(size / 1e6 / (time.monotonic() - t0), 2)
    assert out.split() == [IMAGE]
    vm.timings["image load (file): ctr import in the guest"] = _last_command_seconds(vm, "import")
    assert IMAGE in vm.ok("image", "ls").split()
    rows = json.loads(vm.ok("image", "ls", "--format", "json"))
    row = next(r for r in rows if IMAGE in r["repoTags"])
    assert row["nodes"] == [PROFILE] and row["size"] > 0
    assert IMAGE in vm.ok("image", "ls", "--format", "table")
    # what the CRI sees is what containerd's k8s.io namespace holds, one platform, unpacked for the snapshotter
    assert IMAGE in _ctr_names(vm)
    ran = vm.ok("ssh", "--", "sudo", "ctr", "-n", "k8s.io", "run", "--rm", IMAGE, "loop-web",
                "/bin/busybox", "cat", "/www/index.html")
    assert ran == "hello from a loaded image\n"
    vm.ok("image", "rm", IMAGE)
    assert IMAGE not in vm.ok("image", "ls").split()
    gone = vm.run("image", "rm", IMAGE)
    assert gone.returncode == 10 and "has image" in gone.stderr


def test_image_load_from_stdin_gzip_and_oci(vm: CLI, archives: dict[str, Path]) -> None:
    piped = vm.run("image", "load", "-", stdin_file=archives["docker"], label="image load (stdin)")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.split() == [IMAGE]
    vm.ok("image", "rm", IMAGE)
    assert vm.ok("image", "load", str(archives["gzip"]), label="image load (gzip)").split() == [IMAGE]
    vm.ok("image", "rm", IMAGE)
    assert vm.ok("image", "load", str(archives["oci"]), label="image load (oci)").split() == [IMAGE]
    assert IMAGE in vm.ok("image", "ls").split()


@pytest.fixture()
def host_containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A containerd on this host (its own root, state and socket; no network: a fresh network namespace), the
    kind of engine `image load NAME` exports from. Stopped by PID at the end."""
    from tests.integration.helpers.containerd import short_workdir, unmount_under

    work = short_workdir("msd-ic-")
    sock = work / "c.sock"
    (work / "config.toml").write_text(
        f'version = 3\nroot = "{work}/root"\nstate = "{work}/state"\n[grpc]\n  address = "{sock}"\n'
        '[plugins."io.containerd.cri.v1.runtime"]\n  restrict_oom_score_adj = true\n')
    with (work / "containerd.log").open("wb") as log:
        proc = subprocess.Popen(["unshare", "--net", "containerd", "--config", str(work / "config.toml")],
                                stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert sock.exists(), (work / "containerd.log").read_text()[-2000:]
        yield str(sock)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        unmount_under(work)
        subprocess.run(["rm", "-rf", str(work)], check=False, timeout=60)


def test_image_load_by_name_from_the_hosts_containerd(vm: CLI, archives: dict[str, Path], host_containerd: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with archives["docker"].open("rb") as f:
        subprocess.run(["ctr", "--address", host_containerd, "images", "import", "-"], stdin=f, check=True,
                       capture_output=True, timeout=120)
    vm.run("image", "rm", IMAGE)
    monkeypatch.setenv("CONTAINERD_ADDRESS", host_containerd)
    out = vm.ok("image", "load", IMAGE, "--daemon", "containerd", label="image load (host containerd)")
    assert out.split() == [IMAGE] and IMAGE in vm.ok("image", "ls").split()
    unknown = vm.run("image", "load", "example.com/minisand/nothing:9")
    lines = [ln for ln in unknown.stderr.splitlines() if ln.startswith("minisand: ")]
    assert unknown.returncode == 10 and len(lines) == 1
    assert "no host engine has it" in lines[0] and "containerd: not in containerd's 'default' namespace" in lines[0]


def test_image_load_json_events(vm: CLI, archives: dict[str, Path]) -> None:
    out = vm.ok("image", "load", str(archives["docker"]), "-o", "json")
    events = [json.loads(line) for line in out.splitlines()]
    steps = [e["data"] for e in events if e["type"] == "io.minisand.step"]
    assert [s["name"] for s in steps] == ["Reading Image", "Loading Image", "Done"]
    assert [int(s["currentstep"]) for s in steps] == [0, 1, 2] and {s["totalsteps"] for s in steps} == {"2"}
    progress = [e["data"] for e in events if e["type"] == "io.minisand.download.progress"]
    assert progress and progress[-1]["current"] == str(archives["docker"].stat().st_size)


def test_corrupt_and_missing_archives_are_refused_in_one_line(vm: CLI, archives: dict[str, Path],
                                                              tmp_path: Path) -> None:
    before = _ctr_names(vm)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archives["docker"].read_bytes()[:50_000])  # a valid tar header, then cut short
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(100_000))
    for path, words in ((cut, "refused"), (junk, "not a tar archive"), (tmp_path / "missing.tar", "no such file")):
        proc = vm.run("image", "load", str(path))
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("minisand: ")]
        assert proc.returncode == 10, proc.stderr
        assert len(lines) == 1 and words in lines[0] and "hint:" in lines[0] and "Traceback" not in proc.stderr
    assert _ctr_names(vm) == before


def test_cp_round_trips_bytes_both_ways(vm: CLI, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    src.chmod(0o640)
    vm.run("ssh", "--", "sh", "-c", "cat > /dev/null", stdin_file=src, label="ssh stdin to /dev/null (3 MiB)")
    vm.ok("cp", str(src), "/home/minisand/blob.bin", label="cp host->node (3 MiB)")
    remote = vm.ok("ssh", "--", "sudo", "sha256sum", "/home/minisand/blob.bin").split()[0]  # root-owned, 0640
    assert remote == hashlib.sha256(data).hexdigest()
    assert vm.ok("ssh", "--", "stat", "-c", "%a", "/home/minisand/blob.bin").strip() == "640"
    vm.ok("cp", str(src), f"{PROFILE}:/tmp/")  # a directory on the node: the file keeps its name
    assert vm.run("ssh", "--", "test", "-f", "/tmp/blob.bin").returncode == 0
    back = tmp_path / "back"
    back.mkdir()
    vm.ok("cp", f"{PROFILE}:/home/minisand/blob.bin", str(back), label="cp node->host (3 MiB)")
    assert hashlib.sha256((back / "blob.bin").read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    missing = vm.run("cp", f"{PROFILE}:/no/such/file", str(back / "x"))
    assert missing.returncode == 10 and "No such file" in missing.stderr
    assert not (back / "x").exists() and [p.name for p in back.iterdir()] == ["blob.bin"]


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(10)
        chunks = []
        while chunk := s.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def _closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
    except OSError:
        return True
    return False


def _driver(vm: CLI) -> QemuDriver:
    ctx = Context(Home(vm.home), PROFILE)
    drv = driver_for(ctx, ctx.store.load(PROFILE), PROFILE)
    assert isinstance(drv, QemuDriver)
    return drv


def test_qmp_host_forward_is_added_reaches_the_guest_and_is_removed(vm: CLI) -> None:
    vm.ok("ssh", "--", "sudo", "systemd-run", "--unit=loop-echo", "socat", "TCP-LISTEN:30080,reuseaddr,fork",
          "SYSTEM:echo hello-from-the-guest")
    drv = _driver(vm)
    fwd = hostfwd.ensure(drv.dir, drv.hmp, NETDEV, 30080, owner="test", pick_port=free_port)
    assert fwd.host_ip == "127.0.0.1"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and b"hello" not in _get(fwd.host_port):
        time.sleep(1)
    assert _get(fwd.host_port) == b"hello-from-the-guest\n"
    active = [(a.host_port, a.guest_port) for a in hostfwd.active(drv.hmp)]
    assert (fwd.host_port, 30080) in active
    assert json.loads((drv.dir / "forwards.json").read_text())[0]["host_port"] == fwd.host_port
    assert hostfwd.ensure(drv.dir, drv.hmp, NETDEV, 30080, pick_port=free_port) == fwd  # idempotent
    hostfwd.remove(drv.dir, drv.hmp, NETDEV, fwd)
    assert _closed(fwd.host_port)
    assert (fwd.host_port, 30080) not in [(a.host_port, a.guest_port) for a in hostfwd.active(drv.hmp)]
    assert not (drv.dir / "forwards.json").exists()


def test_logs_follow_ends_cleanly_on_ctrl_c(vm: CLI, tmp_path: Path) -> None:
    out = tmp_path / "follow.txt"
    with out.open("w") as f:
        # SIGINT's default disposition, as in a terminal (a shell's background job would inherit it ignored)
        proc = subprocess.Popen([str(VENV_BIN / "minisand"), "logs", "-f", "-n", "5"], stdout=f,
                                stderr=subprocess.PIPE, env=vm.env(), text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and f"{PROFILE} journal" not in out.read_text():
            time.sleep(0.5)
        vm.ok("ssh", "--", "sudo", "systemctl", "restart", "containerd")  # new journal lines while following
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "Stopped" not in out.read_text() \
                and "Stopping" not in out.read_text():
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert code == 0 and "Traceback" not in stderr, stderr
    assert text.startswith("==> minisand log <==") and f"==> {PROFILE} journal <==" in text
    assert "containerd" in text.split(f"==> {PROFILE} journal <==", 1)[1]
    time.sleep(2)
    assert vm.run("ssh", "--", "pgrep", "-x", "journalctl").returncode == 1  # nothing left following


def test_logs_file(vm: CLI, tmp_path: Path) -> None:
    dest = tmp_path / "logs.txt"
    assert vm.ok("logs", "--file", str(dest)) == ""
    assert "==> minisand log" in dest.read_text() and "journal: containerd" in dest.read_text()


def test_stop_releases_the_forwards(vm: CLI) -> None:
    drv = _driver(vm)
    fwd = hostfwd.ensure(drv.dir, drv.hmp, NETDEV, 30080, pick_port=free_port)
    assert not _closed(fwd.host_port)
    vm.ok("stop", label="stop")
    assert not (drv.dir / "forwards.json").exists() and _closed(fwd.host_port)
    refused = vm.run("image", "ls")
    assert refused.returncode == 30 and "not running" in refused.stderr
