"""A NoCloud `cidata` seed ISO (meta-data + user-data) built in pure Python with pycdlib, for drivers without
fw_cfg (hyperkit). The guest's first-boot unit reads `local-hostname` and `ssh_authorized_keys` from it."""

from __future__ import annotations

import io
from pathlib import Path

from minisand.fsutil import atomic_write


def meta_data(hostname: str) -> str:
    return f"instance-id: {hostname}\nlocal-hostname: {hostname}\n"


def user_data(pubkey: str) -> str:
    return f"#cloud-config\nssh_authorized_keys:\n  - {pubkey.strip()}\n"


def write_seed_iso(dest: Path, hostname: str, pubkey: str) -> None:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for name, text in (("meta-data", meta_data(hostname)), ("user-data", user_data(pubkey))):
        data = text.encode()
        iso_name = "/" + name.upper().replace("-", "_") + ".;1"
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path="/" + name)
    buf = io.BytesIO()
    iso.write_fp(buf)
    iso.close()
    atomic_write(dest, buf.getvalue(), mode=0o644)
