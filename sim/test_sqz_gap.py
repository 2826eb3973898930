"""sqz_gap: per-channel results equal model.golden.global_avgpool, frame after frame."""

from __future__ import annotations

import cocotb
import numpy as np
import pytest
from cocotb.triggers import ClockCycles

from model import golden
from model.fixed import FixedFormat
from sim.bench import STALLED, StreamTB, bench_data, dut_params, pack_frames, stall_test, unpack
from sim.runner import rtl_sources, run_cocotb

pytestmark = pytest.mark.rtl


class TB(StreamTB):
    """The RTL parameters come from the DUT; the fixed-point formats they were derived
    from, and whether the data reaches saturation, from the pytest function."""

    def __init__(self, dut, idle: float, backpressure: float):
        self.p = dut_params(dut, "IN_H", "IN_W", "C", "LANES", "OUT_LANES", "OUT_BITS")
        data = bench_data()
        self.in_fmt = FixedFormat(**data["in_fmt"])
        self.out_fmt = FixedFormat(**data["out_fmt"])
        self.saturates = data["saturates"]
        super().__init__(dut, idle, backpressure, seeds=(51, 52))

    def frames(self, n: int, seed: int):
        """(H, W, C) maps whose channels span empty, small and full-range values, so the
        results cover zero, ordinary rounding and saturation."""
        rng = np.random.default_rng(seed)
        p = self.p
        shape = (p["IN_H"], p["IN_W"], p["C"])
        out = []
        for _ in range(n):
            full = self.in_fmt.qmax
            top = rng.choice([0, 1, 2, 16, full], size=p["C"], p=[0.1, 0.2, 0.2, 0.2, 0.3])
            keep = rng.random(shape) < rng.choice([0.05, 0.5, 1.0], size=p["C"])
            out.append((rng.integers(0, top + 1, shape) * keep).astype(np.int64))
        return out

    def beats(self, frames):
        # row-major pixels, channels innermost
        return pack_frames(frames, self.p["LANES"], self.in_fmt.width)

    def start(self, frames):
        return cocotb.start_soon(self.source.send(*self.beats(frames)))

    async def check(self, frames):
        lanes, bits = self.p["OUT_LANES"], self.p["OUT_BITS"]
        per_frame = self.p["C"] // lanes
        expected = [golden.global_avgpool(x, self.in_fmt, self.out_fmt) for x in frames]
        n = per_frame * len(frames)
        await self.sink.wait_for(n, 20 * len(self.beats(frames)[0]) + 100 * n + 200)
        await ClockCycles(self.dut.clk, 50)
        assert len(self.sink.words) == n
        assert self.sink.lasts == ([0] * (per_frame - 1) + [1]) * len(frames)
        for k, want in enumerate(expected):
            got = []
            for w in self.sink.words[k * per_frame:(k + 1) * per_frame]:
                got += unpack(w, lanes, bits)
            assert got == want.tolist(), f"frame {k}: got {got}, expected {want.tolist()}"
        return expected


@stall_test
async def test_frames(dut, idle, backpressure):
    tb = TB(dut, idle, backpressure)
    await tb.reset()
    frames = tb.frames(3, 1)
    tb.start(frames)
    expected = await tb.check(frames)
    top = (1 << tb.p["OUT_BITS"]) - 1
    flat = np.concatenate(expected)
    assert (flat == 0).any() and ((flat > 0) & (flat < top)).any()
    assert (flat == top).any() == tb.saturates


@cocotb.test()
async def test_reset_mid_frame(dut):
    """Reset in the middle of the second frame (the first one's results may be leaving)."""
    tb = TB(dut, *STALLED)
    await tb.reset()
    send = tb.start(tb.frames(2, 2))
    p = tb.p
    await ClockCycles(dut.clk, (p["IN_H"] * p["IN_W"] * p["C"] // p["LANES"]) * 3 // 2)
    send.cancel()
    await tb.reset()
    frames = tb.frames(2, 3)
    tb.start(frames)
    await tb.check(frames)


# (H, W, C, LANES, OUT_LANES, ACC_BITS, in format, out format (width, integer), saturates)
CASES = [
    (14, 14, 16, 4, 4, 16, (8, 4), (16, 8), False),   # shift 19; the mean always fits
    (13, 13, 10, 10, 5, 18, (8, 8), (16, 4), True),   # one beat per pixel; shift 11
    (4, 4, 8, 2, 8, 12, (8, 4), (24, 0), True),       # shift -1: a left shift
    (13, 13, 8, 4, 2, 24, (16, 9), (16, 9), False),   # 16-bit input (v1.1's conv10)
]


@pytest.mark.parametrize(
    "h, w, c, lanes, out_lanes, acc_bits, in_fmt, out_fmt, saturates", CASES)
def test_sqz_gap(h, w, c, lanes, out_lanes, acc_bits, in_fmt, out_fmt, saturates):
    fin = FixedFormat(*in_fmt, signed=False)
    fout = FixedFormat(*out_fmt, signed=False)
    recip, s = golden.gap_reciprocal(h * w)
    params = {"IN_H": h, "IN_W": w, "C": c, "LANES": lanes, "OUT_LANES": out_lanes,
              "IN_BITS": fin.width, "ACC_BITS": acc_bits, "RECIP": recip,
              "SHIFT": fin.frac + s - fout.frac, "OUT_BITS": fout.width}
    run_cocotb("sqz_gap", rtl_sources("sqz_gap"), params, "sim.test_sqz_gap",
               data={"in_fmt": fin.to_dict(), "out_fmt": fout.to_dict(),
                     "saturates": saturates})
