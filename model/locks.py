"""One lock per build directory, so that two runs never write the same files at once.

Two ``sqz csim --config tiny`` in one checkout used to compile into the same hls4ml
project together and crash each other (``undefined symbol``, a missing ``.o``). Every
command that writes a build directory now calls :func:`hold` on it first: an exclusive
``flock`` on ``.<dir>.lock`` beside the directory, held until the process ends (the kernel
drops it when the process dies, however it dies, so a killed run never leaves a stale
lock). A second run prints one line naming the directory and the holder's pid, waits for
it, and gives up with an error after ``wait_s`` seconds.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from model.errors import InputError

__all__ = ["hold", "held", "LockBusy"]

# How long a second run waits (SQZ_LOCK_WAIT_S overrides it; the test suite sets a short
# one so that a child process can never hang a test run on a lock its parent holds).
def _wait_s() -> float:
    try:
        value = float(os.environ.get("SQZ_LOCK_WAIT_S", ""))
    except ValueError:
        return 4 * 3600.0
    return value if 0 <= value < float("inf") else 4 * 3600.0


WAIT_S = _wait_s()
POLL_S = 0.25
_HELD: dict[Path, int] = {}   # directory -> the open lock file (this process holds it)


class LockBusy(InputError):
    """Another run still held the directory when the wait ran out."""


def _lock_file(directory: Path) -> Path:
    return directory.parent / f".{directory.name}.lock"


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return "?"
    return text or "?"


def hold(directory: str | Path, log=print, wait_s: float | None = None) -> Path:
    """Lock ``directory`` (created if needed) for the rest of this process; a directory
    this process already holds returns at once. Waits while another process holds it
    (one log line), then raises :class:`LockBusy` after ``wait_s`` seconds (default
    ``WAIT_S``; 0 = do not wait)."""
    d = Path(directory).resolve()
    if d in _HELD:
        return d
    d.mkdir(parents=True, exist_ok=True)
    lock = _lock_file(d)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            limit = WAIT_S if wait_s is None else wait_s
            pid = _holder(fd)
            if limit > 0:
                log(f"{d} is in use by another run (pid {pid}); waiting for it to finish")
            deadline = time.monotonic() + limit
            while True:
                if time.monotonic() >= deadline:
                    raise LockBusy(f"{d} is in use by another run (pid {pid}, lock {lock}); "
                                   f"gave up after {limit:.0f} s: wait for it or stop it"
                                   ) from None
                time.sleep(POLL_S)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    continue
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[d] = fd
    return d


def held() -> list[Path]:
    """The directories this process holds."""
    return list(_HELD)
