"""Every RTL module, and the generated tops, are clean under ``verilator --lint-only -Wall``.

The cocotb builds pass ``-Wno-fatal`` (cocotb's own harness needs it), so a warning there
would go unnoticed; this test fails on any ``%Warning`` or ``%Error`` line.
"""

from __future__ import annotations

import subprocess

import pytest

from model.paths import HLS_PROJECT_NAME
from sim.runner import RTL, ensure_simulator

pytestmark = pytest.mark.rtl

MODULES = {
    "sqz_fifo": [], "sqz_fork": [], "sqz_concat": [], "sqz_dwc": [], "sqz_window": [],
    "sqz_maxpool": [], "sqz_gap": [], "sqz_mvu": ["sqz_fifo"], "sqz_axi_shell": [],
}


def lint(files: list, top: str, params: dict | None = None) -> str:
    ensure_simulator("verilator")
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", top]
    cmd += [f"-G{k}={v}" for k, v in (params or {}).items()]
    run = subprocess.run(cmd + [str(f) for f in files], capture_output=True, text=True,
                         check=False, timeout=300)
    return run.stdout + run.stderr


@pytest.mark.parametrize("params", [
    {}, {"SHARE_BITS": 4}, {"SHARE_BITS": 2, "PE": 1}, {"DSP_PACK": 1},
    {"DSP_PACK": 1, "SHARE_BITS": 4}, {"DSP_PACK": 1, "SIMD": 1, "PE": 4},
    {"DSP_PACK": 1, "IN_BITS": 4, "W_BITS": 3},
], ids=["dense", "shared4", "shared2", "packed", "packed_shared4", "packed_simd1",
        "packed_narrow"])
def test_mvu_lint_clean(params):
    out = lint([RTL / "sqz_mvu.v", RTL / "sqz_fifo.v"], "sqz_mvu", params)
    assert "%Warning" not in out and "%Error" not in out, out


@pytest.mark.parametrize("module", [m for m in MODULES if m != "sqz_mvu"])
def test_module_lint_clean(module):
    files = [RTL / f"{module}.v"] + [RTL / f"{d}.v" for d in MODULES[module]]
    out = lint(files, module)
    assert "%Warning" not in out and "%Error" not in out, out


@pytest.mark.parametrize("config", ["tiny.yaml", "tiny_shared.yaml"])
def test_generated_top_lint_clean(config, tmp_path):
    from hls.plan.prepare import prepare
    from hls.rtl.generate import generate_rtl
    from model.paths import REPO
    from model.spec import load_spec

    prep = prepare(load_spec(REPO / "configs" / config), log=lambda *a: None)
    design = generate_rtl("sqz_lint_top", prep.nodes, prep.plan, prep.folding, tmp_path)
    out = lint(design.sources() + [tmp_path / "sqz_lint_top.v"], "sqz_lint_top")
    assert "%Warning" not in out and "%Error" not in out, out


@pytest.mark.parametrize("params", [
    {"FRAME_BYTES": 154587, "CLASSES": 1000, "CORE_LANES": 1000},
    {"CLASSES": 10, "CORE_LANES": 5, "FIELD_BITS": 8, "SCORE_BITS": 7, "SCORE_SIGNED": 1},
    {"PIX_BYTES": 1, "FRAME_BYTES": 784, "FIELD_BITS": 32, "SCORE_BITS": 20, "FLIGHT": 2},
    {"PIX_BYTES": 8, "FRAME_BYTES": 64, "CLASSES": 2, "CORE_LANES": 2},
], ids=["v1_1", "odd_lanes_signed8", "one_byte_pixels_32", "wide_pixels"])
def test_axi_shell_lint_clean(params):
    """The AXI shell's other generate branches: a 1000-lane core beat, chunks shared by
    two output beats, sign extension, 32-bit fields, 8-byte pixels."""
    out = lint([RTL / "sqz_axi_shell.v"], "sqz_axi_shell", params)
    assert "%Warning" not in out and "%Error" not in out, out


def test_axi_top_lint_clean(tmp_path):
    """The AXI top hls/rtl/axi.py renders around the tiny network's core."""
    from hls.plan.prepare import prepare
    from hls.rtl.axi import generate_axi_top
    from hls.rtl.generate import generate_rtl
    from model.paths import REPO
    from model.spec import load_spec

    prep = prepare(load_spec(REPO / "configs" / "tiny.yaml"), log=lambda *a: None)
    design = generate_rtl("sqz_lint_top", prep.nodes, prep.plan, prep.folding, tmp_path)
    axi = generate_axi_top(design, prep, tmp_path)
    assert axi.module == "sqz_lint_top_axi"
    out = lint(axi.sources, axi.module)
    assert "%Warning" not in out and "%Error" not in out, out


def test_lint_reports_a_warning(tmp_path):
    """The check can fail: an unused input is a -Wall warning."""
    bad = tmp_path / "bad.v"
    bad.write_text("module bad (input wire a, output wire y);\nassign y = 1'b0;\nendmodule\n")
    assert "%Warning-UNUSED" in lint([bad], "bad")


@pytest.mark.parametrize("style", ["vitis", "vivado"])
def test_vendor_adapter_lint_clean(style, tmp_path):
    """The adapter hls/vendor_rtl.py writes, around a vendor-style stand-in of the tiny top."""
    from hls.plan.prepare import prepare
    from hls.rtl.generate import generate_rtl
    from hls.rtl.vendor import write_adapter
    from model.paths import REPO
    from model.spec import load_spec
    from sim.vendor_mock import mock_vendor_top

    prep = prepare(load_spec(REPO / "configs" / "tiny.yaml"), log=lambda *a: None)
    design = generate_rtl("sqz_lint_top", prep.nodes, prep.plan, prep.folding, tmp_path)
    bits = prep.plan.layers[prep.nodes[-1].name].out_fmt.width
    mock = tmp_path / "squeezenet.v"
    mock.write_text(mock_vendor_top(style, "sqz_lint_top", prep.spec.classes, bits))
    wrapper = write_adapter([mock], HLS_PROJECT_NAME, "sqz_wrap", tmp_path, 3, 8,
                            prep.spec.classes, bits)
    out = lint(design.sources() + [tmp_path / "sqz_lint_top.v", mock, wrapper], "sqz_wrap")
    assert "%Warning" not in out and "%Error" not in out, out
