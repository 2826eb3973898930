"""Child processes die with the run that started them.

hls4ml runs g++ through its own shell script, the weights fetch runs pip, the RTL flows
run Verilator, make and Yosys. A ``kill <pid>`` of the ``sqz`` process alone used to leave
those running on their own. :func:`install` (called by the command line at start) turns
SIGTERM and SIGHUP into: stop every descendant (SIGTERM, then SIGKILL after a grace
period), then exit with 128 + the signal number. Ctrl-C already reaches the children,
which share the terminal's process group. A SIGKILL of the Python process cannot be
caught; its children are then only stopped by the kernel when they next write to a
closed pipe.

Descendants are found through ``/proc`` (Linux); elsewhere only the signal handling is
installed.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

__all__ = ["descendants", "stop_descendants", "install"]

GRACE_S = 3.0


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process ``/proc`` shows."""
    out = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[0] != "Z":
            out[int(entry.name)] = int(fields[1])
    return out


def descendants(pid: int | None = None) -> list[int]:
    """Every living descendant of ``pid`` (default: this process), children first."""
    root = os.getpid() if pid is None else pid
    parents = _parents()
    found, frontier = [], [root]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier and p not in found]
        found += kids
        frontier = kids
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_descendants(grace_s: float = GRACE_S) -> list[int]:
    """SIGTERM every descendant, SIGKILL those still alive after ``grace_s``; returns the
    pids signalled."""
    pids = descendants()
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        alive = [p for p in pids if p in _parents()]
        if not alive:
            break
        time.sleep(0.05)
    else:
        _signal_all([p for p in pids if p in _parents()], signal.SIGKILL)
    return pids


def _on_signal(signum, _frame) -> None:
    stop_descendants()
    # the conventional status of a run ended by a signal, without Python's cleanup racing
    # the children we just stopped
    sys.stderr.write(f"error: stopped by signal {signal.Signals(signum).name}; child "
                     "processes stopped\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def install() -> None:
    """SIGTERM / SIGHUP stop the children, then the process (see the module text)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
