"""SSH keys: the per-machine client key (ed25519, 0600) and the guest's host keys read back from its serial
console, where the guest's first-boot unit prints them between markers (a channel no network peer can forge)."""

from __future__ import annotations

import re
from pathlib import Path

from minisand.fsutil import atomic_write
from minisand.guest import HOST_KEYS_BEGIN, HOST_KEYS_END


def ensure_client_key(path: Path, comment: str) -> str:
    """Creates an ed25519 key pair at path (0600) and path.pub if missing; returns the public key line."""
    pub = path.with_name(path.name + ".pub")
    if path.is_file() and pub.is_file():
        path.chmod(0o600)
        return pub.read_text().strip()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode()} {comment}"
    atomic_write(path, private, mode=0o600)
    atomic_write(pub, (line + "\n").encode(), mode=0o644)
    return line


_KEY_LINE = re.compile(r"(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) ([A-Za-z0-9+/=]{40,})")


def host_keys_from_console(text: str) -> list[str]:
    """The host keys of the *last* boot's block in a serial log ("type base64" lines)."""
    start = text.rfind(HOST_KEYS_BEGIN)
    if start < 0:
        return []
    end = text.find(HOST_KEYS_END, start)
    if end < 0:
        return []
    block = text[start + len(HOST_KEYS_BEGIN):end]
    return [f"{m.group(1)} {m.group(2)}" for m in _KEY_LINE.finditer(block)]


def preferred_host_key(keys: list[str]) -> str | None:
    for prefix in ("ssh-ed25519 ", "ecdsa-sha2-nistp256 ", "ssh-rsa "):
        for k in keys:
            if k.startswith(prefix):
                return k
    return None


def fingerprint(host_key: str) -> str:
    import base64
    import hashlib

    blob = base64.b64decode(host_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
