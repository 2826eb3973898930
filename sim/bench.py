"""The bench library of the RTL testbenches (a library: pytest collects no tests here).

- Driver and monitor: ``StreamSource`` drives an AXI4-Stream input with random idle cycles,
  ``StreamSink`` collects an output while applying random backpressure, each from its own
  seeded generator. Beats carry ``lanes`` elements of ``bits`` each, element i in bits
  ``[i*bits +: bits]`` (``pack`` / ``unpack`` / ``pack_frames``).
- The frame bench ``StreamTB``: the clock, the sources and sinks, and reset.
- The stall matrix, defined once: every module bench runs its main test under each case of
  ``IDLE_PROBS`` x ``BACKPRESSURE_PROBS`` through the ``stall_test`` decorator.
- Parameters: a bench reads the RTL parameters it was built with from the DUT
  (``dut_params``), so the pytest function's parameter dict is their one definition;
  ``bench_data`` returns what else that function handed over (formats, data files).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from typing import NamedTuple

import cocotb
from cocotb.clock import Clock
from cocotb.regression import TestGenerator
from cocotb.triggers import RisingEdge

from sim.runner import BENCH_DATA_ENV


class Stalls(NamedTuple):
    """Probability of an idle cycle before each input beat, and of the sink holding
    ``tready`` low in a cycle."""

    idle: float
    backpressure: float


IDLE_PROBS = (0.0, 0.3)
BACKPRESSURE_PROBS = (0.0, 0.4)
# The matrix's stalled corner, for the tests that run once under stalls (reset mid-frame).
STALLED = Stalls(IDLE_PROBS[-1], BACKPRESSURE_PROBS[-1])
# The output blocked most of the time: the input must stop rather than lose data.
HEAVY_BACKPRESSURE = Stalls(0.1, 0.85)


def stall_test(fn: Callable) -> TestGenerator:
    """Register ``fn(dut, idle, backpressure)`` as a cocotb test for each case of
    ``IDLE_PROBS`` x ``BACKPRESSURE_PROBS``, named ``<fn>/idle=<p>/backpressure=<p>``."""
    return cocotb.test(cocotb.parametrize(idle=IDLE_PROBS, backpressure=BACKPRESSURE_PROBS)(fn))


def dut_params(dut, *names: str) -> dict[str, int]:
    """The integer parameters ``names`` the DUT was elaborated with, read back from the
    simulator (as signed values: untyped Verilog parameters given an integer are 32-bit
    signed). Works with Verilator (cocotb builds with ``--public-flat-rw``) and Icarus."""
    return {name: getattr(dut, name).value.to_signed() for name in names}


def bench_data() -> dict:
    """The JSON data the pytest function passed to ``run_cocotb(..., data=...)``."""
    return json.loads(os.environ[BENCH_DATA_ENV])


def pack(values, bits: int) -> int:
    word = 0
    mask = (1 << bits) - 1
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack(word: int, lanes: int, bits: int, signed: bool = False) -> list[int]:
    mask = (1 << bits) - 1
    out = []
    for i in range(lanes):
        v = (word >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out


def pack_frames(frames, lanes: int, bits: int = 8) -> tuple[list[int], list[int]]:
    """Frames (arrays, read in row-major order) -> beats of ``lanes`` elements of ``bits``
    each, and their TLAST flags: 1 on the last beat of every frame."""
    words, lasts = [], []
    for arr in frames:
        flat = arr.reshape(-1)
        n = flat.size // lanes
        words += [pack(flat[i * lanes:(i + 1) * lanes], bits) for i in range(n)]
        lasts += [0] * (n - 1) + [1]
    return words, lasts


class _StreamPort:
    """The ``<prefix>_tdata/tvalid/tready/tlast`` handles of one AXI-Stream port, and the
    seeded generator of its random stalls (``prob``: idle or backpressure probability)."""

    def __init__(self, dut, prefix: str, clk, prob: float, seed: int):
        self.clk = clk
        self.data = getattr(dut, f"{prefix}_tdata")
        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.last = getattr(dut, f"{prefix}_tlast", None)
        self.prob = prob
        self.rng = random.Random(seed)


class StreamSource(_StreamPort):
    """Drives ``<prefix>_tdata/tvalid/tlast`` and honours ``<prefix>_tready``."""

    def __init__(self, dut, prefix: str, clk, idle_prob: float = 0.0, seed: int = 1):
        super().__init__(dut, prefix, clk, idle_prob, seed)
        self.valid.value = 0
        if self.last is not None:
            self.last.value = 0

    async def send(self, words: list[int], lasts: list[int] | None = None) -> None:
        for i, w in enumerate(words):
            while self.prob and self.rng.random() < self.prob:
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.data.value = w
            if self.last is not None:
                self.last.value = lasts[i] if lasts else 0
            self.valid.value = 1
            while True:
                await RisingEdge(self.clk)
                if int(self.ready.value):
                    break
        self.valid.value = 0


class StreamSink(_StreamPort):
    """Collects beats of ``<prefix>_*`` while driving random ``tready``."""

    def __init__(self, dut, prefix: str, clk, backpressure_prob: float = 0.0, seed: int = 2):
        super().__init__(dut, prefix, clk, backpressure_prob, seed)
        self.words: list[int] = []
        self.lasts: list[int] = []
        self.ready.value = 0

    async def run(self) -> None:
        # Signals read right after the edge still hold the values the edge sampled (the
        # pattern cocotbext-axi uses), so a beat counts when valid and ready were both high.
        ready = 0
        while True:
            await RisingEdge(self.clk)
            if ready and int(self.valid.value):
                self.words.append(int(self.data.value))
                self.lasts.append(int(self.last.value) if self.last is not None else 0)
            ready = 0 if (self.prob and self.rng.random() < self.prob) else 1
            self.ready.value = ready

    async def wait_for(self, n: int, timeout_cycles: int) -> None:
        for _ in range(timeout_cycles):
            if len(self.words) >= n:
                return
            await RisingEdge(self.clk)
        raise TimeoutError(f"expected {n} beats, got {len(self.words)} "
                           f"after {timeout_cycles} cycles")


class StreamTB:
    """The frame bench: a 10 ns clock on ``dut.clk``, a source on ``<in_prefix>_*``
    (``self.source``) and a sink on ``<out_prefix>_*`` (``self.sink``, collecting from the
    start unless ``start_sink`` is false: then the bench starts ``self.sink.run()`` itself).

    ``seeds`` are the (source, sink) generator seeds. Benches with more ports add them with
    ``add_source`` / ``add_sink``; ``reset`` covers every source and sink.
    """

    def __init__(self, dut, idle: float = 0.0, backpressure: float = 0.0,
                 seeds: tuple[int, int] = (1, 2), start_sink: bool = True,
                 in_prefix: str = "s_axis", out_prefix: str = "m_axis"):
        self.dut = dut
        self.sources: list[StreamSource] = []
        self.sinks: list[StreamSink] = []
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.source = self.add_source(in_prefix, idle, seeds[0])
        self.sink = self.add_sink(out_prefix, backpressure, seeds[1], start=start_sink)

    def add_source(self, prefix: str, idle: float, seed: int) -> StreamSource:
        source = StreamSource(self.dut, prefix, self.dut.clk, idle, seed=seed)
        self.sources.append(source)
        return source

    def add_sink(self, prefix: str, backpressure: float, seed: int,
                 start: bool = True) -> StreamSink:
        sink = StreamSink(self.dut, prefix, self.dut.clk, backpressure, seed=seed)
        self.sinks.append(sink)
        if start:
            cocotb.start_soon(sink.run())
        return sink

    async def reset(self, cycles: int = 3, clear_sink: bool = True) -> None:
        """Drop every source's TVALID, hold ``rst`` high for ``cycles`` clocks, release it
        for one more edge, then (``clear_sink``) forget what the sinks have collected."""
        for source in self.sources:
            source.valid.value = 0
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        if clear_sink:
            for sink in self.sinks:
                sink.words.clear()
                sink.lasts.clear()
