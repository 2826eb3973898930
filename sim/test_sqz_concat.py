"""sqz_concat: per pixel, input a's channels then input b's, tlast on each frame's end."""

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
        self.p = dut_params(dut, "LANES", "CA", "CB", "PIXELS")
        super().__init__(dut, idle, backpressure, seeds=(31, 33))
        self.source_a = self.source
        self.source_b = self.add_source("s_axis_b", idle, seed=32)

    def frames(self, n: int, seed: int):
        """n frames of (a, b) as (PIXELS, CA) and (PIXELS, CB) uint8 arrays."""
        rng = np.random.default_rng(seed)
        pixels = self.p["PIXELS"]
        return [(rng.integers(0, 256, (pixels, self.p["CA"])),
                 rng.integers(0, 256, (pixels, self.p["CB"]))) for _ in range(n)]

    def beats(self, arrays):
        """Frames of (PIXELS, channels) arrays -> beats and per-frame tlast flags."""
        return pack_frames(arrays, self.p["LANES"])

    def start(self, frames):
        a = cocotb.start_soon(self.source_a.send(*self.beats([f[0] for f in frames])))
        b = cocotb.start_soon(self.source_b.send(*self.beats([f[1] for f in frames])))
        return a, b

    async def check(self, frames):
        words, lasts = self.beats([np.concatenate(f, axis=1) for f in frames])
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
    a, b = tb.start(tb.frames(2, 2))
    await ClockCycles(dut.clk, 23)
    a.cancel()
    b.cancel()
    await tb.reset()
    frames = tb.frames(3, 3)
    tb.start(frames)
    await tb.check(frames)


@pytest.mark.parametrize("lanes, ca, cb, pixels", [(4, 8, 16, 5), (2, 2, 6, 1)])
def test_sqz_concat(lanes, ca, cb, pixels):
    run_cocotb("sqz_concat", rtl_sources("sqz_concat"),
               {"LANES": lanes, "CA": ca, "CB": cb, "PIXELS": pixels}, "sim.test_sqz_concat")
