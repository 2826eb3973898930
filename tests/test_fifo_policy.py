"""One FIFO policy: the RTL top, the hls4ml depth pragmas and the memory report all take
their FIFOs from ``hls.plan.streams.fifo_plan``. The checks read what each backend wrote
(the Verilog text, the hls4ml project's C++), not the generator's own data structures."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from hls.plan.prepare import prepare
from hls.plan.streams import HLS_MIN_DEPTH, fifo_plan
from hls.rtl.generate import generate_rtl
from model.builder import keras_output_name
from model.paths import CONFIGS
from model.spec import load_spec


@pytest.fixture(scope="module", params=["tiny.yaml", "tiny_shared.yaml"])
def prep(request):
    return prepare(load_spec(CONFIGS / request.param), log=lambda *a: None)


def _instances(text: str, module: str) -> dict[str, dict[str, str]]:
    """{instance name: {param: value}} of every ``module`` instance in Verilog text."""
    out = {}
    for m in re.finditer(rf"^{module} #\((.*?)\n\) (\w+) \(", text, re.M | re.S):
        out[m.group(2)] = dict(re.findall(r"\.(\w+)\(([^)]*)\)", m.group(1)))
    return out


@pytest.fixture(scope="module")
def rtl(prep, tmp_path_factory):
    out = tmp_path_factory.mktemp("rtl")
    generate_rtl("sqz_t", prep.nodes, prep.plan, prep.folding, out)
    return (out / "sqz_t.v").read_text()


def test_rtl_top_instantiates_exactly_the_planned_fifos(prep, rtl):
    fifos = _instances(rtl, "sqz_fifo")
    want = {}
    for f in prep.fifo.fifos:
        if f.kind == "output":
            want[f"fifo_{f.producer}"] = f
        elif f.kind == "branch":
            want[f"fifo_{f.consumer}_in"] = f
    assert set(fifos) == set(want)
    for name, f in want.items():
        assert int(fifos[name]["DEPTH"]) == f.beats, name
        assert int(fifos[name]["DATA_WIDTH"]) == f.width, name
        assert f.bits == prep.plan.fmt_of(f.producer).width, name
    mvus = _instances(rtl, "sqz_mvu")
    assert mvus
    for name, params in mvus.items():
        assert int(params["OUT_FIFO_DEPTH"]) == prep.fifo.mvu(name.removeprefix("mvu_")).beats
    print(f"{len(fifos)} FIFOs + {len(mvus)} MVU FIFOs in the RTL top equal the plan")


def test_memory_report_fifo_bytes_equal_the_rtl(prep, rtl):
    """sqz_fifo holds 2**clog2(DEPTH) words of RAM plus its output register (sqz_fifo.v)."""
    def words(depth: int) -> int:
        return 2 ** max(1, math.ceil(math.log2(depth))) + 1

    bits = sum(words(int(p["DEPTH"])) * int(p["DATA_WIDTH"])
               for p in _instances(rtl, "sqz_fifo").values())
    bits += sum(words(int(p["OUT_FIFO_DEPTH"])) * int(p["PE"]) * int(p["OUT_BITS"])
                for p in _instances(rtl, "sqz_mvu").values())
    reported = sum(r.bits for r in prep.memory.rows if r.kind == "fifo")
    assert reported == bits
    print(f"FIFO memory: report {reported} bits, RTL {bits} bits")


def test_branch_fifo_sits_after_the_fork_on_the_fast_branch(rtl):
    """fire2's squeeze output: output FIFO -> fork -> branch FIFO -> expand1x1."""
    forks = _instances(rtl, "sqz_fork")
    assert "fork_fire2_squeeze1x1" in forks
    m = re.search(r"\) fork_fire2_squeeze1x1 \((.*?)\n\);", rtl, re.S)
    outs = re.findall(r"\.m_axis(?:_b)?_tdata\((\w+)_tdata\)", m.group(1))
    m = re.search(r"\) fifo_fire2_expand1x1_in \((.*?)\n\);", rtl, re.S)
    fifo_in = re.search(r"\.s_axis_tdata\((\w+)_tdata\)", m.group(1)).group(1)
    assert fifo_in in outs


def test_plan_rules_on_the_full_v11():
    from hls.plan.folding import choose_folding
    from model.graph import build_graph
    from model.spec import spec_from_dict

    nodes = build_graph(spec_from_dict({"weights": "random"}))
    fold = choose_folding(nodes, 300_000)
    plan = fifo_plan(nodes, fold)
    by = {n.name: n for n in nodes}
    assert not any(f.producer == nodes[-1].name and f.kind == "output" for f in plan.fifos)
    for f in plan.fifos:
        if f.kind == "output":
            n = by[f.producer]
            bpp = -(-n.out_shape[2] // f.lanes)
            assert f.beats == f.pixels * bpp and f.beats >= 4
            if n.kind == "maxpool":
                assert f.pixels == n.out_shape[1]  # one output row
        if f.kind == "mvu":
            simd = fold[f.producer].simd
            assert f.beats >= math.ceil(math.log2(simd)) + 8 and f.beats & (f.beats - 1) == 0
    branches = [f for f in plan.fifos if f.kind == "branch"]
    assert [f.consumer for f in branches] == [f"fire{i}_expand1x1" for i in range(2, 10)]


def test_bypass_add_buffers_the_direct_edge():
    """A bypass (add) joins the Fire input with the Fire output: the direct edge is fast."""
    from hls.plan.folding import choose_folding
    from model.graph import build_graph
    from model.spec import spec_from_dict

    nodes = build_graph(spec_from_dict({"weights": "random", "bypass": "simple"}))
    plan = fifo_plan(nodes, choose_folding(nodes, 300_000))
    adds = [n for n in nodes if n.kind == "add"]
    assert adds
    for a in adds:
        f = plan.branch(a.inputs[0], a.name)
        assert f is not None and f.pixels == 2 * (a.out_shape[1] + 2) + 3 + 10


@pytest.mark.csim
def test_hls4ml_depth_pragmas_equal_the_plan(prep, tmp_path):
    """The written hls4ml project's ``#pragma HLS STREAM ... depth=`` lines."""
    from hls.hls4ml_backend.convert import PROJECT_NAME
    from hls.hls4ml_backend.csim import build_project

    _, hls_model = build_project(prep, out_dir=tmp_path / "prj", compile_=False,
                                 log=lambda *a: None)
    text = (tmp_path / "prj" / "firmware" / f"{PROJECT_NAME}.cpp").read_text()
    pragmas = {v: int(d) for v, d in
               re.findall(r"#pragma HLS STREAM variable=(\w+) depth=(\d+)", text)}
    assert pragmas
    want = {}
    for n in prep.nodes[:-1]:
        var = hls_model.graph[keras_output_name(n)].get_output_variable().name
        want[var] = prep.fifo.output(n.name).hls_depth
    for f in prep.fifo.fifos:
        if f.kind != "branch":
            continue
        producer = next(n for n in prep.nodes if n.name == f.producer)
        clone = hls_model.graph[f"clone_{keras_output_name(producer)}"]
        # the copy read by the branch's consumer (directly or through its padding layer)
        for out in clone.outputs:
            readers = [ly for ly in hls_model.get_layers() if out in ly.inputs]
            if any(ly.name in (f.consumer, f"zp2d_{f.consumer}") for ly in readers):
                want[clone.get_output_variable(out).name] = f.hls_depth
    assert set(want) <= set(pragmas)
    for var, depth in pragmas.items():
        assert depth == want.get(var, HLS_MIN_DEPTH), var
    print(f"{len(pragmas)} hls4ml stream pragmas equal the plan "
          f"({sum(1 for v in pragmas if v in want)} planned FIFOs)")


def test_fifo_words_match_sqz_fifo_rule():
    from hls.plan.streams import sqz_fifo_words

    for depth, words in ((2, 3), (3, 5), (4, 5), (5, 9), (16, 17), (17, 33), (1000, 1025)):
        assert sqz_fifo_words(depth) == words


def test_rtl_library_sqz_fifo_states_the_rule():
    """The rule the plan uses is the one sqz_fifo.v documents (guards against drift)."""
    from model.paths import RTL_DIR

    text = Path(RTL_DIR / "sqz_fifo.v").read_text()
    assert "2**clog2(DEPTH) + 1 words" in text
