"""The AXI top of the tiny network (``hls.rtl.axi``: ``sqz_axi_shell`` around the generated
core) against the golden model, through cocotbext-axi agents.

One Verilator build and one simulator run (``sim.axi_bench``, four cocotb tests); the
pytest functions below read what each cocotb test measured and whether it passed: photos
bit-exact under random pauses, backpressure and null bytes (with TLAST / TKEEP placement
and every register), a short frame, long frames, a soft reset mid-frame; and the wrapped
top's cycles per frame against the core's alone (the fast C++ simulation of
``sim.fast``, whose build ``sim/test_fast_sim.py`` shares). Then the shell around a
stand-in core that takes a pixel every cycle (``STAND_IN``): the full input rate and the
serialiser modes the tiny core does not use, among them the v1.1 network's 1000-lane beat.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

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
    spec, _design, vectors, axi = tiny_axi
    result = vectors.parent / "result_axi.json"
    result.unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIM", "verilator")   # ~250k cycles: Icarus would take minutes
        outcome = _run(axi.module, axi.sources, {}, "axi", _bench_data(axi), COCOTB_TESTS,
                       {"SQZ_VECTORS": str(vectors), "SQZ_RESULT": str(result)})
    figures = json.loads(result.read_text()) if result.exists() else {}
    return figures, outcome


def _bench_data(axi) -> dict:
    return {"frame_bytes": axi.frame_bytes, "pix_bytes": axi.pix_bytes,
            "out_bytes": axi.out_bytes, "field_bits": axi.field_bits,
            "score_bits": axi.score_bits, "score_signed": axi.score_signed,
            "classes": axi.classes, "out_format": axi.out_format}


def _run(top: str, sources: list, params: dict, build_name: str, data: dict,
         testcases, env: dict) -> dict:
    """Build and run cocotb tests of the bench; failure text (None: passed) per test."""
    from model import paths
    from sim.runner import run_cocotb, simulator

    build = paths.build_path("sim", simulator(), top, build_name)
    try:
        build = run_cocotb(top, sources, params, BENCH, build_name=build_name, data=data,
                           testcase=testcases, extra_env=env)
    except SystemExit:   # cocotb's runner exits when a test failed; results.xml says which
        pass
    outcome = {}
    xml = build / "results.xml"
    if xml.exists():
        for case in ET.parse(xml).getroot().iter("testcase"):
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            outcome[case.get("name")] = (None if bad is None
                                         else (bad.get("message") or "failed"))
    return outcome


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


# The stand-in core (sim/templates/sqz_axi_test_top.v) takes a pixel every cycle: the
# shell's full input rate, and the serialiser modes the tiny network (1-lane core beats,
# 16-bit unsigned scores) does not reach. v1_1_out: the v1.1 network's shapes, 3-byte
# pixels and one 1000-lane core beat read 4 scores a cycle. odd_signed8: 8-byte pixels
# (a whole input beat each cycle), 3-lane core beats straddling 8-score output beats, 7-bit
# signed scores in 8-bit fields, a partial last beat (9 bytes). odd_signed8 runs under
# Icarus (a second simulator for the shell, and ~1 s to compile where Verilator takes
# ~10 s; Icarus takes longer than Verilator on the 1000-lane top). 1-byte pixels and 32-bit
# fields are linted (sim/test_lint.py), not simulated.
STAND_IN = {
    "v1_1_out": ({"FRAME_BYTES": 768, "PIX_BYTES": 3, "CLASSES": 1000, "CORE_LANES": 1000,
                  "SCORE_BITS": 16, "SCORE_SIGNED": 0}, "verilator"),
    "odd_signed8": ({"FRAME_BYTES": 320, "PIX_BYTES": 8, "CLASSES": 9, "CORE_LANES": 3,
                     "SCORE_BITS": 7, "SCORE_SIGNED": 1}, "icarus"),
}


@pytest.mark.parametrize("case", list(STAND_IN))
@pytest.mark.slow  # CI time: runs in make test-all
def test_axi_shell_stand_in_core(case, tmp_path, monkeypatch):
    from hls.rtl.axi import SHELL, AxiTop, field_bits
    from sim.runner import RTL

    p, sim = STAND_IN[case]
    field = field_bits(p["SCORE_BITS"])
    top = Path(__file__).parent / "templates" / "sqz_axi_test_top.v"
    axi = AxiTop(module="sqz_axi_test_top", path=top, core="stand_in", sources=[],
                 frame_bytes=p["FRAME_BYTES"], pix_bytes=p["PIX_BYTES"],
                 out_bytes=p["CLASSES"] * field // 8, field_bits=field,
                 score_bits=p["SCORE_BITS"], score_signed=bool(p["SCORE_SIGNED"]),
                 classes=p["CLASSES"], core_lanes=p["CORE_LANES"])
    result = tmp_path / "result.json"
    monkeypatch.setenv("SIM", sim)
    outcome = _run(axi.module, [RTL / f"{SHELL}.v", top], {**p, "FIELD_BITS": field},
                   f"stand_in_{case}", _bench_data(axi), "test_stand_in_core",
                   {"SQZ_RESULT": str(result)})
    figures = json.loads(result.read_text()) if result.exists() else {}
    assert outcome.get("test_stand_in_core", "did not run") is None, outcome
    fig = figures["stand_in"]
    print(f"\n{case}: {fig['compared']} outputs compared, {fig['mismatches']} mismatches; the "
          f"core's input: {fig['core_starved_cycles']} cycles ready without a pixel, "
          f"{fig['core_longest_run']} pixels on consecutive cycles "
          f"({fig['frame_pixels']} per frame)")
    assert fig["mismatches"] == 0 and fig["compared"] == 5 * p["CLASSES"]


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
