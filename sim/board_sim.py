"""A stand-in for the board: the AXI-wrapped top in Verilator behind PYNQ's calls.

``firmware/sim/sqz_axi_tb.cpp`` runs the wrapper ``<core top>_axi`` (``hls.rtl.axi``) with a
model of the block design around it (an AXI DMA in simple mode, the PS's AXI-Lite master)
and takes commands on stdin. :class:`SimOverlay` offers on top of it exactly what the host
driver (``hls.infer.board.BoardDriver``) uses of a PYNQ overlay:

- ``overlay.dma.sendchannel`` / ``overlay.dma.recvchannel``: ``transfer(buffer, start=0,
  nbytes=0)``, ``idle``, ``wait()``, ``running``, ``error``, ``transferred``, with PYNQ's
  rules (``idle`` reads False before a channel's first transfer; ``transfer`` on a channel
  that is not idle raises ``RuntimeError("DMA channel not idle")``);
- ``overlay.sqz.read(offset)`` / ``overlay.sqz.write(offset, value)``: real AXI-Lite
  transactions on the wrapper's ports;
- ``overlay.allocate(shape, dtype)``: buffers with ``flush``, ``invalidate``,
  ``freebuffer``.

Time is simulated: each poll of a channel's ``idle`` runs ``chunk`` clock cycles first, and
:meth:`SimOverlay.seconds` is the simulated time at the spec's clock, so a driver given
``clock=overlay.seconds`` times out after the same number of cycles on any machine. The
harness process starts with the overlay and is ended by :meth:`SimOverlay.close` (a
context manager; killed if it does not quit).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from model import paths
from sim import fast
from sim.fast import SimError

__all__ = ["BINARY", "CHUNK", "DRIVER", "SimBuffer", "SimChannel", "SimDma", "SimIP",
           "SimOverlay", "board_dir", "build", "open_sim"]

DRIVER = paths.FIRMWARE / "sim" / "sqz_axi_tb.cpp"
BINARY = "sqz_axi_tb"
# sim.fast's flags without SQZ_FIFO_STATS: the FIFO report would print on the protocol's
# stdout at exit. The C++ at -O1 (sim.fast.MAKE_FLAGS).
FLAGS = tuple(f for f in fast.VERILATOR_FLAGS if f != "-DSQZ_FIFO_STATS")
CHUNK = 256                  # cycles run before each ``idle`` poll answers
WAIT_CYCLES = 100_000_000    # a channel's wait() gives up after this many (PYNQ's spins forever)


def board_dir(name: str) -> Path:
    return paths.build_path("sim", "board", name)


def build(axi, name: str) -> tuple[Path, float]:
    """Verilate the wrapped top ``axi`` (``hls.rtl.axi.AxiTop``) with the harness in
    ``build/sim/board/<name>/`` (held for this process, rebuilt only when a source, the
    harness or a flag changed). Returns (binary, seconds spent building; 0 if reused)."""
    return fast.build(axi.module, [Path(s) for s in axi.sources], name, driver=DRIVER,
                      binary_name=BINARY, out=board_dir(name), flags=FLAGS)


class _Harness:
    """The harness process and its line protocol."""

    def __init__(self, cmd: list[str]) -> None:
        self._err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, bufsize=1)
        self.chatter: list[str] = []   # lines the design printed

    def ask(self, line: str) -> list[str]:
        """Send one command; the fields of its ``@@ OK`` reply. ``SimError`` on ``@@ ERR``
        or when the harness has died."""
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise SimError(f"the board harness has exited: {self._stderr()}") from None
        while True:
            reply = self.proc.stdout.readline()
            if not reply:
                raise SimError(f"the board harness has exited (command {line[:40]!r}): "
                               f"{self._stderr()}")
            if reply.startswith("@@ "):
                break
            self.chatter.append(reply.rstrip("\n"))
        fields = reply[3:].split()
        if not fields or fields[0] != "OK":
            raise SimError(f"board harness: {line[:40]!r}: {reply[3:].strip()}")
        return fields[1:]

    def _stderr(self) -> str:
        code = self.proc.poll()
        self._err.seek(0)
        text = self._err.read().strip()
        return (text or "no message") + (f" (exit {code})" if code is not None else "")

    def close(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("Q\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=timeout)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self._err):
            f.close()


class SimBuffer(np.ndarray):
    """What ``pynq.allocate`` returns, in host memory: the cache calls do nothing."""

    physical_address = 0

    def flush(self) -> None:
        pass

    def invalidate(self) -> None:
        pass

    def freebuffer(self) -> None:
        pass

    def close(self) -> None:
        pass


class SimChannel:
    """One DMA channel (``sendchannel``: MM2S, ``recvchannel``: S2MM), PYNQ-shaped."""

    running = True
    error = False

    def __init__(self, sim: SimOverlay, send: bool) -> None:
        self._sim, self._send = sim, send
        self._first_transfer = True
        self._buffer: tuple[np.ndarray, int] | None = None   # the armed S2MM buffer, start
        self.transferred = 0

    def _hw_idle(self) -> bool:
        """The DMA's Idle status bit: 0 until the first transfer completes."""
        busy = self._sim.send_busy if self._send else self._sim.recv_busy
        return not self._first_transfer and not busy

    @property
    def idle(self) -> bool:
        """Run ``chunk`` cycles, then whether the channel's transfer is done."""
        self._sim.step(self._sim.chunk)
        return self._hw_idle()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def transfer(self, array: np.ndarray, start: int = 0, nbytes: int = 0) -> None:
        self._sim.step(0)
        if not self._hw_idle() and not self._first_transfer:
            raise RuntimeError("DMA channel not idle")
        flat = np.asarray(array).reshape(-1).view(np.uint8)
        n = nbytes or flat.size - start
        if n <= 0 or start + n > flat.size:
            raise ValueError(f"transfer of {n} bytes from {start} exceeds the buffer of "
                             f"{flat.size} bytes")
        if self._send:
            self._sim.harness.ask("S " + flat[start:start + n].tobytes().hex())
            self.transferred = n
        else:
            self._sim.harness.ask(f"A {n}")
            self._buffer = (array, start)
            self.transferred = 0
        self._first_transfer = False
        self._sim.step(0)

    def _complete(self, data: bytes) -> None:
        """The S2MM transfer ended: its bytes land in the armed buffer."""
        if self._buffer is not None:
            array, start = self._buffer
            np.asarray(array).reshape(-1).view(np.uint8)[start:start + len(data)] = \
                np.frombuffer(data, np.uint8)
            self._buffer = None
        self.transferred = len(data)

    def wait(self) -> None:
        """Until the transfer is done; a RuntimeError after ``WAIT_CYCLES`` (on a board
        PYNQ's wait() would spin forever)."""
        if self._first_transfer:
            raise RuntimeError("DMA channel not started: no transfer to wait for")
        start = self._sim.cycles
        while not self.idle:
            if self._sim.cycles - start > self._sim.wait_cycles:
                raise RuntimeError(f"DMA {'send' if self._send else 'receive'} channel not "
                                   f"idle after {self._sim.wait_cycles:,d} cycles")


class SimDma:
    def __init__(self, sim: SimOverlay) -> None:
        self.sendchannel = SimChannel(sim, send=True)
        self.recvchannel = SimChannel(sim, send=False)


class SimIP:
    """The wrapper's AXI-Lite register file (PYNQ's ``DefaultIP`` ``read`` / ``write``)."""

    def __init__(self, sim: SimOverlay) -> None:
        self._sim = sim

    def read(self, offset: int) -> int:
        value, resp, _cycle = self._sim.harness.ask(f"R {int(offset)}")
        if int(resp) != 0:
            raise SimError(f"AXI-Lite read of 0x{offset:02X}: RRESP {resp}")
        return int(value)

    def write(self, offset: int, value: int) -> None:
        resp, _cycle = self._sim.harness.ask(f"W {int(offset)} {int(value) & 0xFFFFFFFF}")
        if int(resp) != 0:
            raise SimError(f"AXI-Lite write of 0x{offset:02X}: BRESP {resp}")


class SimOverlay:
    """The Verilated wrapped top as a PYNQ overlay (``dma``, ``sqz``, ``allocate``)."""

    def __init__(self, binary: str | Path, *, clock_mhz: float = 100.0, chunk: int = CHUNK,
                 idle: float = 0.0, backpressure: float = 0.0, seed: int = 21,
                 wait_cycles: int = WAIT_CYCLES) -> None:
        cmd = [str(binary), "--seed", str(seed)]
        if idle:
            cmd += ["--idle", str(idle)]
        if backpressure:
            cmd += ["--backpressure", str(backpressure)]
        self.harness = _Harness(cmd)
        self.clock_mhz, self.chunk, self.wait_cycles = clock_mhz, chunk, wait_cycles
        self.cycles = 0
        self.send_busy = self.recv_busy = False
        self._received = 0
        self.dma = SimDma(self)
        self.sqz = SimIP(self)
        self.ip_dict = {"dma": {}, "sqz": {}}
        try:
            self.step(0)
        except BaseException:
            self.close()
            raise

    def step(self, cycles: int) -> None:
        """Run ``cycles`` clock cycles and take the channels' state."""
        cycle, send_idle, recv_idle, _sent, received = self.harness.ask(f"C {int(cycles)}")
        self.cycles = int(cycle)
        self.send_busy, self.recv_busy = send_idle == "0", recv_idle == "0"
        if int(received) != self._received:
            self._received = int(received)
            n, _tlast, *data = self.harness.ask("G")
            self.dma.recvchannel._complete(bytes.fromhex(data[0]) if int(n) else b"")

    def seconds(self) -> float:
        """Simulated time: cycles run so far at ``clock_mhz``."""
        return self.cycles / (self.clock_mhz * 1e6)

    @staticmethod
    def allocate(shape, dtype=np.uint32, **_kw) -> SimBuffer:
        return np.zeros(shape, dtype).view(SimBuffer)

    def close(self) -> None:
        self.harness.close()

    def __enter__(self) -> SimOverlay:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_sim(axi, name: str, **kw) -> SimOverlay:
    """Build (when needed) the harness of the wrapped top ``axi`` and start it."""
    binary, _ = build(axi, name)
    return SimOverlay(binary, **kw)

