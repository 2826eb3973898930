"""The accelerator on a board: a PYNQ driver for the AXI-wrapped network top, behind the
classify API as ``--backend board``.

    drv = BoardDriver.open("build/board/zcu104/zcu104.bit", prep)
    scores = drv.classify(frames)          # int64 (frames, classes), the golden model's codes
    clf = Classifier(prep, BoardBackend(prep, drv))

The bitstream holds the wrapper ``<core top>_axi`` (``hls.rtl.axi``, cell ``sqz``) fed and
drained by an AXI DMA in simple mode (cell ``dma``). Per frame the driver clears the sticky
error flags, arms the receive channel for OUT_BYTES, sends the frame's FRAME_BYTES
(``Frame.pixels.tobytes()``: row-major, C bytes a pixel) and polls both channels' ``idle``
until the scores are in, at most ``timeout_s``: PYNQ's own ``wait()`` spins forever on a
stuck DMA, so it is called only once a channel reads idle. A timeout raises
:class:`BoardHang` with every register decoded and the likely cause (a short or long
frame, frames stuck in the core, the output not taken, the clock stopped).

What the driver needs of PYNQ is small: ``dma.sendchannel`` / ``dma.recvchannel`` with
``transfer(buffer)``, ``idle`` and ``wait()``; the IP's ``read(offset)`` / ``write(offset,
value)``; and ``allocate(shape, dtype)`` for DMA buffers. :class:`BoardDriver` takes those
three objects, so the same protocol code runs against the Verilated RTL through
``sim.board_sim.SimOverlay`` (``tests/test_board_driver.py``). PYNQ itself is imported only
by :meth:`BoardDriver.open`: the package installs and tests without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hls.plan.prepare import Frame, Prepared
from hls.rtl.axi import (
    CONTROL_SOFT_RESET,
    ID_VALUE,
    REGISTERS,
    STATUS_BITS,
    VERSION_VALUE,
    field_bits,
    out_format_word,
)
from model.errors import CheckFailed, InputError, InputNotFound, ToolNotFound

__all__ = ["BoardBackend", "BoardDriver", "BoardError", "BoardFormat", "BoardHang",
           "decode_status", "format_dump"]

# The register map is hls.rtl.axi's (the Verilog gets the same offsets as parameters).
WRITE_ONLY = ("CONTROL",)   # reads 0: left out of the dump
ERR_SHORT, ERR_LONG, IN_FRAME, PADDING, OUT_FRAME, RESETTING = (
    1 << STATUS_BITS[n] for n in ("ERR_SHORT", "ERR_LONG", "IN_FRAME", "PADDING", "OUT_FRAME",
                                  "RESETTING"))


class BoardError(CheckFailed):
    """The board (or its stand-in) does not hold the expected design, or did not answer."""


class BoardHang(BoardError):
    """A frame's scores did not arrive within the timeout; the message holds the register
    dump and the likely cause."""


@dataclass(frozen=True)
class BoardFormat:
    """What a frame looks like on the wire: input bytes, and the scores' layout."""

    frame_bytes: int
    out_bytes: int
    classes: int
    field_bits: int
    score_bits: int
    signed: bool

    @classmethod
    def of(cls, prep: Prepared) -> BoardFormat:
        """The format the design of ``prep`` has: a frame of H*W*C bytes, the plan's logit
        format in FIELD-bit fields."""
        spec = prep.spec
        fmt = prep.plan.layers[prep.nodes[-1].name].out_fmt
        field = field_bits(fmt.width)
        return cls(spec.height * spec.width * spec.channels, spec.classes * field // 8,
                   spec.classes, field, fmt.width, fmt.signed)

    @classmethod
    def from_registers(cls, frame_bytes: int, out_bytes: int, out_format: int) -> BoardFormat:
        return cls(frame_bytes, out_bytes, out_format & 0xFFFF, (out_format >> 16) & 0xFF,
                   (out_format >> 24) & 0x7F, bool(out_format >> 31 & 1))

    @property
    def out_format(self) -> int:
        """The OUT_FORMAT register word."""
        return out_format_word(self.classes, self.field_bits, self.score_bits, self.signed)

    def describe(self) -> str:
        return (f"FRAME_BYTES {self.frame_bytes:,d}, OUT_BYTES {self.out_bytes:,d}, "
                f"{self.classes} classes in {self.field_bits}-bit fields "
                f"({self.score_bits}-bit {'signed' if self.signed else 'unsigned'} scores)")

    def decode(self, raw: np.ndarray | bytes) -> np.ndarray:
        """int64 (classes,): the little-endian fields of one frame's output bytes."""
        data = np.frombuffer(bytes(memoryview(raw).cast("B")), np.uint8)
        if data.size != self.out_bytes:
            raise BoardError(f"{data.size} output bytes for a frame, expected OUT_BYTES "
                             f"{self.out_bytes}")
        kind = "i" if self.signed else "u"
        return data.view(f"<{kind}{self.field_bits // 8}")[:self.classes].astype(np.int64)


def decode_status(value: int) -> str:
    """The STATUS word's set flags by name, e.g. ``ERR_SHORT|IN_FRAME`` (``-`` for none)."""
    names = [n for n, bit in sorted(STATUS_BITS.items(), key=lambda nb: nb[1])
             if value >> bit & 1]
    return "|".join(names) or "-"


def require_pynq(bitfile: str | Path):
    """The ``pynq`` module, and ``bitfile`` present: checked before any other work (the
    CLI calls this before it prepares the network)."""
    try:
        import pynq
    except ImportError as exc:
        raise ToolNotFound("--backend board needs PYNQ (the pynq package, on the "
                           f"board's Linux image) and it cannot be imported here: "
                           f"{exc}") from None
    if not Path(bitfile).is_file():
        raise InputNotFound(f"bitstream not found: {bitfile}")
    return pynq


class BoardDriver:
    """The wrapped network through a DMA and an AXI-Lite register file (PYNQ-shaped)."""

    def __init__(self, dma, ip, allocate: Callable, expect: BoardFormat | None = None, *,
                 timeout_s: float = 5.0, reset: bool = False,
                 clock: Callable[[], float] = time.monotonic, poll_s: float = 0.0,
                 log: Callable[..., None] | None = None) -> None:
        """``dma`` has ``sendchannel`` and ``recvchannel``, ``ip`` has ``read`` and
        ``write``, ``allocate(shape, dtype)`` returns DMA buffers. Checks ID and VERSION
        (:class:`BoardError` if wrong: not this design's bitstream), soft-resets the
        wrapper when ``reset``, reads the frame format and, with ``expect``, checks it.
        ``timeout_s`` bounds every wait, measured with ``clock``."""
        self.dma, self.ip, self.allocate = dma, ip, allocate
        self.send, self.recv = dma.sendchannel, dma.recvchannel
        self.timeout_s, self.clock, self.poll_s = timeout_s, clock, poll_s
        self.log = log or (lambda *a: None)
        self._recv_pending = False   # an S2MM transfer armed and not yet seen complete
        self._send_pending = False
        ident, version = self.read("ID"), self.read("VERSION")
        if ident != ID_VALUE:
            raise BoardError(f"the sqz IP reads ID 0x{ident:08X}, expected 0x{ID_VALUE:08X} "
                             "(\"SQZN\"): the loaded bitstream does not hold the sqz AXI "
                             "wrapper at this address (a different design, or the wrong "
                             "register block)")
        if version >> 16 != VERSION_VALUE >> 16:
            raise BoardError(f"the sqz IP reads VERSION 0x{version:08X} (major "
                             f"{version >> 16}), this driver speaks major "
                             f"{VERSION_VALUE >> 16} (0x{VERSION_VALUE:08X}): rebuild the "
                             "bitstream with this version of the flow")
        if reset:
            self.soft_reset()
        self.format = BoardFormat.from_registers(self.read("FRAME_BYTES"),
                                                 self.read("OUT_BYTES"),
                                                 self.read("OUT_FORMAT"))
        if expect is not None and expect != self.format:
            raise BoardError(f"the bitstream's frame format differs from the prepared "
                             f"network's: board {self.format.describe()}; network "
                             f"{expect.describe()} (a bitstream of another network or "
                             "another plan)")
        self._in_buf = self._alloc(self.format.frame_bytes)
        self._out_buf = self._alloc(self.format.out_bytes)

    @classmethod
    def open(cls, bitfile: str | Path, prep: Prepared | None = None, *, reset: bool = True,
             timeout_s: float = 5.0, log: Callable[..., None] | None = None) -> BoardDriver:
        """Load ``bitfile`` with PYNQ (``pynq.Overlay``; the ``.hwh`` beside it names the
        cells ``dma`` and ``sqz``) and connect, checking the format against ``prep``."""
        pynq = require_pynq(bitfile)
        path = Path(bitfile)
        overlay = pynq.Overlay(str(path))
        missing = [name for name in ("dma", "sqz") if not hasattr(overlay, name)]
        if missing:
            cells = ", ".join(sorted(getattr(overlay, "ip_dict", {}))) or "none"
            raise BoardError(f"{path}: the overlay has no cell {' or '.join(missing)} "
                             f"(its IP: {cells}); the block design must name the AXI "
                             "wrapper sqz and the AXI DMA dma")
        return cls(overlay.dma, overlay.sqz, pynq.allocate,
                   BoardFormat.of(prep) if prep is not None else None,
                   timeout_s=timeout_s, reset=reset, log=log)

    # ---------------------------------------------------------------- registers

    def read(self, name: str) -> int:
        return int(self.ip.read(REGISTERS[name])) & 0xFFFFFFFF

    def write(self, name: str, value: int) -> None:
        self.ip.write(REGISTERS[name], int(value) & 0xFFFFFFFF)

    def registers(self) -> dict[str, int]:
        """Every readable register by name (one read each, in address order)."""
        return {name: self.read(name) for name, _ in sorted(REGISTERS.items(),
                                                             key=lambda no: no[1])
                if name not in WRITE_ONLY}

    def dump(self) -> str:
        """Every register by name, STATUS and OUT_FORMAT decoded, CYCLES read twice."""
        regs = self.registers()
        return format_dump(regs, self.read("CYCLES"))

    def soft_reset(self) -> None:
        """CONTROL.SOFT_RESET: the core and the shell's frame state, counters and flags
        cleared (16 cycles; waits until STATUS.RESETTING reads 0)."""
        self.write("CONTROL", CONTROL_SOFT_RESET)
        deadline = self.clock() + self.timeout_s
        while self.read("STATUS") & RESETTING:
            if self.clock() > deadline:
                raise BoardHang(f"soft reset did not finish in {self.timeout_s} s; "
                                f"registers: {self.dump()}")

    # ------------------------------------------------------------------- frames

    def _alloc(self, nbytes: int):
        return self.allocate(shape=(nbytes,), dtype=np.uint8)

    def classify(self, frames: Sequence[Frame]) -> np.ndarray:
        """int64 (len(frames), classes): each frame's class scores from the board. The
        frames are streamed: the next one is sent as soon as the send channel is free, so
        the core holds several at once and runs at its frame interval, not its latency."""
        size = self.format.frame_bytes
        for fr in frames:
            px = np.asarray(fr.pixels)
            if px.dtype != np.uint8 or px.size != size:
                raise InputError(f"{fr.name}: a frame of {px.dtype} {px.shape} "
                                 f"({px.nbytes:,d} bytes); the bitstream takes uint8 frames "
                                 f"of FRAME_BYTES {size:,d}")
        return self._stream([np.ascontiguousarray(fr.pixels).reshape(-1) for fr in frames],
                            [fr.name for fr in frames])

    def run_bytes(self, data: bytes, name: str = "frame") -> np.ndarray:
        """Send ``data`` as one DMA transfer (any length: a wrong one shows how the wrapper
        drops it) and return the next frame's scores, int64 (classes,). Raises
        :class:`BoardHang` when they do not come within ``timeout_s``."""
        if not data:
            raise InputError(f"{name}: an empty frame cannot be sent")
        return self._stream([np.frombuffer(data, np.uint8)], [name])[0]

    def _stream(self, payloads: list[np.ndarray], names: list[str]) -> np.ndarray:
        """Send every payload, one DMA transfer each, and collect one frame of scores per
        payload: the receive channel armed for OUT_BYTES at a time, re-armed as each frame's
        scores arrive; ``timeout_s`` without progress raises :class:`BoardHang`."""
        out = np.zeros((len(payloads), self.format.classes), np.int64)
        if not payloads:
            return out
        self.write("STATUS", ERR_SHORT | ERR_LONG)   # W1C: flags from now on are this call's
        dropped = self.read("FRAMES_DROPPED")
        if self._send_pending:   # a transfer of an earlier call that timed out: let it end
            self._poll(lambda: not self._send_pending, names[0], None)
        # A frame that timed out leaves its receive transfer armed: the next frame's scores
        # land in the same buffer, so it is kept, not armed twice (the DMA would refuse).
        if self._recv_pending:
            self.log("board: the receive transfer armed for a frame that timed out is still "
                     f"waiting; it takes the scores of {names[0]}")
        else:
            self._dma(self.recv.transfer, self._out_buf, what="receive", name=names[0])
            self._recv_pending = True
        sent = done = 0
        own = None   # a buffer of a payload that is not FRAME_BYTES long
        try:
            while done < len(payloads):
                if sent < len(payloads) and not self._send_pending:
                    data = payloads[sent]
                    if data.size == self.format.frame_bytes:
                        buf = self._in_buf
                    else:
                        if own is not None:
                            _free(own)
                        buf = own = self._alloc(data.size)
                    buf[:] = data
                    self._dma(self.send.transfer, buf, what="send", name=names[sent])
                    self._send_pending = True
                    sent += 1
                more = sent < len(payloads)
                self._poll(lambda more=more: (more and not self._send_pending)
                           or not self._recv_pending, names[done], payloads[done].size)
                if self._recv_pending:
                    continue
                got = getattr(self.recv, "transferred", None)
                if got is not None and int(got) != self.format.out_bytes:
                    raise BoardError(f"{names[done]}: the receive channel took {int(got):,d} "
                                     f"bytes, OUT_BYTES is {self.format.out_bytes:,d}; "
                                     f"registers: {self.dump()}")
                now = self.read("FRAMES_DROPPED")
                if now != dropped:
                    raise BoardError(f"the wrapper dropped {now - dropped} frame(s) while "
                                     f"{names[done]} was in flight, so the scores that came "
                                     f"cannot be matched to the frames; registers: "
                                     f"{self.dump()}")
                out[done] = self.format.decode(self._out_buf)
                done += 1
                if done < len(payloads):
                    self._dma(self.recv.transfer, self._out_buf, what="receive",
                              name=names[done])
                    self._recv_pending = True
        finally:
            if own is not None and not self._send_pending:
                _free(own)
        return out

    def _poll(self, ready: Callable[[], bool], name: str, size: int | None) -> None:
        """Poll the channels' ``idle`` until ``ready()``; a channel seen idle is then
        ``wait()``-ed (which returns at once, and invalidates the receive buffer's cache
        lines). :class:`BoardHang` after ``timeout_s`` without ``ready()``."""
        deadline = self.clock() + self.timeout_s
        while True:
            for ch, label in ((self.send, "send"), (self.recv, "receive")):
                if getattr(ch, "error", False):
                    raise BoardError(f"{name}: the DMA {label} channel reports an error; "
                                     f"registers: {self.dump()}")
            if self._send_pending and self.send.idle:
                self._dma(self.send.wait, what="send", name=name)
                self._send_pending = False
            if self._recv_pending and self.recv.idle:
                self._dma(self.recv.wait, what="receive", name=name)
                self._recv_pending = False
            if ready():
                return
            if self.clock() > deadline:
                raise BoardHang(self._hang_message(name, size))
            if self.poll_s:
                time.sleep(self.poll_s)

    def _dma(self, call: Callable, *args, what: str, name: str) -> None:
        """A DMA channel call; PYNQ's RuntimeError (channel not idle or not started, a
        DMA internal, slave or decode error) becomes a :class:`BoardError` with the
        register dump."""
        try:
            call(*args)
        except RuntimeError as exc:
            raise BoardError(f"{name}: the DMA {what} channel: {exc}; registers: "
                             f"{self.dump()}") from exc

    def _hang_message(self, name: str, sent: int | None) -> str:
        regs = self.registers()
        again = self.read("CYCLES")
        fmt = self.format
        status = regs["STATUS"]
        send = "busy" if self._send_pending else "idle"
        recv = "waiting for OUT_BYTES" if self._recv_pending else "idle"
        causes = []
        if again == regs["CYCLES"]:
            causes.append("CYCLES did not advance between two reads: the wrapper's clock "
                          "is not running (pl_clk0 stopped, or the PL lost its bitstream)")
        if regs["ID"] != ID_VALUE:
            causes.append(f"ID now reads 0x{regs['ID']:08X}: the register block no longer "
                          "answers as the sqz wrapper")
        if status & RESETTING:
            causes.append("RESETTING is stuck: the soft reset does not end")
        if status & ERR_SHORT:
            causes.append(f"ERR_SHORT: the frame ended (TLAST) before FRAME_BYTES "
                          f"{fmt.frame_bytes:,d}" + (f" (sent {sent:,d})" if sent else "")
                          + ": the wrapper zero-filled and dropped it, so no scores come")
        if status & ERR_LONG:
            causes.append(f"ERR_LONG: the frame ran past FRAME_BYTES {fmt.frame_bytes:,d}"
                          + (f" (sent {sent:,d})" if sent else "")
                          + ": the wrapper dropped it, so no scores come")
        if self._send_pending:
            causes.append("the send channel never finished: the wrapper stopped taking "
                          "input (s_axis_tready low)" + (
                              "; IN_FRAME: a frame is partly received" if status & IN_FRAME
                              else ""))
        in_flight = regs["FRAMES_IN"] - regs["FRAMES_OUT"]
        if in_flight > 0:
            causes.append(f"{in_flight} frame(s) stuck in flight: FRAMES_IN "
                          f"{regs['FRAMES_IN']:,d} but FRAMES_OUT {regs['FRAMES_OUT']:,d} "
                          "(the core has not produced their scores"
                          + ("; OUT_FRAME: an output frame is partly sent and the receive "
                             "channel stopped taking it" if status & OUT_FRAME else "")
                          + ")")
        if not causes:
            causes.append("no register explains it: the frame may still be computing "
                          "(raise the timeout) or the DMA is not connected to the wrapper")
        return (f"board: no scores for {name} within {self.timeout_s:g} s (DMA send channel "
                f"{send}, receive channel {recv}); registers: {format_dump(regs, again)}; "
                f"likely cause: " + "; ".join(causes))

    def close(self) -> None:
        """Free the DMA buffers."""
        for buf in (self._in_buf, self._out_buf):
            _free(buf)

    def __enter__(self) -> BoardDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def format_dump(regs: dict[str, int], cycles_again: int) -> str:
    """``NAME=value`` for every register read (``regs``), STATUS and OUT_FORMAT decoded,
    CYCLES with its second read ``cycles_again``."""
    parts = []
    for name, value in regs.items():
        if name == "STATUS":
            parts.append(f"STATUS=0x{value:08X} ({decode_status(value)})")
        elif name == "OUT_FORMAT":
            f = BoardFormat.from_registers(0, 0, value)
            parts.append(f"OUT_FORMAT=0x{value:08X} ({f.classes} classes, {f.field_bits}-bit "
                         f"fields, {f.score_bits}-bit {'signed' if f.signed else 'unsigned'})")
        elif name in ("ID", "VERSION"):
            parts.append(f"{name}=0x{value:08X}")
        elif name == "CYCLES":
            parts.append(f"CYCLES={value:,d} then {cycles_again:,d}")
        else:
            parts.append(f"{name}={value:,d}")
    return " ".join(parts)


def _free(buf) -> None:
    for method in ("freebuffer", "close"):   # pynq.allocate buffers: one or the other
        fn = getattr(buf, method, None)
        if callable(fn):
            fn()
            return


class BoardBackend:
    """The board as a classify backend: ``run(frames)`` -> the driver's scores."""

    name = "board"

    def __init__(self, prep: Prepared, driver: BoardDriver) -> None:
        self.prep, self.driver = prep, driver
        want = BoardFormat.of(prep)
        if driver.format != want:
            raise BoardError(f"the board's frame format differs from the prepared network's: "
                             f"board {driver.format.describe()}; network {want.describe()}")

    @classmethod
    def open(cls, prep: Prepared, bitfile: str | Path, log=print, **kw) -> BoardBackend:
        """Load ``bitfile`` (:meth:`BoardDriver.open`) for ``prep``."""
        driver = BoardDriver.open(bitfile, prep, log=log, **kw)
        log(f"board: {bitfile} loaded, {driver.format.describe()}")
        return cls(prep, driver)

    def run(self, frames: Sequence[Frame]) -> np.ndarray:
        spec = self.prep.spec
        shape = (spec.height, spec.width, spec.channels)
        for fr in frames:
            if np.shape(fr.pixels) != shape:
                raise InputError(f"{fr.name}: a frame of shape {np.shape(fr.pixels)}, "
                                 f"{spec.name} takes {shape}")
        return self.driver.classify(frames)
