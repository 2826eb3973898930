"""The cocotb bench of the AXI top (``<core top>_axi``, ``hls.rtl.axi``): real photos in as
64-bit AXI4-Stream bytes (cocotbext-axi source, random pauses, null bytes in TKEEP),
class scores out (cocotbext-axi sink, random backpressure), registers over AXI4-Lite
(cocotbext-axi master, and a raw writer that sends W before AW and AW before W).

Run by ``sim/test_sqz_axi.py``: the four network tests in one build and one simulator run
on the tiny network's AXI top; ``test_stand_in_core`` on ``sqz_axi_test_top``
(``sim/templates/sqz_axi_test_top.v``: the shell around a stand-in core that takes a pixel
every cycle, random frames). Inputs through the environment: ``SQZ_VECTORS`` (the .npz of
``sim.network.prepare_network``; absent for the stand-in), ``SQZ_RESULT`` (a JSON file each
test adds its figures to) and the bench data of ``sim.runner.run_cocotb`` (the stream
formats of ``hls.rtl.axi.AxiTop``).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import warnings
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)

from hls.rtl.axi import (
    CONTROL_SOFT_RESET,
    ID_VALUE,
    REGISTERS,
    SOFT_RESET_CYCLES,
    STATUS_BITS,
    VERSION_VALUE,
)
from sim.bench import bench_data

# cocotbext-axi 0.1.28 passes AXI-Lite responses in Event.data, which cocotb 2 deprecates
warnings.filterwarnings("ignore", "The data field will be removed", DeprecationWarning)

PERIOD_NS = 10
LOG = logging.getLogger("cocotb.axi_bench")
NULL = 0xA5          # the data of a byte with TKEEP low: must never reach the core
ERR_SHORT = 1 << STATUS_BITS["ERR_SHORT"]
ERR_LONG = 1 << STATUS_BITS["ERR_LONG"]
RESETTING = 1 << STATUS_BITS["RESETTING"]
PADDING = 1 << STATUS_BITS["PADDING"]
IN_FRAME = 1 << STATUS_BITS["IN_FRAME"]


def stand_in_scores(frame: np.ndarray, fmt: dict) -> np.ndarray:
    """The scores of the stand-in core: class c sums the bytes of pixels p % classes == c,
    modulo 2**score_bits, read signed when the format is."""
    pix = frame.reshape(-1, fmt["pix_bytes"]).astype(np.int64).sum(axis=1)
    bits, classes = fmt["score_bits"], fmt["classes"]
    out = np.array([pix[c::classes].sum() for c in range(classes)]) % (1 << bits)
    if fmt["score_signed"]:
        out = np.where(out >> (bits - 1), out - (1 << bits), out)
    return out


def _pauses(rng: random.Random, prob: float):
    while True:
        yield rng.random() < prob


class AxiTB:
    """Clock, reset, the three AXI agents, the frames and their expected scores (the golden
    vectors, or the stand-in's on random frames), and a monitor (from the first reset) that
    counts cycles, notes the cycle of every frame's first input beat and last output beat,
    and while ``watch_core`` watches the core's input."""

    def __init__(self, dut, idle: float = 0.0, backpressure: float = 0.0, seed: int = 1):
        self.dut = dut
        # cocotbext-axi logs every frame (all its bytes) and register access at INFO
        logging.getLogger(f"cocotb.{dut._name}").setLevel(logging.WARNING)
        self.fmt = bench_data()
        self.rng = random.Random(seed)
        if "SQZ_VECTORS" in os.environ:
            v = np.load(os.environ["SQZ_VECTORS"])
            self.pixels, self.expected = v["pixels"], v["expected"]
        else:   # the stand-in core of sim/templates/sqz_axi_test_top.v: random frames
            n, f = 6, self.fmt
            self.pixels = np.array([[self.rng.randrange(256) for _ in range(f["frame_bytes"])]
                                    for _ in range(n)], np.uint8)
            self.expected = np.stack([stand_in_scores(p, f) for p in self.pixels])
        cocotb.start_soon(Clock(dut.aclk, PERIOD_NS, unit="ns").start())
        dut.aresetn.value = 0
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk,
                                      dut.aresetn, reset_active_level=False)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk,
                                  dut.aresetn, reset_active_level=False)
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_ctrl"), dut.aclk,
                                  dut.aresetn, reset_active_level=False)
        self.stalls(idle, backpressure)
        self.cycle = 0
        self.in_starts: list[int] = []
        self.out_ends: list[int] = []
        # the core's input while ``watch_core``: cycles it was ready and got no pixel
        # although the source still had bytes to send (after the first pixel), and the
        # longest run of pixels it took on consecutive cycles
        self.watch_core = False
        self.starved = 0
        self.longest_run = 0
        self._monitoring = False

    def stalls(self, idle: float, backpressure: float) -> None:
        """Random source pauses and sink backpressure (0: none)."""
        for agent, prob in ((self.source, idle), (self.sink, backpressure)):
            agent.set_pause_generator(_pauses(self.rng, prob) if prob else None)
            if not prob:
                agent.pause = False   # a removed generator leaves its last value

    async def _monitor(self):
        d = self.dut
        in_frame = False
        fed = False
        run = 0
        while True:
            await RisingEdge(d.aclk)
            self.cycle += 1
            if d.s_axis_tvalid.value and d.s_axis_tready.value:
                if not in_frame:
                    self.in_starts.append(self.cycle)
                in_frame = not d.s_axis_tlast.value
            if d.m_axis_tvalid.value and d.m_axis_tready.value and d.m_axis_tlast.value:
                self.out_ends.append(self.cycle)
            if self.watch_core:
                ready, valid = d.core_s_tready.value, d.core_s_tvalid.value
                run = run + 1 if ready and valid else 0
                self.longest_run = max(self.longest_run, run)
                fed = fed or bool(run)
                if fed and ready and not valid and not self.source.idle():
                    self.starved += 1

    async def reset(self) -> None:
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, 4)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)
        if not self._monitoring:   # after reset: no X left on what it reads (Icarus)
            self._monitoring = True
            cocotb.start_soon(self._monitor())

    # ---- registers
    async def read(self, name: str) -> int:
        return await self.lite.read_dword(REGISTERS[name])

    async def write(self, name: str, value: int) -> None:
        await self.lite.write_dword(REGISTERS[name], value)

    async def raw_write(self, name: str, value: int, order: str) -> None:
        """One AXI4-Lite write driven by hand: ``order`` "w_first" (W valid a few cycles
        before AW) or "aw_first"; waits for the response."""
        d, clk = self.dut, self.dut.aclk
        pending = {"aw", "w"}

        def offer(ch: str) -> None:
            if ch == "aw":
                d.s_axi_ctrl_awaddr.value = REGISTERS[name]
                d.s_axi_ctrl_awprot.value = 0
                d.s_axi_ctrl_awvalid.value = 1
            else:
                d.s_axi_ctrl_wdata.value = value
                d.s_axi_ctrl_wstrb.value = 0xF
                d.s_axi_ctrl_wvalid.value = 1

        first, second = ("w", "aw") if order == "w_first" else ("aw", "w")
        offer(first)
        for k in itertools.count():
            if k == 3:
                offer(second)
            await RisingEdge(clk)
            for ch in list(pending):
                if getattr(d, f"s_axi_ctrl_{ch}valid").value and \
                        getattr(d, f"s_axi_ctrl_{ch}ready").value:
                    getattr(d, f"s_axi_ctrl_{ch}valid").value = 0
                    pending.discard(ch)
            if not pending or k > 100:
                break
        assert not pending, f"raw write {order}: {pending} never accepted"
        # BREADY is the master's B channel sink's (high when idle): the response lands in
        # its queue, which is then emptied so that the master's next write waits for its own
        for _ in range(100):
            await RisingEdge(clk)
            if d.s_axi_ctrl_bvalid.value and d.s_axi_ctrl_bready.value:
                assert int(d.s_axi_ctrl_bresp.value) == 0
                break
        else:
            raise AssertionError(f"raw write {order}: no write response")
        await RisingEdge(clk)
        self.lite.write_if.b_channel.clear()

    # ---- streams
    def frame(self, i: int, nulls: float = 0.0, null_beat: bool = False, cut: int | None = None,
              extra: int = 0, lead_nulls: int = 0, tail: list[int] | None = None
              ) -> AxiStreamFrame:
        """Photo i as one transfer: its bytes (the first ``cut`` only) with, before each,
        a null byte (TKEEP low) with probability ``nulls``, ``lead_nulls`` null bytes
        first, one whole null beat in the middle (``null_beat``), ``extra`` bytes past the
        frame, and ``tail`` (TKEEP per byte) appended as is."""
        data = self.pixels[i].tobytes()[:cut]
        data += bytes(self.rng.randrange(256) for _ in range(extra))
        out, keep = [NULL] * lead_nulls, [0] * lead_nulls
        for b in data:
            while nulls and self.rng.random() < nulls:
                out.append(NULL)
                keep.append(0)
            out.append(b)
            keep.append(1)
        if null_beat:
            at = len(out) // 16 * 8
            out[at:at] = [NULL] * 8
            keep[at:at] = [0] * 8
        for k in tail or []:
            out.append(self.rng.randrange(256) if k else NULL)
            keep.append(k)
        return AxiStreamFrame(bytes(out), keep)

    def aligned(self, i: int, **kw) -> AxiStreamFrame:
        """Photo i with leading null bytes so that its last byte ends a beat."""
        lead = -self.fmt["frame_bytes"] % 8
        return self.frame(i, lead_nulls=lead, **kw)

    async def send(self, frames: list[AxiStreamFrame]) -> None:
        for f in frames:
            await self.source.send(f)

    def timeout_cycles(self, frames: int) -> int:
        return 40 * self.fmt["frame_bytes"] * (frames + 2)

    async def receive(self, order: list[int]) -> dict:
        """The next len(order) output frames against the golden scores of photos
        ``order``: (compared, mismatches); TLAST and TKEEP placement asserted."""
        f = self.fmt
        field, out_bytes = f["field_bits"] // 8, f["out_bytes"]
        beats = -(-out_bytes // 8)
        want_keep = [1] * out_bytes + [0] * (beats * 8 - out_bytes)
        compared = mismatches = 0
        for i in order:
            frame = await with_timeout(self.sink.recv(compact=False),
                                       self.timeout_cycles(1) * PERIOD_NS, "ns")
            assert len(frame.tdata) == beats * 8, \
                f"photo {i}: {len(frame.tdata) // 8} beats up to TLAST, expected {beats}"
            assert list(frame.tkeep) == want_keep, f"photo {i}: TKEEP {frame.tkeep}"
            raw = bytes(frame.tdata[:out_bytes])
            got = np.array([int.from_bytes(raw[k:k + field], "little",
                                           signed=bool(f["score_signed"]))
                            for k in range(0, out_bytes, field)])
            want = self.expected[i]
            bad = np.flatnonzero(got != want)
            compared += want.size
            mismatches += bad.size
            if bad.size:
                self.dut._log.error("photo %d: %d mismatches, first class %d: RTL %d golden %d",
                                    i, bad.size, bad[0], got[bad[0]], want[bad[0]])
        return {"compared": compared, "mismatches": mismatches}

    async def expect_registers(self, **want: int) -> None:
        for name, value in want.items():
            got = await self.read(name)
            assert got == value, f"{name} = {got:#x}, expected {value:#x}"


def _record(test: str, figures: dict) -> None:
    path = os.environ.get("SQZ_RESULT")
    if not path:
        return
    p = Path(path)
    data = json.loads(p.read_text()) if p.exists() else {}
    data[test] = figures
    p.write_text(json.dumps(data, indent=1))


@cocotb.test()
async def test_frames_and_registers(dut):
    """(a) photos under random pauses and backpressure with null bytes in TKEEP, then back
    to back without stalls (the cycles per frame); (b) every register."""
    tb = AxiTB(dut, idle=0.2, backpressure=0.3, seed=11)
    await tb.reset()
    f = tb.fmt
    await tb.expect_registers(ID=ID_VALUE, VERSION=VERSION_VALUE, FRAME_BYTES=f["frame_bytes"],
                              OUT_BYTES=f["out_bytes"], OUT_FORMAT=f["out_format"], STATUS=0,
                              CONTROL=0, FRAMES_IN=0, FRAMES_OUT=0, FRAMES_DROPPED=0,
                              LAST_LATENCY=0, LAST_INTERVAL=0)
    for addr in (0x34, 0x100, 0xFFC):
        assert await tb.lite.read_dword(addr) == 0, f"address {addr:#x} reads non-zero"
    c0 = await tb.read("CYCLES")
    c1 = await tb.read("CYCLES")
    assert c1 > c0 > 0

    stalled = [0, 1]
    cocotb.start_soon(tb.send([tb.frame(0, nulls=0.05), tb.frame(1, nulls=0.1, null_beat=True)]))
    fig = await tb.receive(stalled)
    await tb.expect_registers(FRAMES_IN=2, FRAMES_OUT=2, FRAMES_DROPPED=0, STATUS=0)
    latency, interval = await tb.read("LAST_LATENCY"), await tb.read("LAST_INTERVAL")
    assert latency == tb.out_ends[-1] - tb.in_starts[-1] > 0, (latency, tb.in_starts,
                                                               tb.out_ends)
    assert interval == tb.out_ends[-1] - tb.out_ends[-2], (interval, tb.out_ends)

    tb.stalls(0.0, 0.0)
    plain = [2, 3, 4]
    ends = len(tb.out_ends)
    tb.watch_core = True
    cocotb.start_soon(tb.send([tb.frame(i) for i in plain]))
    fig2 = await tb.receive(plain)
    tb.watch_core = False
    intervals = [b - a for a, b in itertools.pairwise(tb.out_ends[ends:])]
    n = len(stalled) + len(plain)
    await tb.expect_registers(FRAMES_IN=n, FRAMES_OUT=n, LAST_INTERVAL=intervals[-1])
    figures = {"frames": n,
               "compared": fig["compared"] + fig2["compared"],
               "mismatches": fig["mismatches"] + fig2["mismatches"],
               "last_latency": latency, "last_interval": interval,
               "intervals_plain": intervals, "cycles_per_frame": min(intervals),
               "first_latency_plain": tb.out_ends[ends] - tb.in_starts[len(stalled)],
               "core_starved_cycles": tb.starved, "core_longest_run": tb.longest_run}
    _record("frames", figures)
    LOG.info("axi: %s", figures)
    assert figures["mismatches"] == 0 and figures["compared"] > 0
    assert tb.starved == 0, f"the core was ready without a pixel for {tb.starved} cycles"


@cocotb.test()
async def test_short_frame(dut):
    """(c) a transfer cut short: ERR_SHORT, dropped, the core zero-filled; the next photo
    is classified; W1C (W before AW) clears the flag."""
    tb = AxiTB(dut, idle=0.1, backpressure=0.2, seed=12)
    await tb.reset()
    cocotb.start_soon(tb.send([tb.frame(0, cut=1001, nulls=0.02), tb.frame(1)]))
    for _ in range(tb.timeout_cycles(1) // 64):   # the core takes the cut frame first
        await ClockCycles(dut.aclk, 64)
        if await tb.read("STATUS") & PADDING:
            break
    else:
        raise AssertionError("STATUS.PADDING never seen while the short frame is filled")
    fig = await tb.receive([1])
    await tb.expect_registers(STATUS=ERR_SHORT, FRAMES_IN=1, FRAMES_OUT=1, FRAMES_DROPPED=1)
    assert tb.sink.empty()
    await tb.raw_write("STATUS", ERR_SHORT, "w_first")
    await tb.expect_registers(STATUS=0)
    _record("short", fig)
    assert fig["mismatches"] == 0 and fig["compared"] > 0


@cocotb.test()
async def test_long_frames(dut):
    """(d) bytes past the frame in its last beat, in extra beats, and on the beat after a
    frame that ends a beat without TLAST: ERR_LONG, dropped; a beat-aligned frame closed by
    a TKEEP = 0 beat with TLAST is good; the photos after are classified; W1C (AW before W)
    clears the flag."""
    tb = AxiTB(dut, idle=0.1, backpressure=0.2, seed=13)
    await tb.reset()
    frames = [tb.frame(0, extra=3),                  # dropped: extra bytes, same beat
              tb.frame(1, extra=20, nulls=0.02),     # dropped: extra beats
              tb.aligned(2, tail=[0] * 8),           # good: then TKEEP = 0 + TLAST
              tb.aligned(3, tail=[0, 1] + [0] * 6),  # dropped: the next beat has a byte
              tb.frame(4)]
    assert (f := tb.fmt["frame_bytes"]) % 8 + 3 <= 8, f
    cocotb.start_soon(tb.send(frames))
    fig = await tb.receive([2, 4])
    await tb.expect_registers(STATUS=ERR_LONG, FRAMES_IN=2, FRAMES_OUT=2, FRAMES_DROPPED=3)
    assert tb.sink.empty()
    await tb.raw_write("STATUS", ERR_LONG, "aw_first")
    await tb.expect_registers(STATUS=0)
    _record("long", fig)
    assert fig["mismatches"] == 0 and fig["compared"] > 0


@cocotb.test()
async def test_soft_reset_mid_frame(dut):
    """(e) CONTROL.SOFT_RESET while a photo is half in: RESETTING for 16 cycles, counters
    cleared; the rest of that transfer is a short frame (flagged, dropped); the next photo
    is classified."""
    tb = AxiTB(dut, seed=14)
    await tb.reset()
    cocotb.start_soon(tb.send([tb.frame(0), tb.frame(1)]))
    beats = tb.fmt["frame_bytes"] // 8
    while tb.in_starts == [] or tb.cycle - tb.in_starts[0] < beats // 2:
        await RisingEdge(dut.aclk)
    status = await tb.read("STATUS")
    assert status == IN_FRAME, f"STATUS {status:#x} with half a frame in"
    await tb.write("CONTROL", CONTROL_SOFT_RESET)
    status = await tb.read("STATUS")
    assert status & RESETTING, f"STATUS {status:#x} right after the soft reset"
    await ClockCycles(dut.aclk, SOFT_RESET_CYCLES)
    fig = await tb.receive([1])
    await tb.expect_registers(STATUS=ERR_SHORT, FRAMES_IN=1, FRAMES_OUT=1, FRAMES_DROPPED=1)
    assert tb.sink.empty()
    await tb.write("STATUS", ERR_SHORT)
    await tb.expect_registers(STATUS=0)
    _record("soft_reset", fig)
    assert fig["mismatches"] == 0 and fig["compared"] > 0


@cocotb.test()
async def test_stand_in_core(dut):
    """The shell around the stand-in core (sim/templates/sqz_axi_test_top.v), which takes
    a pixel on every cycle: 2 random frames under stalls with null bytes, then 3 back to
    back with none: the core never waits for a pixel while the source has bytes, and takes
    a whole frame on consecutive cycles; every score and the registers."""
    tb = AxiTB(dut, idle=0.3, backpressure=0.5, seed=15)
    await tb.reset()
    f = tb.fmt
    await tb.expect_registers(FRAME_BYTES=f["frame_bytes"], OUT_BYTES=f["out_bytes"],
                              OUT_FORMAT=f["out_format"])
    cocotb.start_soon(tb.send([tb.frame(0, nulls=0.1, null_beat=True), tb.frame(1, nulls=0.3)]))
    fig = await tb.receive([0, 1])
    tb.stalls(0.0, 0.0)
    tb.watch_core = True
    cocotb.start_soon(tb.send([tb.frame(i) for i in (2, 3, 4)]))
    fig2 = await tb.receive([2, 3, 4])
    tb.watch_core = False
    await tb.expect_registers(FRAMES_IN=5, FRAMES_OUT=5, FRAMES_DROPPED=0, STATUS=0)
    pixels = f["frame_bytes"] // f["pix_bytes"]
    figures = {"compared": fig["compared"] + fig2["compared"],
               "mismatches": fig["mismatches"] + fig2["mismatches"],
               "core_starved_cycles": tb.starved, "core_longest_run": tb.longest_run,
               "frame_pixels": pixels}
    _record("stand_in", figures)
    LOG.info("axi stand-in: %s", figures)
    assert figures["mismatches"] == 0 and figures["compared"] > 0
    assert tb.starved == 0, f"the core was ready without a pixel for {tb.starved} cycles"
    assert tb.longest_run == pixels, (tb.longest_run, pixels)
