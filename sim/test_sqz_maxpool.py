"""sqz_maxpool: every output element equals golden.maxpool_ceil, under stalls and reset."""

from __future__ import annotations

import cocotb
import numpy as np
import pytest
from cocotb.triggers import ClockCycles, RisingEdge

from model import golden
from model.graph import pool_out_ceil
from sim.bench import HEAVY_BACKPRESSURE, STALLED, StreamTB, dut_params, pack, stall_test, unpack
from sim.runner import rtl_sources, run_cocotb

pytestmark = pytest.mark.rtl


class Geometry:
    """The RTL parameters of this build (read from the DUT) and the frame sizes they
    imply."""

    def __init__(self, p: dict):
        self.h, self.w, self.c, self.lanes = p["IN_H"], p["IN_W"], p["C"], p["LANES"]
        self.k, self.s, self.bits = p["K"], p["STRIDE"], p["BITS"]
        self.out_h = pool_out_ceil(self.h, self.k, self.s)
        self.out_w = pool_out_ceil(self.w, self.k, self.s)
        self.in_beats = self.h * self.w * self.c // self.lanes
        self.out_beats = self.out_h * self.out_w * self.c // self.lanes

    def frame(self, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, 1 << self.bits, (self.h, self.w, self.c), dtype=np.int64)

    def beats(self, x: np.ndarray) -> list[int]:
        return [pack(row, self.bits) for row in x.reshape(-1, self.lanes)]

    def expected(self, x: np.ndarray) -> np.ndarray:
        y = golden.maxpool_ceil(x, self.k, self.s)
        assert y.shape == (self.out_h, self.out_w, self.c)
        return y.reshape(-1)


class TB(StreamTB):
    def __init__(self, dut, idle: float, backpressure: float):
        self.geo = Geometry(dut_params(dut, "IN_H", "IN_W", "C", "LANES", "K", "STRIDE", "BITS"))
        super().__init__(dut, idle, backpressure, seeds=(41, 42))

    def inputs(self, frames: list[np.ndarray]) -> list[int]:
        return [b for x in frames for b in self.geo.beats(x)]

    async def check(self, frames: list[np.ndarray], label: str):
        geo = self.geo
        n = geo.out_beats * len(frames)
        await self.sink.wait_for(n, 12 * geo.in_beats * len(frames) + 500)
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
        self.dut._log.info("%s: %d frames of %dx%dx%d -> %dx%d, %d beats, %d elements "
                           "equal to golden", label, len(frames), geo.h, geo.w, geo.c,
                           geo.out_h, geo.out_w, n, want.size)


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
    send = cocotb.start_soon(tb.source.send(tb.inputs([tb.geo.frame(rng)])))
    await ClockCycles(dut.clk, max(10, tb.geo.in_beats // 2))
    send.cancel()
    await tb.reset()
    frames = [tb.geo.frame(rng) for _ in range(2)]
    await tb.source.send(tb.inputs(frames))
    await tb.check(frames, "after reset")


@cocotb.test()
async def test_heavy_backpressure(dut):
    """Output mostly blocked: the input must stop rather than lose partial maxima."""
    tb = TB(dut, *HEAVY_BACKPRESSURE)
    await tb.reset()
    rng = np.random.default_rng(4)
    frames = [tb.geo.frame(rng) for _ in range(2)]
    await tb.source.send(tb.inputs(frames))
    await tb.check(frames, "heavy backpressure")


@cocotb.test()
async def test_throughput(dut):
    """Unstalled: one input beat per clock; cycles per frame printed."""
    tb = TB(dut, 0.0, 0.0)
    await tb.reset()
    geo = tb.geo
    rng = np.random.default_rng(3)
    frames = [geo.frame(rng) for _ in range(3)]
    send = cocotb.start_soon(tb.source.send(tb.inputs(frames)))
    ends = []
    for cycle in range(1, 10 * geo.in_beats * len(frames)):
        await RisingEdge(dut.clk)
        if len(tb.sink.words) >= (len(ends) + 1) * geo.out_beats:
            ends.append(cycle)
            if len(ends) == len(frames):
                break
    await send
    await tb.check(frames, "unstalled")
    steady = ends[-1] - ends[-2]
    dut._log.info("cycles: first frame %d, frame to frame %d (in %d beats, out %d beats)",
                  ends[0], steady, geo.in_beats, geo.out_beats)
    assert steady == geo.in_beats, (steady, geo.in_beats)


CASES = {
    # name: IN_H, IN_W, C, LANES, K, STRIDE
    "9x9_c4l2": (9, 9, 4, 2, 3, 2),      # odd: ceil mode adds no edge window
    "8x8_c8l8": (8, 8, 8, 8, 3, 2),      # even: 2-pixel edge windows; one word per pixel
    "6x7_c4l2": (6, 7, 4, 2, 3, 2),      # even rows, odd columns
    "3x3_c2l1": (3, 3, 2, 1, 3, 2),      # one window
    "7x5_k2s2": (7, 5, 2, 2, 2, 2),      # non-overlapping, 1-pixel edge windows
    "5x6_k2s1": (5, 6, 2, 1, 2, 1),      # stride 1
}


@pytest.mark.parametrize("case", list(CASES))
def test_sqz_maxpool(case):
    h, w, c, lanes, k, s = CASES[case]
    params = {"IN_H": h, "IN_W": w, "C": c, "LANES": lanes, "K": k, "STRIDE": s}
    run_cocotb("sqz_maxpool", rtl_sources("sqz_maxpool"), params, "sim.test_sqz_maxpool")
