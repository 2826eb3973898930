"""sqz_dwc: the element sequence is unchanged across a lane-width change; tlast per frame."""

from __future__ import annotations

import cocotb
import numpy as np
import pytest
from cocotb.triggers import ClockCycles

from sim.bench import STALLED, StreamTB, dut_params, pack_frames, stall_test
from sim.runner import rtl_sources, run_cocotb

pytestmark = pytest.mark.rtl


class TB(StreamTB):
    def __init__(self, dut, idle: float, backpressure: float):
        self.p = dut_params(dut, "IN_LANES", "OUT_LANES", "C", "PIXELS")
        super().__init__(dut, idle, backpressure, seeds=(41, 42))

    def frames(self, n: int, seed: int):
        rng = np.random.default_rng(seed)
        return [rng.integers(0, 256, (self.p["PIXELS"], self.p["C"])) for _ in range(n)]

    def start(self, frames):
        return cocotb.start_soon(self.source.send(*pack_frames(frames, self.p["IN_LANES"])))

    async def check(self, frames):
        words, lasts = pack_frames(frames, self.p["OUT_LANES"])
        await self.sink.wait_for(len(words), 40 * len(words) + 100)
        await ClockCycles(self.dut.clk, 20)
        assert self.sink.words == words
        assert self.sink.lasts == lasts


@stall_test
async def test_frames(dut, idle, backpressure):
    tb = TB(dut, idle, backpressure)
    await tb.reset()
    frames = tb.frames(4, 1)
    tb.start(frames)
    await tb.check(frames)


@cocotb.test()
async def test_reset_mid_frame(dut):
    tb = TB(dut, *STALLED)
    await tb.reset()
    send = tb.start(tb.frames(2, 2))
    await ClockCycles(dut.clk, 19)
    send.cancel()
    await tb.reset()
    frames = tb.frames(3, 3)
    tb.start(frames)
    await tb.check(frames)


@pytest.mark.parametrize("in_lanes, out_lanes, c, pixels",
                         [(4, 1, 8, 5), (2, 8, 16, 3),
                          # equal widths: CI time, runs in make test-all
                          pytest.param(4, 4, 4, 1, marks=pytest.mark.slow)])
def test_sqz_dwc(in_lanes, out_lanes, c, pixels):
    run_cocotb("sqz_dwc", rtl_sources("sqz_dwc"),
               {"IN_LANES": in_lanes, "OUT_LANES": out_lanes, "C": c, "PIXELS": pixels},
               "sim.test_sqz_dwc")
