"""sqz_fork: both outputs see every input beat, in order, under unrelated backpressure."""

from __future__ import annotations

import random

import cocotb
import cocotb.utils
import pytest
from cocotb.triggers import ClockCycles

from sim.bench import STALLED, StreamTB, dut_params, stall_test
from sim.runner import rtl_sources, run_cocotb

pytestmark = pytest.mark.rtl

# Output b's backpressure whenever a test applies some to output a: heavier, from its own
# generator, so the two outputs drain at unrelated rates.
OTHER_BACKPRESSURE = 0.7


class TB(StreamTB):
    def __init__(self, dut, idle: float, bp_a: float, bp_b: float):
        self.p = dut_params(dut, "DATA_WIDTH")
        super().__init__(dut, idle, bp_a, seeds=(21, 22))
        self.sink_a = self.sink
        self.sink_b = self.add_sink("m_axis_b", bp_b, seed=23)

    def stimulus(self, n: int, seed: int):
        rng = random.Random(seed)
        words = [rng.getrandbits(self.p["DATA_WIDTH"]) for _ in range(n)]
        lasts = [int(i % 13 == 12) for i in range(n)]
        return words, lasts

    async def check(self, words, lasts):
        for sink in (self.sink_a, self.sink_b):
            await sink.wait_for(len(words), 40 * len(words) + 100)
        await ClockCycles(self.dut.clk, 20)  # nothing extra may follow
        for sink in (self.sink_a, self.sink_b):
            assert sink.words == words
            assert sink.lasts == lasts


@stall_test
async def test_stream(dut, idle, backpressure):
    """Every beat on both outputs; without stalls, one input beat per clock."""
    tb = TB(dut, idle, backpressure, OTHER_BACKPRESSURE if backpressure else 0.0)
    await tb.reset()
    words, lasts = tb.stimulus(300, 1)
    start = cocotb.utils.get_sim_time("ns")
    await tb.source.send(words, lasts)
    if not idle and not backpressure:
        cycles = (cocotb.utils.get_sim_time("ns") - start) / 10
        assert cycles <= len(words) + 2, f"{cycles} cycles for {len(words)} beats: not full rate"
    await tb.check(words, lasts)


@cocotb.test()
async def test_one_output_blocked(dut):
    """Output b blocked for a while: a fills its buffer, then the input stops."""
    tb = TB(dut, 0.0, 0.0, 1.0)
    await tb.reset()
    words, lasts = tb.stimulus(60, 3)
    send = cocotb.start_soon(tb.source.send(words, lasts))
    await ClockCycles(dut.clk, 40)
    assert len(tb.sink_a.words) <= 3
    tb.sink_b.prob = 0.5
    await send
    await tb.check(words, lasts)


@cocotb.test()
async def test_reset_mid_stream(dut):
    tb = TB(dut, *STALLED, OTHER_BACKPRESSURE)
    await tb.reset()
    words, lasts = tb.stimulus(200, 4)
    send = cocotb.start_soon(tb.source.send(words, lasts))
    await ClockCycles(dut.clk, 57)
    send.cancel()
    await tb.reset()
    words, lasts = tb.stimulus(200, 5)
    await tb.source.send(words, lasts)
    await tb.check(words, lasts)


@pytest.mark.parametrize("width", [8, 40])
def test_sqz_fork(width):
    run_cocotb("sqz_fork", rtl_sources("sqz_fork"), {"DATA_WIDTH": width}, "sim.test_sqz_fork")
