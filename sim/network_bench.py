"""The whole-network cocotb bench: the generated SqueezeNet top (or any top with its ports,
such as the vendor-RTL adapter) against the golden model, frame after frame.

Run by ``sim.network.run_network`` (the pytest functions of ``sim/test_network.py``,
``sqz sim-full``); ``NetworkTB`` is also the bench of the throughput debugger
(``sim.debug_throughput``). Inputs come through the environment: ``SQZ_VECTORS`` (the .npz
``sim.network.prepare_network`` writes: real photos as raw 8-bit pixels and the golden
model's class scores), ``SQZ_STALLS`` (1: random input stalls and output backpressure) and
``SQZ_RESULT`` (where ``test_frames`` writes the figures it measured, as JSON).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from sim.bench import Stalls, StreamTB, pack_frames, unpack

# Lighter than the module benches' matrix: a full-size network under stalls is slow enough.
STALLS = Stalls(0.2, 0.3)


class NetworkTB(StreamTB):
    """Clock, raw-pixel source, class-score sink (started by the tests), reset, the golden
    vectors, and the cycle of every frame's last output beat (``out_cycles``)."""

    def __init__(self, dut, stalls: bool):
        v = np.load(os.environ["SQZ_VECTORS"])
        self.pixels = v["pixels"]
        self.expected = v["expected"]
        self.in_lanes = int(v["in_lanes"])
        self.out_lanes = int(v["out_lanes"])
        self.out_bits = int(v["out_bits"])
        case = STALLS if stalls else Stalls(0.0, 0.0)
        super().__init__(dut, *case, seeds=(21, 22), start_sink=False)
        self.cycle = 0
        self.out_cycles: list[int] = []
        cocotb.start_soon(self._count())

    async def _count(self):
        seen = 0
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            if len(self.sink.words) > seen:
                seen = len(self.sink.words)
                if self.sink.lasts[-1]:
                    self.out_cycles.append(self.cycle)

    async def reset(self, cycles: int = 4, clear_sink: bool = False):
        await super().reset(cycles, clear_sink)

    def frame_beats(self, i: int) -> tuple[list[int], list[int]]:
        """Frame i, one pixel (all its channels) per beat."""
        return pack_frames([self.pixels[i]], self.pixels.shape[-1])

    def beats_per_frame(self) -> int:
        return self.expected.shape[1] // self.out_lanes

    def feed_all(self):
        """Start sending every frame back to back; returns the task."""
        async def feed():
            for i in range(len(self.pixels)):
                await self.source.send(*self.frame_beats(i))

        return cocotb.start_soon(feed())

    def check(self, frame_order: list[int]) -> tuple[int, int]:
        """(outputs compared, mismatches) of the collected beats against the golden scores
        of ``frame_order``; TLAST must close every frame."""
        per = self.beats_per_frame()
        words = self.sink.words
        assert len(words) == per * len(frame_order), (len(words), per * len(frame_order))
        compared = mismatches = 0
        for k, i in enumerate(frame_order):
            got = []
            for w in words[k * per:(k + 1) * per]:
                got += unpack(w, self.out_lanes, self.out_bits)
            got = np.array(got)
            want = self.expected[i]
            compared += want.size
            bad = np.flatnonzero(got != want)
            mismatches += bad.size
            if bad.size:
                self.dut._log.error("frame %d: %d mismatches, first at class %d: RTL %d golden %d",
                                    i, bad.size, bad[0], got[bad[0]], want[bad[0]])
            lasts = self.sink.lasts[k * per:(k + 1) * per]
            assert lasts == [0] * (per - 1) + [1], f"frame {i}: TLAST misplaced"
        return compared, mismatches


def _write_result(figures: dict) -> None:
    path = os.environ.get("SQZ_RESULT")
    if path:
        Path(path).write_text(json.dumps(figures, indent=1))


@cocotb.test()
async def test_frames(dut):
    """All photos back to back (random input stalls and output backpressure if asked)."""
    stalls = os.environ.get("SQZ_STALLS", "1") == "1"
    tb = NetworkTB(dut, stalls)
    await tb.reset()
    cocotb.start_soon(tb.sink.run())
    n = len(tb.pixels)
    start = tb.cycle
    tb.feed_all()
    pixels_per_frame = tb.pixels.shape[1] * tb.pixels.shape[2]
    await tb.sink.wait_for(n * tb.beats_per_frame(), timeout_cycles=n * 60 * pixels_per_frame
                           + 2_000_000)
    compared, mismatches = tb.check(list(range(n)))
    ends = tb.out_cycles
    steady = [b - a for a, b in itertools.pairwise(ends)]
    figures = {"frames": n, "compared": compared, "mismatches": mismatches,
               "first_frame_latency_cycles": ends[0] - start,
               "cycles_per_frame": min(steady) if steady else None,
               "total_cycles": tb.cycle - start, "stalls": stalls}
    _write_result(figures)
    dut._log.info("rtl: %s", figures)
    assert mismatches == 0 and compared > 0


@cocotb.test()
async def test_reset_mid_frame(dut):
    """Half a frame, reset, then two whole frames: both come out right."""
    tb = NetworkTB(dut, stalls=True)
    await tb.reset()
    cocotb.start_soon(tb.sink.run())
    words, lasts = tb.frame_beats(0)
    await tb.source.send(words[: len(words) // 2], lasts[: len(words) // 2])
    for _ in range(50):
        await RisingEdge(dut.clk)
    await tb.reset(clear_sink=True)
    order = [1 % len(tb.pixels), 0]
    for i in order:
        await tb.source.send(*tb.frame_beats(i))
    await tb.sink.wait_for(len(order) * tb.beats_per_frame(), timeout_cycles=4_000_000)
    compared, mismatches = tb.check(order)
    assert mismatches == 0 and compared > 0
