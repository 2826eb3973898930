"""sqz_fifo: order, TLAST and capacity under random stalls and backpressure."""

from __future__ import annotations

import random

import cocotb
import pytest
from cocotb.triggers import RisingEdge

from sim.bench import StreamTB, dut_params, stall_test
from sim.runner import rtl_sources, run_cocotb

pytestmark = pytest.mark.rtl


class TB(StreamTB):
    """The sink starts collecting only when a test starts it."""

    def __init__(self, dut, idle: float, backpressure: float):
        self.p = dut_params(dut, "DATA_WIDTH", "DEPTH")
        super().__init__(dut, idle, backpressure, seeds=(11, 12), start_sink=False)


@stall_test
async def test_stream(dut, idle, backpressure):
    tb = TB(dut, idle, backpressure)
    await tb.reset(clear_sink=False)
    rng = random.Random(5)
    words = [rng.getrandbits(tb.p["DATA_WIDTH"]) for _ in range(200)]
    lasts = [int(i % 17 == 16) for i in range(200)]
    cocotb.start_soon(tb.sink.run())
    await tb.source.send(words, lasts)
    await tb.sink.wait_for(len(words), 5000)
    assert tb.sink.words == words
    assert tb.sink.lasts == lasts


@cocotb.test()
async def test_fills_to_capacity(dut):
    """With the output blocked the FIFO takes 2**clog2(DEPTH) + 1 words, then refuses
    (tready low); released, it gives back exactly those words, in order, with their
    TLAST."""
    tb = TB(dut, 0.0, 0.0)
    await tb.reset(clear_sink=False)
    depth, width = tb.p["DEPTH"], tb.p["DATA_WIDTH"]
    cap = (1 << max(1, (depth - 1).bit_length())) + 1
    rng = random.Random(depth)
    offered = [rng.getrandbits(width) for _ in range(cap + 5)]
    dut.m_axis_tready.value = 0
    dut.s_axis_tvalid.value = 1
    taken = []
    i = 0
    for _ in range(cap + 20):        # offer word i until taken; stop once it is refused
        dut.s_axis_tdata.value = offered[i]
        dut.s_axis_tlast.value = int(i % 3 == 2)
        await RisingEdge(dut.clk)
        if int(dut.s_axis_tready.value):
            taken.append(i)
            i += 1
        if i == len(offered):
            break
    dut.s_axis_tvalid.value = 0
    assert taken == list(range(cap)), f"took {len(taken)} words, capacity {cap}"
    assert int(dut.s_axis_tready.value) == 0
    cocotb.start_soon(tb.sink.run())
    for _ in range(cap * 4 + 20):
        await RisingEdge(dut.clk)
    assert tb.sink.words == offered[:cap]
    assert tb.sink.lasts == [int(k % 3 == 2) for k in range(cap)]


@pytest.mark.parametrize("width, depth", [(8, 2), (24, 16), (64, 100)])
def test_sqz_fifo(width, depth):
    run_cocotb("sqz_fifo", rtl_sources("sqz_fifo"), {"DATA_WIDTH": width, "DEPTH": depth},
               "sim.test_sqz_fifo")
