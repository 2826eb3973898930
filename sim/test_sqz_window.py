"""sqz_window: every output beat equals golden.im2col, under stalls, backpressure and reset."""

from __future__ import annotations

import cocotb
import numpy as np
import pytest
from cocotb.triggers import ClockCycles, RisingEdge

from model import golden
from model.graph import conv_out
from sim.bench import STALLED, StreamTB, dut_params, pack, stall_test, unpack
from sim.runner import rtl_sources, run_cocotb

pytestmark = pytest.mark.rtl


class Geometry:
    """The RTL parameters of this build (read from the DUT) and the frame sizes they
    imply."""

    def __init__(self, p: dict):
        self.h, self.w, self.c = p["IN_H"], p["IN_W"], p["C"]
        self.lanes, self.k, self.s, self.pad = p["LANES"], p["K"], p["STRIDE"], p["PAD"]
        self.bits = p["BITS"]
        self.out_h = conv_out(self.h, self.k, self.s, self.pad)
        self.out_w = conv_out(self.w, self.k, self.s, self.pad)
        self.in_beats = self.h * self.w * self.c // self.lanes
        self.out_beats = self.out_h * self.out_w * self.k * self.k * self.c // self.lanes

    def frame(self, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, 1 << self.bits, (self.h, self.w, self.c), dtype=np.int64)

    def beats(self, elements: np.ndarray) -> list[int]:
        flat = elements.reshape(-1, self.lanes)
        return [pack(row, self.bits) for row in flat]

    def expected(self, x: np.ndarray) -> np.ndarray:
        cols, ho, wo = golden.im2col(x, self.k, self.s, self.pad)
        assert (ho, wo) == (self.out_h, self.out_w)
        return cols.reshape(-1)


class TB(StreamTB):
    def __init__(self, dut, idle: float, backpressure: float):
        self.geo = Geometry(dut_params(dut, "IN_H", "IN_W", "C", "LANES", "K", "STRIDE", "PAD",
                                       "BITS"))
        super().__init__(dut, idle, backpressure, seeds=(31, 32))

    def inputs(self, frames: list[np.ndarray]) -> list[int]:
        return [b for x in frames for b in self.geo.beats(x)]

    async def check(self, frames: list[np.ndarray], label: str):
        geo = self.geo
        n = geo.out_beats * len(frames)
        await self.sink.wait_for(n, 12 * (geo.in_beats + geo.out_beats) * len(frames) + 500)
        await ClockCycles(self.dut.clk, 30)  # nothing extra may follow
        assert len(self.sink.words) == n, f"{len(self.sink.words)} beats, expected {n}"
        got = np.array([e for w in self.sink.words for e in unpack(w, geo.lanes, geo.bits)])
        want = np.concatenate([geo.expected(x) for x in frames])
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{bad.size} of {want.size} elements differ, first at "
                               f"{bad[0]}: got {got[bad[0]]}, expected {want[bad[0]]}")
        lasts = [0] * n
        for f in range(len(frames)):
            lasts[(f + 1) * geo.out_beats - 1] = 1
        assert self.sink.lasts == lasts
        pad_zeros = int(sum((geo.expected(x) == 0).sum() for x in frames))
        self.dut._log.info("%s: %d frames, %d beats, %d elements equal to golden "
                           "(%d zero)", label, len(frames), n, want.size, pad_zeros)


@stall_test
async def test_frames_back_to_back(dut, idle, backpressure):
    """Two frames back to back (random input stalls and output backpressure per case)."""
    tb = TB(dut, idle, backpressure)
    await tb.reset()
    rng = np.random.default_rng(1)
    frames = [tb.geo.frame(rng) for _ in range(2)]
    await tb.source.send(tb.inputs(frames))
    await tb.check(frames, f"idle {idle}, backpressure {backpressure}")


@cocotb.test()
async def test_reset_mid_frame(dut):
    """A reset in the middle of a frame, then two correct frames (stalls, backpressure)."""
    tb = TB(dut, *STALLED)
    await tb.reset()
    rng = np.random.default_rng(2)
    junk = [tb.geo.frame(rng)]
    send = cocotb.start_soon(tb.source.send(tb.inputs(junk)))
    await ClockCycles(dut.clk, max(20, tb.geo.in_beats))
    send.cancel()
    await tb.reset()
    frames = [tb.geo.frame(rng) for _ in range(2)]
    await tb.source.send(tb.inputs(frames))
    await tb.check(frames, "after reset")


@cocotb.test()
async def test_throughput(dut):
    """Unstalled: cycles per frame, first frame (latency) and frame to frame (steady)."""
    tb = TB(dut, 0.0, 0.0)
    await tb.reset()
    geo = tb.geo
    rng = np.random.default_rng(3)
    frames = [tb.geo.frame(rng) for _ in range(3)]
    send = cocotb.start_soon(tb.source.send(tb.inputs(frames)))
    ends = []
    for cycle in range(1, 20 * (geo.in_beats + geo.out_beats) * len(frames)):
        await RisingEdge(dut.clk)
        if len(tb.sink.words) >= (len(ends) + 1) * geo.out_beats:
            ends.append(cycle)
            if len(ends) == len(frames):
                break
    await send
    await tb.check(frames, "unstalled")
    steady = ends[-1] - ends[-2]
    bound = max(geo.in_beats, geo.out_beats)
    dut._log.info("cycles: first frame %d, frame to frame %d (in %d beats, out %d beats)",
                  ends[0], steady, geo.in_beats, geo.out_beats)
    # One beat per clock on the busier side, plus at most a bubble per row, plus the rows
    # of the next frame that do not fit in the ring (K + STRIDE rows) beside the K rows
    # of the last output row: the first output row waits for them.
    refill = max(0, geo.k - geo.pad - geo.s) * geo.w * geo.c // geo.lanes
    assert steady <= bound + refill + 2 * geo.out_h + 8, (steady, bound, refill)


CASES = {
    # name: IN_H, IN_W, C, LANES, K, STRIDE, PAD
    "conv1_k3s2": (15, 15, 3, 3, 3, 2, 0),
    "expand3x3": (8, 7, 8, 4, 3, 1, 1),
    "k1s1": (5, 6, 4, 2, 1, 1, 0),
    "conv1_k7s2": (17, 17, 3, 3, 7, 2, 0),
    "odd_s2p1": (9, 10, 2, 1, 3, 2, 1),
    "drop_row": (10, 9, 4, 2, 3, 2, 0),
    "k1s2": (7, 8, 4, 4, 1, 2, 0),
    "k5s4p2": (11, 9, 2, 2, 5, 4, 2),
}


@pytest.mark.slow  # CI time: make test-all; the window runs in every network-level RTL test
@pytest.mark.parametrize("case", list(CASES))
def test_sqz_window(case):
    h, w, c, lanes, k, s, p = CASES[case]
    params = {"IN_H": h, "IN_W": w, "C": c, "LANES": lanes, "K": k, "STRIDE": s, "PAD": p}
    run_cocotb("sqz_window", rtl_sources("sqz_window"), params, "sim.test_sqz_window")
