"""Each RTL generation pass alone (``hls.rtl.passes``) on the tiny network's graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from hls.plan.prepare import prepare
from hls.plan.streams import stream_lanes
from hls.rtl import passes
from model.paths import CONFIGS
from model.spec import load_spec


@pytest.fixture(scope="module")
def prep():
    return prepare(load_spec(CONFIGS / "tiny.yaml"), log=lambda *a: None)


def _lowered(prep):
    return passes.lower("top", prep.nodes, prep.plan, prep.folding, prep.fifo, Path("/mem"))


def _reader_counts(d):
    return {s: len(d.readers(s)) for s in d.streams}


def test_lower_makes_the_layer_blocks_only(prep):
    d = _lowered(prep)
    modules = [i.module for i in d.instances]
    assert not {"sqz_fifo", "sqz_fork", "sqz_dwc"} & set(modules)
    convs = [n for n in prep.nodes if n.kind == "conv"]
    windows = [n for n in convs if n.kernel > 1 or n.stride > 1 or n.pad]
    assert modules.count("sqz_mvu") == len(convs)
    assert modules.count("sqz_window") == len(windows)
    assert modules.count("sqz_maxpool") == sum(n.kind == "maxpool" for n in prep.nodes)
    assert modules.count("sqz_concat") == sum(n.kind == "concat" for n in prep.nodes)
    mvus = [i.layer for i in d.instances if i.module == "sqz_mvu"]
    assert mvus == [n.name for n in convs]  # graph order kept
    lanes = stream_lanes(prep.nodes, prep.folding)
    for inst in d.instances:
        if inst.module in ("sqz_mvu", "sqz_maxpool", "sqz_concat", "sqz_gap"):
            out = d.streams[inst.outputs["m_axis"]]
            assert out.lanes == lanes[inst.layer], inst.name
    # every squeeze output is read twice (the two expands) before forks exist
    squeezes = [n.name for n in convs if n.name.endswith("squeeze1x1")]
    twice = {d.by_name(f"mvu_{s}").outputs["m_axis"] for s in squeezes}
    assert all(len(d.readers(s)) == 2 for s in twice)
    assert d.streams[d.out_stream].pixels == 1


def test_insert_fifos_puts_each_planned_fifo_on_its_edge(prep):
    d = passes.insert_fifos(_lowered(prep), prep.fifo)
    fifos = {i.name: i for i in d.instances if i.module == "sqz_fifo"}
    planned = [f for f in prep.fifo.fifos if f.kind != "mvu"]
    assert len(fifos) == len(planned)
    for f in planned:
        name = f"fifo_{f.producer}" if f.kind == "output" else f"fifo_{f.consumer}_in"
        assert fifos[name].params["DEPTH"] == f.beats
    # the output FIFO takes over all readers of the layer's stream
    mvu = d.by_name("mvu_fire2_squeeze1x1")
    assert [i.name for i, _ in d.readers(mvu.outputs["m_axis"])] == ["fifo_fire2_squeeze1x1"]
    # the branch FIFO feeds expand1x1 and reads the same stream as expand3x3's window
    branch = fifos["fifo_fire2_expand1x1_in"]
    readers = [i.name for i, _ in d.readers(branch.inputs["s_axis"])]
    assert readers == ["fifo_fire2_expand1x1_in", "win_fire2_expand3x3"]


def test_insert_forks_leaves_one_reader_per_stream(prep):
    d = passes.insert_fifos(_lowered(prep), prep.fifo)
    before = sum(1 for n in _reader_counts(d).values() if n == 2)
    d = passes.insert_forks(d)
    assert max(_reader_counts(d).values()) == 1
    forks = [i for i in d.instances if i.module == "sqz_fork"]
    assert len(forks) == before
    # the first reader in graph order takes m_axis
    f = d.by_name("fork_fire2_squeeze1x1")
    assert d.readers(f.outputs["m_axis"])[0][0].name == "fifo_fire2_expand1x1_in"
    assert d.readers(f.outputs["m_axis_b"])[0][0].name == "win_fire2_expand3x3"


def test_insert_dwcs_matches_every_input_to_its_lanes(prep):
    d = passes.insert_forks(passes.insert_fifos(_lowered(prep), prep.fifo))
    mismatched = sum(1 for i in d.instances for p, need in i.needs.items()
                     if d.streams[i.inputs[p]].lanes != need)
    d = passes.insert_dwcs(d)
    dwcs = [i for i in d.instances if i.module == "sqz_dwc"]
    assert len(dwcs) == mismatched
    for i in d.instances:
        for p, need in i.needs.items():
            assert d.streams[i.inputs[p]].lanes == need, (i.name, p)
    for c in dwcs:
        s_in, s_out = d.streams[c.inputs["s_axis"]], d.streams[c.outputs["m_axis"]]
        assert (c.params["IN_LANES"], c.params["OUT_LANES"]) == (s_in.lanes, s_out.lanes)


def test_insert_dwcs_refuses_lanes_that_do_not_divide():
    d = passes.RtlDesign("t")
    d.streams["a"] = passes.Stream("a", 3, 8, 6, 4)
    d.streams["b"] = passes.Stream("b", 2, 8, 6, 4)
    d.instances.append(passes.Instance("sqz_mvu", "mvu_x", "", "x", {}, {"s_axis": "a"},
                                       {"m_axis": "b"}, {"s_axis": 2}))
    with pytest.raises(ValueError, match="x: cannot convert 3 lanes to 2 lanes"):
        passes.insert_dwcs(d)


def test_gap_accumulator_is_wider_than_its_input_even_for_one_pixel():
    assert passes.gap_acc_bits(1) == 9
    assert passes.gap_acc_bits(2) == 9
    assert passes.gap_acc_bits(169) == 16   # 13x13: the exact sum of 169 8-bit values


def test_render_writes_every_instance_and_wire(prep, tmp_path):
    from hls.rtl.generate import generate_rtl

    d = generate_rtl("sqz_t", prep.nodes, prep.plan, prep.folding, tmp_path)
    text = (tmp_path / "sqz_t.v").read_text()
    for inst in d.instances:
        assert f") {inst.name} (" in text
    for s in d.wires:
        assert f"wire [{s.width - 1}:0] {s.name}_tdata;" in text
    assert text.count("endmodule") == 1
    assert "counter" not in text  # debug counters only on request
    assert all(p.is_file() for p in d.mem_files)


def test_mvus_pack_two_lanes_per_dsp_where_the_plan_says(prep):
    d = _lowered(prep)
    mvus = [i for i in d.instances if i.module == "sqz_mvu"]
    assert any(i.params["DSP_PACK"] for i in mvus)
    for i in mvus:
        f = prep.folding[i.layer]
        assert i.params["DSP_PACK"] == int(f.pe % 2 == 0) == int(f.packed)
        assert f.dsps == (f.multipliers // 2 if f.packed else f.multipliers)


def test_no_packing_on_a_dsp48e1_part():
    from dataclasses import replace

    from hls.plan.prepare import fold
    from model.graph import build_graph

    spec = load_spec(CONFIGS / "tiny.yaml")
    small = replace(spec, target=replace(spec.target, part="xc7z020clg400-1"))
    folding = fold(small, build_graph(small))
    assert not any(f.packed for f in folding.values())
    assert all(f.dsps == f.multipliers for f in folding.values())
