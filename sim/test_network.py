"""The generated SqueezeNet top against the golden model, frame after frame.

cocotb tests (run inside the simulator) read the vectors written by ``sim.network``:
real photos as raw 8-bit pixels and the golden model's class scores. The pytest functions
at the bottom generate the small spec's RTL and run them; the full v1.1 network runs with
``make sim-full`` (``python -m sim.full``).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb.triggers import RisingEdge

from sim.streams import StreamTB, pack_frames, unpack


class TB(StreamTB):
    """Clock, raw-pixel source, class-score sink (started by the tests), reset, and the
    golden vectors."""

    def __init__(self, dut, stalls: bool):
        v = np.load(os.environ["SQZ_VECTORS"])
        self.pixels = v["pixels"]
        self.expected = v["expected"]
        self.in_lanes = int(v["in_lanes"])
        self.out_lanes = int(v["out_lanes"])
        self.out_bits = int(v["out_bits"])
        super().__init__(dut, 0.2 if stalls else 0.0, 0.3 if stalls else 0.0, seeds=(21, 22),
                         start_sink=False)
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

    def check(self, frame_order: list[int]) -> tuple[int, int]:
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
    tb = TB(dut, stalls)
    await tb.reset()
    cocotb.start_soon(tb.sink.run())
    n = len(tb.pixels)
    start = tb.cycle

    async def feed():
        for i in range(n):
            await tb.source.send(*tb.frame_beats(i))

    cocotb.start_soon(feed())
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
    tb = TB(dut, stalls=True)
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


# ----------------------------------------------------------------------------- pytest


@pytest.fixture(scope="module")
def tiny_rtl():
    from model.paths import REPO
    from model.spec import load_spec
    from sim.network import prepare_network

    spec = load_spec(REPO / "configs" / "tiny.yaml")
    _prep, design, vectors = prepare_network(spec)
    return spec, design, vectors


def test_tiny_network_rtl_bit_exact(tiny_rtl):
    from sim.network import run_network

    spec, design, vectors = tiny_rtl
    fig = run_network(spec, design, vectors, testcase="test_frames", stalls=True)
    print(f"\nrtl: {fig['frames']} frames, {fig['compared']} outputs compared, "
          f"{fig['mismatches']} mismatches (random stalls and backpressure), "
          f"first-frame latency {fig['first_frame_latency_cycles']} cycles")
    assert fig["mismatches"] == 0 and fig["compared"] > 0


def test_tiny_network_rtl_reset_mid_frame(tiny_rtl):
    from sim.network import run_network

    spec, design, vectors = tiny_rtl
    run_network(spec, design, vectors, testcase="test_reset_mid_frame")


def test_tiny_shared_network_rtl_bit_exact():
    """configs/tiny_shared.yaml (pruned 50%, 4-bit shared weights): every MVU reads 4-bit
    indices and a codebook file, and the class scores equal the golden model's."""
    import re

    from model.paths import REPO
    from model.spec import load_spec
    from sim.network import prepare_network, run_network

    spec = load_spec(REPO / "configs" / "tiny_shared.yaml")
    prep, design, vectors = prepare_network(spec, frames=4)
    convs = [n.name for n in prep.nodes if n.kind == "conv"]
    text = (design_dir := vectors.parent / f"{design.top}.v").read_text()
    assert len(re.findall(r"\.SHARE_BITS\(4\)", text)) == len(convs), design_dir
    for name in convs:  # index ROMs 4 bits per lane, 16-entry codebooks
        f = prep.folding[name]
        rom = (vectors.parent / "mem" / f"{name}_w.hex").read_text().split()
        cb = (vectors.parent / "mem" / f"{name}_cb.hex").read_text().split()
        assert len(rom) == f.reuse_factor and len(rom[0]) == f.pe * f.simd * 4 // 4
        assert len(cb) == 16
    fig = run_network(spec, design, vectors, testcase="test_frames", stalls=True)
    print(f"\nrtl (shared weights): {fig['frames']} frames, {fig['compared']} outputs "
          f"compared, {fig['mismatches']} mismatches (random stalls and backpressure)")
    assert fig["frames"] == 4
    assert fig["mismatches"] == 0 and fig["compared"] > 0
