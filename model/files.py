"""Small file helpers shared by the caches (weights, photo sets): atomic writes and
SHA-256 digests of files."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

__all__ = ["sha256_file", "write_atomic"]


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and
    ``os.replace``, so a reader sees the old file or the whole new one, never a part."""
    # A unique name per writer; open(..., "xb") creates it with the umask's permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
