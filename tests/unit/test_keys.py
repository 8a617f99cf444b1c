from __future__ import annotations

import stat
from pathlib import Path

from minisand.guest import HOST_KEYS_BEGIN, HOST_KEYS_END
from minisand.keys import (
    ensure_client_key,
    fingerprint,
    host_keys_from_console,
    preferred_host_key,
)

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMyIuNaRP0y0VhCYZeIbQ0xS0SxJk7aXD3G5tD0x6mP1"
EC = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEm2yBLjGpmRHKk7CPPb3MZZgQCu5SM8"
      "cXq5VfLPsFeq0DBo3m9N6U5hPAg3xqUmiiJGYwP0Fv5q8Q7hIyN9S3A=")


def test_client_key_is_private_and_stable(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    pub = ensure_client_key(key, "minisand@dev")
    assert pub.startswith("ssh-ed25519 ") and pub.endswith(" minisand@dev")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert ensure_client_key(key, "minisand@dev") == pub
    import paramiko

    paramiko.Ed25519Key.from_private_key_file(str(key))


def test_host_keys_from_the_last_boot_block() -> None:
    stale = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOLDOLDOLDOLDOLDOLDOLDOLDOLDOLDOLDOLDOLDOLDO"
    old = f"{HOST_KEYS_BEGIN}\n{stale}\n{HOST_KEYS_END}"
    new = f"{HOST_KEYS_BEGIN}\r\n{EC}\r\n{ED} root@dev\r\n{HOST_KEYS_END}\r\n"
    log = f"boot 1\n{old}\nreboot\n[  1.0] noise\n{new}login:"
    keys = host_keys_from_console(log)
    assert keys == [EC, ED]
    assert preferred_host_key(keys) == ED


def test_incomplete_block_is_ignored() -> None:
    assert host_keys_from_console(f"{HOST_KEYS_BEGIN}\n{ED}\n") == []
    assert host_keys_from_console("nothing here") == []


def test_fingerprint_format() -> None:
    fp = fingerprint(ED)
    assert fp.startswith("SHA256:") and "=" not in fp and len(fp) == 7 + 43
