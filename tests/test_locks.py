"""One run at a time per build folder (model.locks), and child processes stop with the
run that started them (model.children)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from model import locks
from model.children import descendants
from model.paths import REPO


def _holder(directory, seconds: float) -> subprocess.Popen:
    """Another process that holds ``directory`` for ``seconds``; returns once it holds it."""
    code = textwrap.dedent(f"""
        import sys, time
        from model.locks import hold
        hold({str(directory)!r})
        print("held", flush=True)
        time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_is_told_and_gives_up_naming_the_holder(tmp_path):
    work = tmp_path / "build" / "hls" / "tiny_vitis"
    other = _holder(work, 30)
    try:
        lines = []
        with pytest.raises(locks.LockBusy) as info:
            locks.hold(work, log=lines.append, wait_s=0.6)
        message = str(info.value)
        assert f"{work.resolve()} is in use by another run (pid {other.pid}" in message
        assert "gave up after 1 s" in message
        assert lines == [f"{work.resolve()} is in use by another run (pid {other.pid}); "
                         "waiting for it to finish"]
        assert work.resolve() not in locks.held()
    finally:
        other.kill()
        other.wait()


def test_second_run_waits_then_proceeds(tmp_path):
    work = tmp_path / "rtl" / "tiny"
    other = _holder(work, 1.0)
    lines = []
    t0 = time.monotonic()
    assert locks.hold(work, log=lines.append, wait_s=30) == work.resolve()
    waited = time.monotonic() - t0
    other.wait()
    assert 0.3 < waited < 30 and len(lines) == 1
    assert work.resolve() in locks.held()
    # re-entrant in this process; the lock file names this process
    assert locks.hold(work, wait_s=0) == work.resolve()
    assert (work.parent / ".tiny.lock").read_text().strip() == str(os.getpid())


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    work = tmp_path / "sim" / "fast" / "tiny"
    other = _holder(work, 60)
    other.send_signal(signal.SIGKILL)
    other.wait()
    assert locks.hold(work, wait_s=0) == work.resolve()


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="descendants are found via /proc")
def test_sigterm_to_the_run_stops_its_children():
    """A run (with the handlers the command line installs) starts a shell that starts a
    sleep, as hls4ml's build script starts g++; SIGTERM to the Python process alone stops
    both and exits with 128 + 15."""
    code = textwrap.dedent("""
        import subprocess, time
        from model.children import install
        install()
        subprocess.Popen(["sh", "-c", "sleep 120; true"])
        print("started", flush=True)
        time.sleep(120)
    """)
    run = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert run.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 10
    kids = []
    while len(kids) < 2 and time.monotonic() < deadline:   # sh and its sleep
        kids = descendants(run.pid)
        time.sleep(0.05)
    assert len(kids) == 2, kids
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=20) == 128 + signal.SIGTERM
    assert "stopped by signal SIGTERM" in run.stderr.read()
    deadline = time.monotonic() + 10
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(k) for k in kids), [k for k in kids if _alive(k)]
