"""Yosys synth_xilinx maps the RTL the way the design intends: weight ROMs to block RAM,
multipliers to DSP slices (counts read from ``stat -json``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hls.plan.parts import part_info
from hls.rtl.mem import pack_bias_hex, pack_codebook_hex, pack_indices_hex, pack_weights_hex
from hls.rtl.yosys import parse_stat_json, synthesize
from sim.runner import RTL

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(shutil.which("yosys") is None,
                                 reason="yosys not on PATH (apt-get install yosys)")]

TOP = """`default_nettype none
module mvu_top (input wire clk, input wire rst,
    input wire [{xw}:0] s_axis_tdata, input wire s_axis_tvalid, output wire s_axis_tready,
    output wire [{yw}:0] m_axis_tdata, output wire m_axis_tvalid, input wire m_axis_tready,
    output wire m_axis_tlast);
sqz_mvu #(.N_IN({n_in}), .N_OUT({n_out}), .SIMD({simd}), .PE({pe}), .VECTORS(64),
    .BIAS_BITS(16), .BIAS_SHIFT(0), .ACC_BITS(26), .SHIFT(8),
    .WEIGHT_FILE("{wf}"), .BIAS_FILE("{bf}"){extra}) u (
    .clk(clk), .rst(rst), .s_axis_tdata(s_axis_tdata), .s_axis_tlast(1'b0),
    .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
    .m_axis_tdata(m_axis_tdata), .m_axis_tlast(m_axis_tlast),
    .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready));
endmodule
"""


N_IN, N_OUT, SIMD, PE = 144, 64, 8, 8      # a fire expand3x3-like block, folded


def _synth_mvu(work: Path, share_bits: int = 0, dsp_pack: int = 0):
    rng = np.random.default_rng(0)
    wf, bf, cf = work / "w.hex", work / "b.hex", work / "cb.hex"
    extra = f", .DSP_PACK({dsp_pack})" if dsp_pack else ""
    if share_bits:
        pack_indices_hex(rng.integers(0, 1 << share_bits, (N_IN, N_OUT)), SIMD, PE,
                         share_bits, wf)
        pack_codebook_hex(rng.integers(-128, 128, 1 << share_bits), share_bits, 8, cf)
        extra += f', .SHARE_BITS({share_bits}), .CODEBOOK_FILE("{cf}")'
    else:
        pack_weights_hex(rng.integers(-128, 128, (N_IN, N_OUT)), SIMD, PE, wf)
    pack_bias_hex(rng.integers(-1000, 1000, N_OUT), PE, 16, bf)
    top = work / "mvu_top.v"
    top.write_text(TOP.format(xw=8 * SIMD - 1, yw=8 * PE - 1, n_in=N_IN, n_out=N_OUT,
                              simd=SIMD, pe=PE, wf=wf, bf=bf, extra=extra))
    res = synthesize([RTL / "sqz_mvu.v", RTL / "sqz_fifo.v", top], "mvu_top",
                     "xczu9eg-ffvb1156-2-e", work / "yosys")
    print(f"\nsqz_mvu {N_IN}x{N_OUT}, SIMD {SIMD} x PE {PE}, SHARE_BITS {share_bits}, "
          f"DSP_PACK {dsp_pack}:\n"
          + res.format(part_info("xczu9eg")))
    return res


@pytest.fixture(scope="module")
def dense_mvu(tmp_path_factory):
    return _synth_mvu(tmp_path_factory.mktemp("dense"))


@pytest.fixture(scope="module")
def shared_mvu(tmp_path_factory):
    return _synth_mvu(tmp_path_factory.mktemp("shared"), share_bits=4)


def test_mvu_maps_weights_to_bram_and_multipliers_to_dsp(dense_mvu):
    assert dense_mvu.dsp == PE * SIMD
    # ROM: 144*64/64 = 144 words of 512 bits -> at least ceil(512/36) = 15 BRAM18
    assert dense_mvu.bram18 + 2 * dense_mvu.bram36 >= 15


def test_shared_weights_shrink_block_ram(dense_mvu, shared_mvu):
    """4-bit indices: the ROM is 144 x 256 bits (>= 8 BRAM18), fewer BRAM than 8-bit
    weights, the codebook in logic, still one DSP per multiplier."""
    shared = shared_mvu
    dense_blocks = dense_mvu.bram18 + 2 * dense_mvu.bram36
    shared_blocks = shared.bram18 + 2 * shared.bram36
    print(f"BRAM18 equivalents: {dense_blocks} with 8-bit weights, {shared_blocks} with "
          f"4-bit shared weights ({dense_blocks - shared_blocks} saved)")
    assert shared.dsp == PE * SIMD
    assert 8 <= shared_blocks < dense_blocks


@pytest.mark.parametrize("share_bits", [0, 4], ids=["dense", "shared4"])
@pytest.mark.slow  # CI time: runs in make test-all
def test_dsp_pack_maps_two_lanes_to_one_dsp48e2(dense_mvu, shared_mvu, share_bits, tmp_path):
    """DSP_PACK = 1: the 64 lanes (SIMD 8 x PE 8) take 32 DSP48E2, one per pair of PEs
    sharing an activation; the unpacked twin takes 64. The ROM is the same."""
    unpacked = shared_mvu if share_bits else dense_mvu
    packed = _synth_mvu(tmp_path, share_bits, dsp_pack=1)
    print(f"SHARE_BITS {share_bits}: DSP_PACK 0: {unpacked.dsp} DSP48E2, {unpacked.lut} LUT, "
          f"{unpacked.ff} FF; DSP_PACK 1: {packed.dsp} DSP48E2, {packed.lut} LUT, "
          f"{packed.ff} FF")
    assert unpacked.cells.get("DSP48E2") == PE * SIMD
    assert packed.cells.get("DSP48E2") == PE * SIMD // 2
    assert packed.dsp == PE * SIMD // 2
    assert (packed.bram18, packed.bram36) == (unpacked.bram18, unpacked.bram36)


def test_parse_stat_json_counts_cells_by_family():
    text = """{ "modules": { "\\\\top": { "num_cells_by_type": {
        "LUT2": 3, "LUT6": 4, "FDRE": 10, "FDSE": 1, "RAMB18E2": 2, "RAMB36E2": 5,
        "DSP48E2": 7, "CARRY8": 1 } } } }"""
    r = parse_stat_json(text, "top")
    assert (r.lut, r.ff, r.bram18, r.bram36, r.dsp) == (7, 11, 2, 5, 7)


def test_parse_stat_json_hierarchy_totals_despite_yosys_table():
    """``stat -top T -json`` (Yosys 0.23) prints the hierarchy table inside the JSON; the
    design totals are read, not the top module's own cells."""
    text = """{
   "modules": {
      "\\\\top": { "num_cells_by_type": { "LUT2": 1, "$paramod\\\\sqz_fifo": 2 } }
   },
       top      1
       $paramod\\\\sqz_fifo      2
      "design": { "num_cells_by_type": { "LUT2": 9, "LUT6": 4, "FDRE": 6,
          "RAMB18E2": 2, "DSP48E2": 3 } }
}"""
    r = parse_stat_json(text, "top", hierarchy=True)
    assert (r.lut, r.ff, r.bram18, r.dsp) == (13, 6, 2, 3)
    flat = parse_stat_json(text, "top")
    assert flat.lut == 1
