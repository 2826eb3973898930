"""Progress of long loops on stderr: a tqdm bar on a terminal, plain log lines otherwise.

A bar redraws itself with carriage returns, which a log file or CI output turns into noise;
so when stderr is not a terminal, :func:`progress` prints one line at about every tenth of
the work (and at the end) instead: ``<desc>: 30/300 images (4.1 s)``. Nothing goes to
stdout, so a command's output (e.g. ``sqz classify --json``) stays machine-readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

__all__ = ["ProgressBar", "progress"]

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "item",
             stream: TextIO | None = None, lines: int = 10) -> Iterator[T]:
    """Yield ``items`` unchanged while showing how far the loop is.

    ``total`` defaults to ``len(items)`` when it has one. On a terminal ``stream`` (default
    ``sys.stderr``) a tqdm bar; elsewhere a flushed line after every ``ceil(total /
    lines)`` items and after the last one (with no total: after item 1, 2, 4, 8, ...).
    """
    stream = stream or sys.stderr
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if stream.isatty():
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, total=total, unit=unit, file=stream,
                        dynamic_ncols=True)
        return
    t0 = time.perf_counter()
    step = max(1, -(-total // lines)) if total else 1
    done = 0
    for item in items:
        yield item
        done += 1
        if done % step == 0 or done == total or (not total and done & (done - 1) == 0):
            of = f"/{total}" if total else ""
            print(f"{desc}: {done}{of} {unit}s ({time.perf_counter() - t0:.1f} s)",
                  file=stream, flush=True)


class ProgressBar:
    """Progress of work that reports itself through callbacks (a worker pool's results,
    say), where there is no loop to wrap: on a terminal ``stream`` a tqdm bar that
    :meth:`update` advances and :meth:`log` keeps below the caller's lines; elsewhere it
    draws nothing, since such callers log a plain line per finished piece of work
    (``sqz dse``: ``[k/N] SR=...``).
    """

    def __init__(self, total: int, desc: str, unit: str = "item",
                 stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        self._bar = None
        if total and stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=stream,
                             dynamic_ncols=True)

    def log(self, log: Callable[[str], object], line: str) -> None:
        """``log(line)``, with the bar cleared while it prints and redrawn after."""
        if self._bar is None:
            log(line)
            return
        with self._bar.external_write_mode():
            log(line)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
