"""Throughput debugging for the generated top (``sqz rtl-debug``; pytest collects nothing here).

``rtl_debug`` generates the spec's RTL and renders a copy of the top with the debug
counters of ``firmware/rtl/sqz_top.v.j2`` (``debug_counters``: per stream edge, cycles with
valid & ready, valid & !ready = producer blocked, !valid & ready = consumer starved; per
MVU: issue cycles, cycles starved of input, cycles held by the output credit; per window:
issue cycles and cycles waiting for input rows), runs the frames back to back without
stalls under the cocotb test ``dbg_frames`` below, snapshots every counter at each frame's
last output beat and prints the counts between two snapshots (one frame at steady state),
in pipeline order.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import cocotb
from cocotb.triggers import RisingEdge

from sim.network_bench import NetworkTB

COUNTER_PREFIX = "dbg_"


@cocotb.test()
async def dbg_frames(dut):
    """All frames back to back, no stalls; counters snapshotted at each frame end."""
    handles = [(str(name), h) for name, h in dut._items()
               if str(name).startswith(COUNTER_PREFIX)]
    tb = NetworkTB(dut, stalls=False)
    await tb.reset()
    cocotb.start_soon(tb.sink.run())
    n = len(tb.pixels)
    tb.feed_all()
    snaps = []
    done = 0
    per = tb.beats_per_frame()
    while done < n:
        await RisingEdge(dut.clk)
        if len(tb.sink.words) >= (done + 1) * per:
            done += 1
            snaps.append({k: int(h.value) for k, h in handles})
    compared, mismatches = tb.check(list(range(n)))
    Path(os.environ["SQZ_DBG_OUT"]).write_text(json.dumps(
        {"snaps": snaps, "out_cycles": tb.out_cycles, "mismatches": mismatches,
         "compared": compared}))
    assert mismatches == 0


def rtl_debug(config: Path, frames: int = 3, all_edges: bool = False,
              interval: int | None = None) -> bool:
    """``sqz rtl-debug``: print frame-end cycles, then per stream edge the transfer, blocked,
    starved and idle cycles of one frame interval (only edges that stall unless
    ``all_edges``), then per MVU and window block its issue and wait cycles beside the
    folding's cycle model. ``interval`` picks the interval between frame ends (0 = the
    first; default: one before the last, which drains an idle pipeline). True when the
    class scores matched the golden model."""
    from hls.rtl.generate import render_top
    from model.spec import load_spec
    from sim.network import prepare_network, rtl_dir
    from sim.runner import run_cocotb

    spec = load_spec(config)
    prep, design, vectors = prepare_network(spec, frames=frames)
    out = rtl_dir(spec) / "dbg"
    out.mkdir(parents=True, exist_ok=True)
    top_file = out / f"{design.top}.v"
    top_file.write_text(render_top(design, prep.nodes, prep.plan,
                                   source=f"{spec.name} ({spec.variant}), debug counters",
                                   debug_counters=True))
    result = out / "dbg.json"
    result.unlink(missing_ok=True)
    run_cocotb(design.top, design.sources() + [top_file], {}, "sim.debug_throughput",
               testcase="dbg_frames", build_name=f"{spec.name}_dbg",
               extra_env={"SQZ_VECTORS": str(vectors), "SQZ_DBG_OUT": str(result)})
    res = json.loads(result.read_text())
    snaps = res["snaps"]
    ends = [sn["dbg_cycles"] for sn in snaps]
    print(f"frame ends (cycles after reset): {ends}; between them: "
          f"{[b - a for a, b in itertools.pairwise(ends)]}; "
          f"mismatches {res['mismatches']} of {res['compared']}")
    k = interval if interval is not None else max(0, (len(snaps) - 2) // 2)
    a = snaps[k] if len(snaps) > 1 else {key: 0 for key in snaps[0]}
    b = snaps[k + 1] if len(snaps) > 1 else snaps[0]
    d = {key: b[key] - a[key] for key in b}
    cyc = d["dbg_cycles"]
    print(f"counts between frame ends {k} and {k + 1}: {cyc} cycles")
    streams = ["s_axis"] + [w.name for w in design.wires] + ["m_axis"]
    print(f"{'edge':42s} {'xfer':>8s} {'blocked':>8s} {'starved':>8s} {'idle':>8s}")
    for s in streams:
        x, bl, st = d[f"dbg_{s}_xfer"], d[f"dbg_{s}_blk"], d[f"dbg_{s}_stv"]
        if all_edges or bl or st < cyc - x:
            print(f"{s:42s} {x:8d} {bl:8d} {st:8d} {cyc - x - bl - st:8d}")
    print(f"\n{'block':34s} {'issue':>8s} {'no_input':>8s} {'cred/rows':>9s} {'model':>8s}")
    for inst in design.instances:
        i = inst.name
        if inst.module == "sqz_mvu":
            model = prep.folding[i[len("mvu_"):]].cycles
            print(f"{i:34s} {d[f'dbg_{i}_issue']:8d} {d[f'dbg_{i}_nin']:8d} "
                  f"{d[f'dbg_{i}_cred']:9d} {model:8d}")
        elif inst.module == "sqz_window":
            print(f"{i:34s} {d[f'dbg_{i}_issue']:8d} {'':8s} {d[f'dbg_{i}_rows']:9d}")
    return res["mismatches"] == 0
