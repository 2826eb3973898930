"""Small file helpers shared by the caches (weights, photo sets, GPTQ results): atomic
writes, reproducible .npz bytes and SHA-256 digests of files."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["npz_bytes", "sha256_file", "write_atomic"]


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


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A .npz of ``arrays`` (``np.load`` reads it) whose bytes depend only on the arrays:
    stored members with a fixed timestamp, so equal weights give an equal file and digest,
    and two processes writing the same cache at once cannot disagree."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return out.getvalue()


def tail_text(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a tool's log (undecodable bytes replaced), or
    ``(no log)`` when it cannot be read: for error messages."""
    from collections import deque

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return "(no log)"
