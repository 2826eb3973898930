"""Yosys synth_xilinx maps the RTL the way the design intends: weight ROMs to block RAM,
multipliers to DSP slices (counts read from ``stat -json``)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hls.memory import part_info
from hls.rtl_mem import pack_bias_hex, pack_weights_hex
from hls.rtl_synth import parse_stat_json, synthesize
from sim.runner import RTL

pytestmark = pytest.mark.skipif(shutil.which("yosys") is None,
                                reason="yosys not on PATH (apt-get install yosys)")

TOP = """`default_nettype none
module mvu_top (input wire clk, input wire rst,
    input wire [{xw}:0] s_axis_tdata, input wire s_axis_tvalid, output wire s_axis_tready,
    output wire [{yw}:0] m_axis_tdata, output wire m_axis_tvalid, input wire m_axis_tready,
    output wire m_axis_tlast);
sqz_mvu #(.N_IN({n_in}), .N_OUT({n_out}), .SIMD({simd}), .PE({pe}), .VECTORS(64),
    .BIAS_BITS(16), .BIAS_SHIFT(0), .ACC_BITS(26), .SHIFT(8),
    .WEIGHT_FILE("{wf}"), .BIAS_FILE("{bf}")) u (
    .clk(clk), .rst(rst), .s_axis_tdata(s_axis_tdata), .s_axis_tlast(1'b0),
    .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
    .m_axis_tdata(m_axis_tdata), .m_axis_tlast(m_axis_tlast),
    .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready));
endmodule
"""


def test_mvu_maps_weights_to_bram_and_multipliers_to_dsp(tmp_path):
    n_in, n_out, simd, pe = 144, 64, 8, 8      # a fire expand3x3-like block, folded
    rng = np.random.default_rng(0)
    wf, bf = tmp_path / "w.hex", tmp_path / "b.hex"
    pack_weights_hex(rng.integers(-128, 128, (n_in, n_out)), simd, pe, wf)
    pack_bias_hex(rng.integers(-1000, 1000, n_out), pe, 16, bf)
    top = tmp_path / "mvu_top.v"
    top.write_text(TOP.format(xw=8 * simd - 1, yw=8 * pe - 1, n_in=n_in, n_out=n_out,
                              simd=simd, pe=pe, wf=wf, bf=bf))
    res = synthesize([RTL / "sqz_mvu.v", RTL / "sqz_fifo.v", top], "mvu_top", "xczu9eg-ffvb1156-2-e",
                     tmp_path / "yosys")
    print("\n" + res.format(part_info("xczu9eg")))
    assert res.dsp == pe * simd
    # ROM: 144*64/64 = 144 words of 512 bits -> at least ceil(512/36) = 15 BRAM18
    assert res.bram18 + 2 * res.bram36 >= 15


def test_parse_stat_json_counts_cells_by_family():
    text = """{ "modules": { "\\\\top": { "num_cells_by_type": {
        "LUT2": 3, "LUT6": 4, "FDRE": 10, "FDSE": 1, "RAMB18E2": 2, "RAMB36E2": 5,
        "DSP48E2": 7, "CARRY8": 1 } } } }"""
    r = parse_stat_json(text, "top")
    assert (r.lut, r.ff, r.bram18, r.bram36, r.dsp) == (7, 11, 2, 5, 7)
