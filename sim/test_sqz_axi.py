"""The AXI top of the tiny network (``hls.rtl.axi``: ``sqz_axi_shell`` around the generated
core) against the golden model, through cocotbext-axi agents.

One Verilator build and one simulator run (``sim.axi_bench``, four cocotb tests); the
pytest functions below read what each cocotb test measured and whether it passed: photos
bit-exact under random pauses, backpressure and null bytes (with TLAST / TKEEP placement
and every register), a short frame, long frames, a soft reset mid-frame; and the wrapped
top's cycles per frame against the core's alone (the fast C++ simulation of
``sim.fast``, whose build ``sim/test_fast_sim.py`` shares).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.rtl

BENCH = "sim.axi_bench"
COCOTB_TESTS = ("test_frames_and_registers", "test_short_frame", "test_long_frames",
                "test_soft_reset_mid_frame")


@pytest.fixture(scope="module")
def tiny_axi():
    from hls.rtl.axi import generate_axi_top
    from model.paths import REPO
    from model.spec import load_spec
    from sim.network import prepare_network, rtl_dir

    spec = load_spec(REPO / "configs" / "tiny.yaml")
    prep, design, vectors = prepare_network(spec)
    axi = generate_axi_top(design, prep, rtl_dir(spec))
    return spec, design, vectors, axi


@pytest.fixture(scope="module")
def axi_run(tiny_axi):
    """Build and run the bench once: (figures per cocotb test, failure text per test)."""
    from sim.runner import run_cocotb

    spec, _design, vectors, axi = tiny_axi
    result = vectors.parent / "result_axi.json"
    result.unlink(missing_ok=True)
    data = {"frame_bytes": axi.frame_bytes, "out_bytes": axi.out_bytes,
            "field_bits": axi.field_bits, "score_bits": axi.score_bits,
            "score_signed": axi.score_signed, "classes": axi.classes,
            "out_format": axi.out_format}
    try:
        build = run_cocotb(axi.module, axi.sources, {}, BENCH, build_name="axi",
                           data=data, extra_env={"SQZ_VECTORS": str(vectors),
                                                 "SQZ_RESULT": str(result)})
    except SystemExit:   # cocotb's runner exits when a test failed; results.xml says which
        from model import paths

        build = paths.build_path("sim", "verilator", axi.module, "axi")
    outcome = {}
    xml = build / "results.xml"
    if xml.exists():
        for case in ET.parse(xml).getroot().iter("testcase"):
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            outcome[case.get("name")] = (None if bad is None
                                         else (bad.get("message") or "failed"))
    figures = json.loads(result.read_text()) if result.exists() else {}
    return figures, outcome


def _passed(axi_run, test: str, key: str) -> dict:
    figures, outcome = axi_run
    assert test in outcome, f"cocotb test {test} did not run (results: {outcome})"
    assert outcome[test] is None, f"cocotb {test}: {outcome[test]}"
    fig = figures[key]
    print(f"\n{test}: {fig['compared']} outputs compared, {fig['mismatches']} mismatches")
    assert fig["mismatches"] == 0 and fig["compared"] > 0
    return fig


def test_axi_frames_and_registers(axi_run):
    """(a) + (b): 5 photos, 2 of them under stalls with null bytes; registers."""
    fig = _passed(axi_run, "test_frames_and_registers", "frames")
    print(f"frames {fig['frames']}; LAST_LATENCY {fig['last_latency']} and LAST_INTERVAL "
          f"{fig['last_interval']} cycles equal the bench's counts; back to back: output "
          f"intervals {fig['intervals_plain']}; the core's input: {fig['core_starved_cycles']} "
          f"cycles ready without a pixel, up to {fig['core_longest_run']} pixels on "
          "consecutive cycles")
    assert fig["frames"] == 5 and fig["compared"] == 50


def test_axi_short_frame(axi_run):
    _passed(axi_run, "test_short_frame", "short")


def test_axi_long_frames(axi_run):
    _passed(axi_run, "test_long_frames", "long")


def test_axi_soft_reset_mid_frame(axi_run):
    _passed(axi_run, "test_soft_reset_mid_frame", "soft_reset")


def test_axi_cycles_per_frame_equal_the_core(tiny_axi, axi_run):
    """The shell does not slow the core: back to back, the wrapped top's output interval
    equals the core's alone (the fast simulation's steady-state cycles per frame; its
    Verilator build is the one sim/test_fast_sim.py makes)."""
    from sim import fast
    from sim.network import rtl_dir

    spec, design, vectors, _axi = tiny_axi
    fig = _passed(axi_run, "test_frames_and_registers", "frames")
    core = fast.run(design.top, design.sources() + [rtl_dir(spec) / f"{design.top}.v"],
                    vectors, spec.name, stalls=False)
    print(f"cycles per frame: wrapped {fig['cycles_per_frame']}, core alone "
          f"{core['cycles_per_frame']} (fast sim {'built' if core['build_s'] else 'reused'}); "
          f"first-frame latency from an idle pipeline: wrapped {fig['first_latency_plain']}, "
          f"core {core['first_frame_latency_cycles']}")
    assert fig["cycles_per_frame"] == core["cycles_per_frame"]


def test_shell_register_defaults_match_the_map():
    """The shell's default offsets are the Python map's (the top passes them anyway)."""
    from hls.rtl.axi import ID_VALUE, REGISTERS, SHELL, VERSION_VALUE
    from sim.runner import RTL

    text = (RTL / f"{SHELL}.v").read_text()
    found = {m[0]: int(m[1], 16)
             for m in re.findall(r"parameter \[11:0\] ADDR_(\w+) = 12'h([0-9A-Fa-f]+)", text)}
    assert found == REGISTERS
    assert f"32'h{ID_VALUE:08X}" in text and f"32'h{VERSION_VALUE:08X}" in text
    offsets = list(REGISTERS.values())
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 and o < 0x1000
                                                     for o in offsets)
