"""Throughput debugging for the generated top (not a test: pytest does not collect it).

``python -m sim.debug_throughput --config SPEC [--frames N]`` generates the spec's RTL,
adds counters to a copy of the top (per stream edge: cycles with valid & ready, valid &
!ready = producer blocked, !valid & ready = consumer starved; per MVU: issue cycles,
cycles starved of input, cycles held by the output credit; per window: issue cycles and
cycles waiting for input rows), runs the frames back to back without stalls, snapshots
every counter at each frame's last output beat and prints the counts between the last two
snapshots (one frame at steady state), in pipeline order.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

import cocotb
from cocotb.triggers import RisingEdge

COUNTER_BITS = 40


def _instrument(text: str, design) -> tuple[str, list[tuple[str, str]]]:
    """The top with counters before ``endmodule``; returns (text, [(counter, meaning)])."""
    lines = []
    names: list[tuple[str, str]] = []

    def counter(name: str, cond: str, meaning: str) -> None:
        lines.append(f"reg [{COUNTER_BITS - 1}:0] {name};")
        lines.append(f"always @(posedge clk) if (rst) {name} <= {COUNTER_BITS}'d0; "
                     f"else if ({cond}) {name} <= {name} + {COUNTER_BITS}'d1;")
        names.append((name, meaning))

    streams = ["s_axis"] + [w.name for w in design.wires] + ["m_axis"]
    for s in streams:
        v, r = f"{s}_tvalid", f"{s}_tready"
        counter(f"dbg_{s}_xfer", f"{v} && {r}", f"{s}:xfer")
        counter(f"dbg_{s}_blk", f"{v} && !{r}", f"{s}:blocked")
        counter(f"dbg_{s}_stv", f"!{v} && {r}", f"{s}:starved")
    for inst in design.instances:
        if inst.module == "sqz_mvu":
            i = inst.name
            counter(f"dbg_{i}_issue", f"{i}.issue", f"{i}:issue")
            counter(f"dbg_{i}_nin", f"{i}.nf_zero && {i}.step_ok && !{i}.s_axis_tvalid",
                    f"{i}:no_input")
            counter(f"dbg_{i}_cred", f"!{i}.step_ok", f"{i}:credit_full")
        elif inst.module == "sqz_window":
            i = inst.name
            counter(f"dbg_{i}_issue", f"{i}.issue", f"{i}:issue")
            counter(f"dbg_{i}_rows", f"{i}.room && !{i}.row_open_reg && "
                    f"{i}.have_hi < {i}.need_hi", f"{i}:wait_rows")
    counter("dbg_cycles", "1'b1", "cycles")
    block = "\n// ---- debug counters (sim/debug_throughput.py)\n" + "\n".join(lines) + "\n"
    idx = text.rindex("endmodule")
    return text[:idx] + block + text[idx:], names


@cocotb.test()
async def dbg_frames(dut):
    """All frames back to back, no stalls; counters snapshotted at each frame end."""
    from sim.test_network import TB

    names = json.loads(Path(os.environ["SQZ_DBG_NAMES"]).read_text())
    handles = [(n, getattr(dut, n)) for n, _ in names]
    tb = TB(dut, stalls=False)
    await tb.reset()
    cocotb.start_soon(tb.sink.run())
    n = len(tb.pixels)

    async def feed():
        for i in range(n):
            await tb.source.send(*tb.frame_beats(i))

    cocotb.start_soon(feed())
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.debug_throughput", description=__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--all", action="store_true", help="print every edge, not only "
                        "those with stalls")
    parser.add_argument("--interval", type=int, default=None,
                        help="which interval between frame ends to show (0 = first)")
    args = parser.parse_args(argv)

    from model.spec import load_spec
    from sim.network import prepare_network, rtl_dir
    from sim.runner import run_cocotb

    spec = load_spec(args.config)
    prep, design, vectors = prepare_network(spec, frames=args.frames)
    out = rtl_dir(spec) / "dbg"
    out.mkdir(parents=True, exist_ok=True)
    text, names = _instrument((rtl_dir(spec) / f"{design.top}.v").read_text(), design)
    top_file = out / f"{design.top}.v"
    top_file.write_text(text)
    names_file = out / "names.json"
    names_file.write_text(json.dumps(names))
    result = out / "dbg.json"
    result.unlink(missing_ok=True)
    run_cocotb(design.top, design.sources() + [top_file], {}, "sim.debug_throughput",
               testcase="dbg_frames", build_name=f"{spec.name}_dbg",
               extra_env={"SQZ_VECTORS": str(vectors), "SQZ_DBG_NAMES": str(names_file),
                          "SQZ_DBG_OUT": str(result)})
    res = json.loads(result.read_text())
    snaps = res["snaps"]
    ends = [sn["dbg_cycles"] for sn in snaps]
    print(f"frame ends (cycles after reset): {ends}; between them: "
          f"{[b - a for a, b in itertools.pairwise(ends)]}; "
          f"mismatches {res['mismatches']} of {res['compared']}")
    # The last frame drains an idle pipeline: by default show an interval before it.
    k = args.interval if args.interval is not None else max(0, (len(snaps) - 2) // 2)
    a = snaps[k] if len(snaps) > 1 else {key: 0 for key in snaps[0]}
    b = snaps[k + 1] if len(snaps) > 1 else snaps[0]
    d = {key: b[key] - a[key] for key in b}
    cyc = d["dbg_cycles"]
    print(f"counts between frame ends {k} and {k + 1}: {cyc} cycles")
    streams = ["s_axis"] + [w.name for w in design.wires] + ["m_axis"]
    print(f"{'edge':42s} {'xfer':>8s} {'blocked':>8s} {'starved':>8s} {'idle':>8s}")
    for s in streams:
        x, bl, st = d[f"dbg_{s}_xfer"], d[f"dbg_{s}_blk"], d[f"dbg_{s}_stv"]
        if args.all or bl or st < cyc - x:
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
    return 0 if res["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
