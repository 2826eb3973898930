"""sqz_mvu: every output element equals model.golden.conv2d, frame after frame.

Weight sharing (``SHARE_BITS``) is tested the same way, with index and codebook images, and
so is ``DSP_PACK = 1`` (two PEs per multiplier), dense and shared, on its own cases: PE 2 with
SIMD 1, a long accumulation, and the extremes of the operands (weights -128 and 127,
activations 0 and 255) that decide the packed product's borrow.
The MVU is tested in isolation: its input is the im2col vectors of ``golden.im2col`` (the
window generator's job), its weights and biases are ROM images written by
``hls.rtl.mem``. Weights and biases are non-zero everywhere, so a ROM that failed to load
(zeros or X) cannot match. Each case's data (frames, expected outputs) is generated in the
pytest function with a fixed seed and handed to the cocotb tests as an .npz file; the bench
reads the RTL parameters back from the DUT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb.triggers import ClockCycles, RisingEdge

from hls.rtl.mem import pack_bias_hex, pack_codebook_hex, pack_indices_hex, pack_weights_hex
from model import golden, paths
from model.fixed import FixedFormat, bits_for_signed
from sim.bench import (
    HEAVY_BACKPRESSURE,
    STALLED,
    StreamTB,
    bench_data,
    dut_params,
    pack_frames,
    stall_test,
    unpack,
)
from sim.runner import rtl_sources, run_cocotb, simulator

pytestmark = pytest.mark.rtl

FRAMES = 4          # 3 streamed back to back, 1 more for the reset test


class TB(StreamTB):
    def __init__(self, dut, idle: float, backpressure: float):
        self.p = dut_params(dut, "N_IN", "N_OUT", "SIMD", "PE", "VECTORS", "IN_BITS",
                            "OUT_BITS")
        data = np.load(bench_data()["vectors"])
        self.vectors = data["vectors"]      # (FRAMES, VECTORS, N_IN)
        self.expected = data["expected"]    # (FRAMES, VECTORS, N_OUT)
        self.sf = self.p["N_IN"] // self.p["SIMD"]
        self.nf = self.p["N_OUT"] // self.p["PE"]
        super().__init__(dut, idle, backpressure, seeds=(61, 62))

    def beats(self, frames: list[int]):
        return pack_frames([self.vectors[f] for f in frames], self.p["SIMD"], self.p["IN_BITS"])

    def start(self, frames: list[int]):
        return cocotb.start_soon(self.source.send(*self.beats(frames)))

    def frame_cycles(self) -> int:
        return self.p["VECTORS"] * self.sf * self.nf

    async def check(self, frames: list[int], idle: float = 0.0):
        pe, bits = self.p["PE"], self.p["OUT_BITS"]
        per_frame = self.p["VECTORS"] * self.nf
        n = per_frame * len(frames)
        timeout = int(len(frames) * self.frame_cycles() * (3 + 10 * idle)) + 40 * n + 500
        await self.sink.wait_for(n, timeout)
        await ClockCycles(self.dut.clk, 30)
        assert len(self.sink.words) == n, f"{len(self.sink.words)} beats, expected {n}"
        assert self.sink.lasts == ([0] * (per_frame - 1) + [1]) * len(frames), "TLAST"
        compared = 0
        for k, f in enumerate(frames):
            got = []
            for w in self.sink.words[k * per_frame:(k + 1) * per_frame]:
                got += unpack(w, pe, bits)
            want = self.expected[f].reshape(-1)
            bad = np.flatnonzero(np.asarray(got) != want)
            assert not bad.size, (f"frame {f}: {bad.size} of {want.size} elements differ; "
                                  f"first at {bad[0]}: got {got[bad[0]]}, "
                                  f"expected {want[bad[0]]}")
            compared += want.size
        self.dut._log.info("compared %d output elements (%d frames), all equal", compared,
                           len(frames))


async def run_frames(tb: TB, idle: float):
    await tb.reset()
    frames = [0, 1, 2]
    tb.start(frames)
    await tb.check(frames, idle)


@cocotb.test()
async def test_stream_rate(dut):
    """No stalls: exact results, and one (sf, nf) step per clock once the pipeline runs."""
    tb = TB(dut, 0.0, 0.0)
    await tb.reset()
    cycle, first_in, tlast_at = 0, None, []

    async def monitor():
        nonlocal cycle, first_in
        while True:
            await RisingEdge(dut.clk)
            cycle += 1
            if first_in is None and int(dut.s_axis_tvalid.value) \
                    and int(dut.s_axis_tready.value):
                first_in = cycle
            if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value) \
                    and int(dut.m_axis_tlast.value):
                tlast_at.append(cycle)

    cocotb.start_soon(monitor())
    frames = [0, 1, 2]
    tb.start(frames)
    await tb.check(frames)
    ideal = tb.frame_cycles()
    vectors = tb.p["VECTORS"]
    first = tlast_at[0] - first_in + 1
    steady = (tlast_at[2] - tlast_at[0]) / 2
    dut._log.info("frame 0: %d cycles from first input to last output (%.2f per vector, "
                  "SF*NF = %d; latency %d); back to back: %.2f cycles per vector",
                  first, first / vectors, tb.sf * tb.nf, first - ideal, steady / vectors)
    assert steady == ideal, f"{steady} cycles per frame back to back, expected {ideal}"
    assert first - ideal <= 20, f"latency {first - ideal} cycles"


@stall_test
async def test_frames(dut, idle, backpressure):
    await run_frames(TB(dut, idle, backpressure), idle)


@cocotb.test()
async def test_heavy_backpressure(dut):
    await run_frames(TB(dut, *HEAVY_BACKPRESSURE), HEAVY_BACKPRESSURE.idle)


@cocotb.test()
async def test_reset_mid_frame(dut):
    """Reset in the middle of the second frame, then a whole frame is exact."""
    tb = TB(dut, *STALLED)
    await tb.reset()
    send = tb.start([0, 1])
    await ClockCycles(dut.clk, tb.frame_cycles() * 3 // 2)
    assert not send.done(), "the reset must land while frames are still being sent"
    send.cancel()
    await tb.reset()
    tb.start([3])
    await tb.check([3], STALLED.idle)


# ------------------------------------------------------------------ cases


@dataclass(frozen=True)
class Case:
    """A conv layer shape, its folding, and the fixed-point formats of its tensors."""

    name: str
    h: int
    w: int
    c: int
    k: int
    stride: int
    pad: int
    n_out: int
    simd: int
    pe: int
    x_frac: int          # input: ap_ufixed<8, 8 - x_frac>
    w_frac: int          # weights: ap_fixed<8, 8 - w_frac>
    b_bits: int
    b_frac: int          # <= x_frac + w_frac
    out_frac: int        # SHIFT = x_frac + w_frac - out_frac
    x_max: int = 255
    w_min: int = -128    # weights in w_min .. w_max, never 0
    w_max: int = 127
    share_bits: int = 0  # > 0: weights from a 2**share_bits codebook, stored as indices
    dsp_pack: int = 0    # the DSP_PACK parameter: 1 = PEs 2k and 2k+1 share a multiplier
    w_set: tuple[int, ...] = ()  # non-empty: weights (or the codebook) drawn from these only
    x_set: tuple[int, ...] = ()  # non-empty: activations drawn from these only
    out_bits: int = 8    # output: ap_ufixed<out_bits, out_bits - out_frac>; wide with
                         # SHIFT = 0, every output shows its accumulator to the last bit


CASES = [
    # conv1-like 3x3x3, stride 2: SF 9 x NF 4
    Case("conv3x3x3", 9, 9, 3, 3, 2, 1, 8, 3, 2, 0, 7, 16, 7, -1),
    # fully parallel (SF = NF = 1); SHIFT = -1 (a left shift), small values so that the
    # results spread over 0..255; the accumulator (11 bits) is narrower than the tree
    Case("parallel", 6, 6, 16, 1, 1, 0, 16, 16, 16, 4, 2, 8, 5, 7, x_max=20, w_min=-2,
         w_max=2),
    # 1x1 over 64 channels, SIMD 4 x PE 3: SF 16 x NF 4, BIAS_SHIFT 3
    Case("pw64", 3, 4, 64, 1, 1, 0, 12, 4, 3, 4, 6, 12, 7, 1),
    # one synapse fold replayed for three neuron folds (SF 1 x NF 3); SHIFT = 0
    Case("sf1", 4, 5, 8, 1, 1, 0, 12, 8, 4, 4, 4, 8, 8, 8, x_max=31, w_min=-4, w_max=4),
    # fully folded 3x3x4 (SIMD = PE = 1): SF 36 x NF 8, BIAS_SHIFT 2
    Case("folded", 3, 3, 4, 3, 1, 1, 8, 1, 1, 0, 8, 16, 6, -1),
    # weight sharing: 4-bit indices into 16 weights (pw64's shape and folding) ...
    Case("shared4", 3, 4, 64, 1, 1, 0, 12, 4, 3, 4, 6, 12, 7, 1, share_bits=4),
    # ... and 2-bit indices on a 3x3 conv with SIMD 3 x PE 2
    Case("shared2", 9, 9, 3, 3, 2, 1, 8, 3, 2, 0, 7, 16, 7, -1, share_bits=2),
    # DSP_PACK = 1: conv1-like with PE 2 (one pair) x SIMD 3 (a padded adder tree) ...
    Case("pack_conv3x3x3", 9, 9, 3, 3, 2, 1, 8, 3, 2, 0, 7, 16, 7, -1, dsp_pack=1),
    # ... PE 2 x SIMD 1 (no adder tree: the lanes go straight to the accumulators) ...
    Case("pack_simd1", 3, 3, 4, 3, 1, 1, 8, 1, 2, 0, 8, 16, 6, 0, dsp_pack=1),
    # ... 1x1 over 64 channels, SIMD 8 x PE 8 (four pairs), NF 2 ...
    Case("pack_pe8", 3, 4, 64, 1, 1, 0, 16, 8, 8, 4, 6, 12, 7, 1, dsp_pack=1),
    # ... a long accumulation: 3x3 over 128 channels, 576 synapse folds of SIMD 2, PE 4;
    # 18-bit outputs at SHIFT 0 show the accumulators' exact values ...
    Case("pack_long", 2, 2, 128, 3, 1, 1, 8, 2, 4, 8, 7, 16, 15, 15, dsp_pack=1,
         out_bits=18),
    # ... the extremes only: every weight -128 or 127, every activation 0 or 255, every
    # (w_hi, w_lo) combination; 17-bit outputs at SHIFT 0, so one borrow lost would show ...
    Case("pack_extremes", 4, 4, 32, 1, 1, 0, 8, 4, 4, 4, 5, 16, 9, 9, dsp_pack=1,
         w_set=(-128, 127), x_set=(0, 255), out_bits=17),
    # ... weight sharing: 4-bit indices, PE 6 (three pairs) x SIMD 4 ...
    Case("pack_shared4", 3, 4, 64, 1, 1, 0, 12, 4, 6, 4, 6, 12, 7, 1, share_bits=4,
         dsp_pack=1),
    # ... and a 1-bit codebook holding the extremes -128 and 127, activations 0 and 255
    Case("pack_shared1_extremes", 4, 4, 32, 1, 1, 0, 8, 4, 4, 4, 5, 16, 9, 9, share_bits=1,
         dsp_pack=1, w_set=(-128, 127), x_set=(0, 255), out_bits=17),
]


def _nonzero(rng, lo: int, hi: int, shape) -> np.ndarray:
    """Uniform integers in lo..hi without 0 (so every ROM word matters)."""
    v = rng.integers(lo, hi, shape, endpoint=True)
    while (v == 0).any():
        v = np.where(v == 0, rng.integers(lo, hi, shape, endpoint=True), v)
    return v.astype(np.int64)


def prepare(case: Case) -> tuple[dict, Path]:
    """Write the ROM images and the frames with their golden outputs; return (params, npz)."""
    rng = np.random.default_rng(sum(map(ord, case.name)))
    x_fmt = FixedFormat(8, 8 - case.x_frac, signed=False)
    w_fmt = FixedFormat(8, 8 - case.w_frac)
    b_fmt = FixedFormat(case.b_bits, case.b_bits - case.b_frac)
    out_fmt = FixedFormat(case.out_bits, case.out_bits - case.out_frac, signed=False)
    acc_frac = x_fmt.frac + w_fmt.frac
    bias_shift = acc_frac - b_fmt.frac

    shape = (case.k, case.k, case.c, case.n_out)
    if case.share_bits:
        # distinct non-zero codebook entries, each used; a codebook that failed to load
        # (zeros or X) or a lane that reads the wrong entry cannot match
        size = 1 << case.share_bits
        if case.w_set:
            assert len(case.w_set) == size, "w_set must fill the codebook"
            codebook = rng.permutation(np.asarray(case.w_set, np.int64))
        else:
            # +-m pairs, as symmetric as a k-means codebook of real weights
            mags = rng.choice(np.arange(1, min(-case.w_min, case.w_max) + 1), size // 2,
                              replace=False)
            codebook = rng.permutation(np.concatenate([-mags, mags])).astype(np.int64)
        idx = rng.integers(0, size, shape)
        idx.reshape(-1)[:size] = rng.permutation(size)
        w_q = codebook[idx]
    elif case.w_set:
        w_q = rng.choice(np.asarray(case.w_set, np.int64), shape)
    else:
        w_q = _nonzero(rng, case.w_min, case.w_max, shape)
    x_shape = (FRAMES, case.h, case.w, case.c)
    if case.x_set:
        x = rng.choice(np.asarray(case.x_set, np.int64), x_shape)
    else:
        x = rng.integers(0, case.x_max, x_shape, endpoint=True)
    wmat = w_q.reshape(-1, case.n_out)
    # biases of the size of a typical sum, on the bias grid, non-zero
    acc_rms = math.sqrt(wmat.shape[0] * np.mean(x.astype(float) ** 2) * np.mean(wmat ** 2.0))
    b_lim = min(b_fmt.qmax, max(1, int(acc_rms) >> bias_shift))
    b_q = _nonzero(rng, -b_lim, b_lim, case.n_out)

    vectors, expected = [], []
    for f in range(FRAMES):
        cols, ho, wo = golden.im2col(x[f], case.k, case.stride, case.pad)
        y = golden.conv2d(x[f], x_fmt, w_q, w_fmt, b_q, b_fmt, out_fmt, case.stride,
                          case.pad, relu=True)
        vectors.append(cols)
        expected.append(y.reshape(ho * wo, case.n_out))
    vectors, expected = np.stack(vectors), np.stack(expected)
    # the results cover ReLU (0), ordinary rounding and saturation (255 at 8 bits)
    top = out_fmt.qmax
    assert (expected == 0).any() and (expected == top).any()
    assert ((expected > 0) & (expected < top)).mean() > 0.2

    # exact bound of the accumulator: what the generator guarantees, and no more
    acc_bound = case.x_max * int(np.abs(wmat).sum(axis=0).max()) + (b_lim << bias_shift)
    if case.w_set and case.x_set:
        # every (w_hi, w_lo, x) combination of the extremes meets in some packed multiply
        lo, hi = w_q.reshape(-1, case.n_out)[:, 0::2], w_q.reshape(-1, case.n_out)[:, 1::2]
        pairs = {(a, b) for a, b in zip(hi.reshape(-1), lo.reshape(-1), strict=True)}
        assert len(pairs) == len(case.w_set) ** 2 and (x == 0).any() and (x == 255).any()
    params = {
        "N_IN": wmat.shape[0], "N_OUT": case.n_out, "SIMD": case.simd, "PE": case.pe,
        "VECTORS": vectors.shape[1], "IN_BITS": 8, "W_BITS": 8, "BIAS_BITS": b_fmt.width,
        "BIAS_SHIFT": bias_shift, "ACC_BITS": bits_for_signed(acc_bound),
        "SHIFT": acc_frac - out_fmt.frac, "OUT_BITS": out_fmt.width,
    }
    out = paths.BUILD / "sim" / simulator() / "sqz_mvu_data" / case.name
    out.mkdir(parents=True, exist_ok=True)
    if case.share_bits:
        w_file = pack_indices_hex(idx.reshape(-1, case.n_out), case.simd, case.pe,
                                  case.share_bits, out / "w.hex")
        cb_file = pack_codebook_hex(codebook, case.share_bits, 8, out / "cb.hex")
        params["SHARE_BITS"] = case.share_bits
        params["CODEBOOK_FILE"] = f'"{cb_file}"'
    else:
        w_file = pack_weights_hex(wmat, case.simd, case.pe, out / "w.hex")
    if case.dsp_pack:
        params["DSP_PACK"] = case.dsp_pack
    b_file = pack_bias_hex(b_q, case.pe, b_fmt.width, out / "b.hex")
    params["WEIGHT_FILE"] = f'"{w_file}"'
    params["BIAS_FILE"] = f'"{b_file}"'
    data = out / "data.npz"
    np.savez(data, vectors=vectors, expected=expected)
    return params, data


def _run(params: dict, data: Path, testcase: str | None = None) -> None:
    run_cocotb("sqz_mvu", rtl_sources("sqz_mvu", "sqz_fifo"), params, "sim.test_sqz_mvu",
               data={"vectors": str(data)}, testcase=testcase)


def _missing_dir() -> Path:
    return paths.BUILD / "sim" / simulator() / "sqz_mvu_data" / "missing"


# the two longest cases run in make test-all (CI time)
SLOW_CASES = ("parallel", "pack_long")


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow)
                                  if c.name in SLOW_CASES else c for c in CASES],
                         ids=[c.name for c in CASES])
def test_sqz_mvu(case):
    _run(*prepare(case))


def test_sqz_mvu_missing_file(capfd):
    """A weight file that does not exist stops the simulation, naming the file."""
    params, data = prepare(CASES[0])
    missing = _missing_dir() / "no_such_weights.hex"
    missing.unlink(missing_ok=True)
    params["WEIGHT_FILE"] = f'"{missing}"'
    # a failed cocotb test raises SystemExit; a simulator that stops itself, RuntimeError
    with pytest.raises((SystemExit, RuntimeError)):
        _run(params, data, testcase="test_stream_rate")
    out = capfd.readouterr()
    assert f"sqz_mvu: cannot open WEIGHT_FILE {missing}" in out.out + out.err


def test_sqz_mvu_dsp_pack_needs_even_pe(capfd):
    """DSP_PACK = 1 with an odd PE stops the simulation at start-up, with the values."""
    case = next(c for c in CASES if c.name == "pw64")      # PE 3
    params, data = prepare(case)
    params["DSP_PACK"] = 1
    with pytest.raises((SystemExit, RuntimeError)):
        _run(params, data, testcase="test_stream_rate")
    out = capfd.readouterr()
    assert ": DSP_PACK = 1 needs an even PE (3), IN_BITS, W_BITS <= 8 (8, 8)" in out.out + out.err


def test_sqz_mvu_missing_codebook(capfd):
    """A shared layer whose codebook file does not exist stops, naming the file."""
    params, data = prepare(next(c for c in CASES if c.name == "shared2"))
    missing = _missing_dir() / "no_such_codebook.hex"
    missing.unlink(missing_ok=True)
    params["CODEBOOK_FILE"] = f'"{missing}"'
    with pytest.raises((SystemExit, RuntimeError)):
        _run(params, data, testcase="test_stream_rate")
    out = capfd.readouterr()
    assert f"sqz_mvu: cannot open CODEBOOK_FILE {missing}" in out.out + out.err
