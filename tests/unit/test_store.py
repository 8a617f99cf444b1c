from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from minisand.config.model import ClusterConfig, DriverOptions, MirrorConfig
from minisand.config.store import ProfileStore
from minisand.errors import ExitCode, MinisandError
from minisand.paths import Home


def _store(home: Path) -> ProfileStore:
    return ProfileStore(Home(home))


def test_roundtrip_is_exact_and_private(tmp_path: Path) -> None:
    store = _store(tmp_path)
    cfg = ClusterConfig(name="dev", driver="qemu", cpus=3, memory_mb=3000,
                        mirrors=MirrorConfig(registry_mirrors=("docker.io=http://m:5000",),
                                             insecure_registries=("m:5000",)),
                        driver_options=DriverOptions(guest_egress=False,
                                                     guest_forwards=("10.0.2.100:5000=127.0.0.1:5000",)))
    store.save(cfg)
    assert store.load("dev") == cfg
    path = Home(tmp_path).profile_config("dev")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.names() == ["dev"]
    assert not list(path.parent.glob("*.tmp"))


def test_missing_profile(tmp_path: Path) -> None:
    with pytest.raises(MinisandError) as exc:
        _store(tmp_path).load("nope")
    assert exc.value.code == ExitCode.PROFILE_NOT_FOUND


@pytest.mark.parametrize("content", ["{not json", "[]", json.dumps({"name": "dev", "driver": "qemu", "cpus": "x"}),
                                     json.dumps({"name": "dev", "driver": "qemu", "bogus": 1})])
def test_corrupt_profile(tmp_path: Path, content: str) -> None:
    path = Home(tmp_path).profile_config("dev")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(MinisandError) as exc:
        _store(tmp_path).load("dev")
    assert exc.value.code == ExitCode.PROFILE_CORRUPT


def test_second_lock_fails_fast_and_names_the_holder(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save(ClusterConfig(name="dev", driver="qemu"))
    with store.lock("dev"), pytest.raises(MinisandError) as exc, store.lock("dev"):
        pass
    assert exc.value.code == ExitCode.PROFILE_BUSY
    import os

    assert str(os.getpid()) in exc.value.message
    with store.lock("dev"):  # released again
        pass


def test_lock_on_a_new_profile_leaves_nothing_when_nothing_was_saved(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.lock("fresh"):
        pass
    assert not Home(tmp_path).profile_dir("fresh").exists()
