"""`minisand image load`'s pure and host-side parts: the archive check (tar header, gzip on the fly, refusals), the
source resolution (file, stdin, names), the fan-out of one stream to every node's SSH channel (against the in-process
sshd double), ctr's output, and the CLI's one-line errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from minisand.cluster import images
from minisand.cluster.imagesource import looks_like_path, open_source
from minisand.config.model import ClusterConfig
from minisand.config.store import ProfileStore
from minisand.errors import ExitCode, MinisandError
from minisand.images.archive import open_checked
from minisand.keys import ensure_client_key
from minisand.paths import Home
from minisand.runner.ssh import SSHRunner, SSHTarget
from tests.unit.clihelp import one_line_error, run_cli
from tests.unit.sshdouble import ssh_double


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVE = _tar({"index.json": b'{"schemaVersion":2}', "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
                "blobs/sha256/aa": os.urandom(300_000)})


def _read_all(stream: io.BufferedIOBase | object) -> bytes:
    out = b""
    while chunk := stream.read(65536):  # type: ignore[attr-defined]
        out += chunk
    return out


def test_a_tar_passes_unchanged() -> None:
    assert _read_all(open_checked(io.BytesIO(ARCHIVE), "x")) == ARCHIVE


def test_a_gzipped_tar_is_decompressed_on_the_fly_even_in_several_members() -> None:
    half = len(ARCHIVE) // 2
    two_members = gzip.compress(ARCHIVE[:half]) + gzip.compress(ARCHIVE[half:])
    assert _read_all(open_checked(io.BytesIO(gzip.compress(ARCHIVE)), "x")) == ARCHIVE
    assert _read_all(open_checked(io.BytesIO(two_members), "x")) == ARCHIVE


@pytest.mark.parametrize(("data", "words"), [
    (b"", "is empty"),
    (b"not an archive\n", "shorter than one tar block"),
    (os.urandom(4096), "not a tar archive"),
    (b"\x28\xb5\x2f\xfd" + bytes(1020), "zstd"),
])
def test_what_is_not_a_tar_is_refused_before_anything_is_sent(data: bytes, words: str) -> None:
    with pytest.raises(MinisandError) as info:
        open_checked(io.BytesIO(data), "image.tar")
    assert info.value.code == ExitCode.BAD_INPUT and words in info.value.message
    assert info.value.reason == "IMAGE_ARCHIVE_CORRUPT" and info.value.hint


def test_a_gzip_cut_short_is_refused_while_streaming() -> None:
    cut = gzip.compress(ARCHIVE)[:-200]
    stream = open_checked(io.BytesIO(cut), "x")
    with pytest.raises(MinisandError, match="cut short"):
        _read_all(stream)


def test_sources(tmp_path: Path) -> None:
    f = tmp_path / "web.tar"
    f.write_bytes(ARCHIVE)
    a = open_source(str(f))
    assert (a.label, a.size) == (str(f), len(ARCHIVE)) and _read_all(a.stream) == ARCHIVE
    a.close()
    s = open_source("-", stdin=io.BytesIO(ARCHIVE))
    assert (a.label, s.size) != ("stdin", 0) and _read_all(s.stream) == ARCHIVE
    with pytest.raises(MinisandError, match="no such file"):
        open_source(str(tmp_path / "missing.tar"))
    with pytest.raises(MinisandError, match="is a directory"):
        open_source(str(tmp_path))
    with pytest.raises(MinisandError, match="neither a file nor an image name"):
        open_source("Bad Name!!")
    with pytest.raises(MinisandError, match="--daemon"):
        open_source("web:1", engine="rkt")


def test_paths_and_names_are_told_apart() -> None:
    assert looks_like_path("./web.tar") and looks_like_path("/x/y") and looks_like_path("img.tar.gz")
    assert not looks_like_path("web:1.0") and not looks_like_path("registry.example/team/web:2")


# what containerd 2.1.9's ctr printed here for a docker-archive, and for an OCI layout whose only ref is "latest"
CTR2 = ("example.com/test/web:2.0                \tsaved\t\n"
        "application/vnd.docker.distribution.manifest.v2+json sha256:9d4a8aa5b30e\n"
        "Importing\telapsed: 0.4 s\ttotal:   0.0 B\t(0.0 B/s)\t\n")
CTR2_UNNAMED = "import 2026 12 01:latest                \tsaved\t\nImporting\telapsed: 0.3 s\n"
CTR17 = ("unpacking example.com/test/web:1.0 (sha256:ab12)...done\n"
         "unpacking docker.io/library/busybox:latest (sha256:cd34)...done\n")


def test_ctr_output_gives_the_imported_names() -> None:
    assert images.imported_names(CTR2) == ["example.com/test/web:2.0"]
    assert images.imported_names(CTR17) == ["example.com/test/web:1.0", "docker.io/library/busybox:latest"]
    assert images.imported_names(CTR2_UNNAMED) == ["import 2026 12 01:latest"]
    assert images.UNNAMED.match("import 2026 12 01:latest") and images.UNNAMED.match("import-2026-12-01:latest")
    assert not images.UNNAMED.match("example.com/import-2026-12-01:latest")
    assert images.imported_names("") == []


def test_rm_removes_a_name_as_one_tag_and_an_id_through_the_cri() -> None:
    assert images.remove_argv("web:1.0")[-3:] == ["images", "rm", "docker.io/library/web:1.0"]
    assert images.remove_argv("sha256:" + "a" * 64)[-2:] == ["rmi", "sha256:" + "a" * 64]
    assert images.remove_argv("96147ab7d055")[-2:] == ["rmi", "96147ab7d055"]
    with pytest.raises(MinisandError):
        images.remove_argv("Bad Name")


# -- streaming to the nodes ---------------------------------------------------------------------------------------
@pytest.fixture()
def client_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "id_ed25519"
    return key, ensure_client_key(key, "unit")


def test_fan_out_sends_the_same_bytes_to_every_node_over_ssh(client_key: tuple[Path, str]) -> None:
    key, pub = client_key
    payload = os.urandom(5 << 20)
    with ssh_double(pub) as sshd:
        runners = [SSHRunner(SSHTarget("127.0.0.1", sshd.port, "minisand", key, sshd.host_key_line))
                   for _ in range(2)]
        outs = [io.BytesIO() for _ in runners]
        sinks, threads = [], []
        for runner, out in zip(runners, outs, strict=True):
            r_fd, w_fd = os.pipe()
            os.set_blocking(w_fd, False)
            sink = images.PipeSink(w_fd)
            reader = os.fdopen(r_fd, "rb")

            def run(runner: SSHRunner = runner, reader: io.BufferedReader = reader, out: io.BytesIO = out,
                    sink: images.PipeSink = sink) -> None:
                runner.stream(["cat"], stdin=reader, stdout=out, stderr=io.BytesIO(), timeout=60)
                sink.finished.set()

            sinks.append(sink)
            threads.append(threading.Thread(target=run, daemon=True))
        for t in threads:
            t.start()
        seen: list[int] = []
        total = images.fan_out(io.BytesIO(payload), sinks, seen.append)
        for t in threads:
            t.join(30)
        for r in runners:
            r.close()
    assert total == len(payload) == sum(seen) and max(seen) <= 1 << 20
    digest = hashlib.sha256(payload).hexdigest()
    assert [hashlib.sha256(o.getvalue()).hexdigest() for o in outs] == [digest, digest]


def test_a_node_whose_import_ends_early_does_not_stall_the_load(client_key: tuple[Path, str]) -> None:
    """The double has no ctr: the node's command exits at once (127) without reading; the fan-out must drop that
    node instead of blocking on its full pipe, and the failure is one GUEST_ERROR line."""
    key, pub = client_key
    with ssh_double(pub) as sshd:
        runner = SSHRunner(SSHTarget("127.0.0.1", sshd.port, "minisand", key, sshd.host_key_line))
        r_fd, w_fd = os.pipe()
        os.set_blocking(w_fd, False)
        sink = images.PipeSink(w_fd)
        node = images.NodeImport("minisand", runner, "linux/amd64")
        t = threading.Thread(target=node.run, args=(os.fdopen(r_fd, "rb"), sink.finished), daemon=True)
        t.start()
        images.fan_out(io.BytesIO(os.urandom(8 << 20)), [sink], lambda n: None)
        t.join(30)
        runner.close()
    assert sink.broken and node.code == 127
    assert sshd.seen.commands[-1][:6] == ["ctr", "--address", "/run/containerd/containerd.sock", "--namespace",
                                          "k8s.io", "images"]
    assert sshd.seen.commands[-1][6:] == ["import", "--platform", "linux/amd64", "-"]
    err = images.describe_failure(node, "web.tar")
    assert err.code == ExitCode.GUEST_ERROR and "not found" in err.message


def test_ctr_refusing_the_archive_is_bad_input() -> None:
    node = images.NodeImport("minisand", None, "linux/amd64", code=1)  # type: ignore[arg-type]
    node.err.write(b'ctr: failed to ingest "a5d8.tar": short read: expected 1985024 bytes but got 4488: '
                   b'unexpected EOF\n')
    err = images.describe_failure(node, "web.tar")
    assert err.code == ExitCode.BAD_INPUT and err.reason == "IMAGE_ARCHIVE_CORRUPT" and "unexpected EOF" in err.message


def test_an_exporter_that_died_is_reported_rather_than_the_cut_archive_the_nodes_got() -> None:
    cut = images.NodeImport("minisand", None, "linux/amd64", code=1)  # type: ignore[arg-type]
    cut.err.write(b'ctr: failed to ingest "blobs/sha256/dc43": short read: expected 1986560 bytes but got 1966080: '
                  b'unexpected EOF\n')
    died = MinisandError("`ctr ... images export` failed with exit code 1: context canceled",
                         code=ExitCode.BAD_INPUT, reason="IMAGE_EXPORT_FAILED")
    assert images.load_error([cut], died, cut_short=False, label="containerd:web") is died
    # a node that ended first: the exporter only saw its pipe close, the node's own error is the cause
    first = images.load_error([cut], died, cut_short=True, label="containerd:web")
    assert first is not None and first.reason == "IMAGE_ARCHIVE_CORRUPT"
    ok = images.NodeImport("minisand", None, "linux/amd64", code=0)  # type: ignore[arg-type]
    assert images.load_error([ok], None, cut_short=False, label="web.tar") is None


# -- the CLI ------------------------------------------------------------------------------------------------------
@pytest.fixture()
def stopped(home: Path) -> Home:
    h = Home(home)
    ProfileStore(h).save(ClusterConfig(name="minisand", driver="qemu"))
    return h


def test_cli_bad_input_is_one_line(stopped: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(os.urandom(2048))
    good = tmp_path / "good.tar"
    good.write_bytes(ARCHIVE)
    before = sorted(p.relative_to(stopped.root) for p in stopped.root.rglob("*"))
    for argv, code, words in (
        (["image", "load", str(tmp_path / "missing.tar")], ExitCode.BAD_INPUT, "no such file"),
        (["image", "load", str(corrupt)], ExitCode.BAD_INPUT, "not a tar archive"),
        (["image", "load", str(good)], ExitCode.MACHINE_NOT_RUNNING, "not running"),
        (["image", "ls"], ExitCode.MACHINE_NOT_RUNNING, "not running"),
        (["image", "ls", "--format", "xml"], ExitCode.BAD_INPUT, "--format"),
        (["image", "rm", "web:1"], ExitCode.MACHINE_NOT_RUNNING, "not running"),
        (["image", "pull", "Bad Name"], ExitCode.BAD_INPUT, "Bad Name"),
        (["image", "load", "-p", "ghost", str(good)], ExitCode.PROFILE_NOT_FOUND, "ghost"),
    ):
        got, out, err = run_cli(argv, capsys)
        assert got == code, (argv, err)
        assert words in one_line_error(err), err
        assert out == ""
    assert sorted(p.relative_to(stopped.root) for p in stopped.root.rglob("*")) == before  # nothing touched
