"""Small file helpers shared by the caches (weights, photo sets, GPTQ and codebook-tuning
results): atomic writes, reproducible .npz bytes, SHA-256 digests of files and of a
network's inputs, and per-layer (kernel, bias) result files."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["digest_network", "load_layers", "npz_bytes", "save_layers", "sha256_file",
           "write_atomic"]


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


def digest_network(h, nodes, weights: dict, frames) -> None:
    """Feed ``h`` (a hashlib object) the blocks ``nodes`` (their repr), the ``{name:
    (kernel, bias)}`` ``weights`` (names, shapes, dtypes, bytes) and the ``frames``."""
    for n in nodes:
        h.update(repr(n).encode())
    for name in sorted(weights):
        for a in weights[name]:
            h.update(name.encode() + repr(a.shape).encode() + str(a.dtype).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    for f in frames:
        h.update(repr(f.shape).encode() + np.ascontiguousarray(f).tobytes())


def save_layers(path: Path, weights: dict, names) -> None:
    """The (kernel, bias) of every layer in ``names`` as ``<name>/w``, ``<name>/b`` in one
    reproducible .npz at ``path``, written atomically."""
    arrays = {}
    for name in names:
        arrays[f"{name}/w"], arrays[f"{name}/b"] = weights[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, npz_bytes(arrays))


def load_layers(path: Path, like: dict, names, valid) -> dict | None:
    """``like`` with the layers in ``names`` read from ``save_layers``' file at ``path``
    (dtypes of ``like``), or None when the file is missing or damaged, or a layer's kernel
    or bias has the wrong shape, a bias is not finite, or ``valid(name, kernel)`` is false:
    the caller then recomputes and rewrites it."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            got = {name: (z[f"{name}/w"], z[f"{name}/b"]) for name in names}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    out = dict(like)
    for name, (w, b) in got.items():
        w0, b0 = like[name]
        if (w.shape != w0.shape or b.shape != b0.shape or not np.all(np.isfinite(b))
                or not valid(name, w)):
            return None
        out[name] = (w.astype(w0.dtype), b.astype(b0.dtype))
    return out


def tail_text(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a tool's log (undecodable bytes replaced), or
    ``(no log)`` when it cannot be read: for error messages."""
    from collections import deque

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return "(no log)"
