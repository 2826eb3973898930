"""Whole-network RTL verification: generate the top for a spec, stream real photos through
it under cocotb, compare every class score with the golden model.

``prepare_network`` does the Python side (spec -> plan -> folding -> Verilog + ROM files +
golden vectors in an .npz); ``run_network`` builds and runs the cocotb bench
``sim.network_bench`` and returns the figures it measured (written to ``result.json``);
``sim_full`` is ``sqz sim-full``: both on a config, with a report. By default ``sim_full``
runs the fast C++-driven Verilator model of ``sim.fast`` instead of cocotb (~10x faster on
the full network) and adds its FIFO occupancy report.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from hls.plan.prepare import Prepared, prepare
from hls.rtl.generate import RtlDesign, generate_rtl
from model import paths
from model.quantize import run_golden
from model.spec import NetworkSpec

BENCH = "sim.network_bench"


def rtl_dir(spec: NetworkSpec) -> Path:
    return paths.build_path("rtl", spec.name)


def prepare_network(spec: NetworkSpec, frames: int | None = None,
                    prep: Prepared | None = None) -> tuple[Prepared, RtlDesign, Path]:
    """Generate the RTL and the golden vectors; returns (prep, design, vectors .npz)."""
    prep = prep or prepare(spec)
    out = rtl_dir(spec)
    design = generate_rtl(paths.top_module_name(spec), prep.nodes, prep.plan, prep.folding,
                          out, source=f"{spec.name} ({spec.variant})",
                          description=f"{spec.height}x{spec.width}x{spec.channels} -> "
                                      f"{spec.classes} classes")
    chosen = prep.frames[:frames] if frames else prep.frames
    pixels = np.stack([f.pixels for f in chosen])
    gap = prep.nodes[-1].name
    expected = np.stack([run_golden(prep.nodes, prep.plan, f.pixels)[gap] for f in chosen])
    s_in, s_out = design.streams[design.in_stream], design.streams[design.out_stream]
    vectors = out / "vectors.npz"
    np.savez(vectors, pixels=pixels, expected=expected,
             names=np.array([f.name for f in chosen]),
             in_lanes=s_in.lanes, out_lanes=s_out.lanes, out_bits=s_out.bits)
    return prep, design, vectors


def run_network(spec: NetworkSpec, design: RtlDesign, vectors: Path, testcase: str | None = None,
                stalls: bool = True, toplevel: str | None = None,
                sources: list[Path] | None = None, build_name: str | None = None) -> dict:
    """Build the top with the chosen simulator and run the whole-network bench.

    By default the top is the generated ``design``; ``toplevel`` and ``sources`` run the
    same bench on another top with the same ports (the vendor-RTL adapter), in its own
    ``build_name``.
    """
    from sim.runner import run_cocotb

    out = rtl_dir(spec)
    build_name = build_name or spec.name
    result = out / ("result.json" if build_name == spec.name else f"result_{build_name}.json")
    result.unlink(missing_ok=True)
    t0 = time.perf_counter()
    run_cocotb(toplevel or design.top,
               sources if sources is not None else design.sources() + [out / f"{design.top}.v"],
               {}, BENCH, testcase=testcase, build_name=build_name,
               extra_env={"SQZ_VECTORS": str(vectors), "SQZ_RESULT": str(result),
                          "SQZ_STALLS": "1" if stalls else "0"})
    figures = json.loads(result.read_text()) if result.exists() else {}
    figures["wall_s"] = time.perf_counter() - t0
    return figures


def sim_full(config: Path, frames: int = 3, stalls: bool = False, cocotb: bool = False) -> bool:
    """``sqz sim-full``: the configured network's RTL on ``frames`` real photos (random input
    stalls and output backpressure with ``stalls``), every class score compared with the
    golden model, in the fast C++-driven model (``sim.fast``, with its FIFO occupancy
    report) or, with ``cocotb``, in the cocotb bench. Prints cycles per frame, latency, the
    per-layer performance report and ``sim speed: X cycles/s``, and ends with ``rtl: F
    frames, N outputs compared, M mismatches, C cycles/frame``. True when every score
    matched."""
    from hls.plan.parts import part_info
    from hls.plan.perf import perf_report
    from model.spec import load_spec
    from sim import fast

    spec = load_spec(config)
    t0 = time.perf_counter()
    prep, design, vectors = prepare_network(spec, frames=frames)
    print(f"== {spec.name}: RTL generated in {time.perf_counter() - t0:.1f} s "
          f"({len(design.instances)} blocks) under build/rtl/{spec.name}/")
    if cocotb:
        fig = run_network(spec, design, vectors, testcase="test_frames", stalls=stalls)
        if not fig.get("frames"):
            print("error: the RTL simulation wrote no result", file=sys.stderr)
            return False
        speed = (f"sim speed: {fig['total_cycles'] / fig['wall_s']:,.0f} cycles/s (cocotb, "
                 f"{fig['total_cycles']:,d} cycles in {fig['wall_s']:.0f} s, build included)")
    else:
        try:
            fig = fast.run(design.top, design.sources() + [rtl_dir(spec) / f"{design.top}.v"],
                           vectors, spec.name, stalls=stalls)
        except fast.SimError as e:
            print(f"error: {e}", file=sys.stderr)
            return False
        for f, c, got, want in fig["first_bad"]:
            print(f"mismatch: frame {f} class {c}: RTL {got}, golden {want}")
        build = (f"build {fig['build_s']:.0f} s" if fig["build_s"]
                 else "build reused (sources unchanged)")
        speed = (f"sim speed: {fig['cycles_per_s']:,.0f} cycles/s ({fig['total_cycles']:,d} "
                 f"cycles in {fig['sim_s']:.1f} s of simulation, "
                 f"{fig['cycles_per_cpu_s']:,.0f} cycles per CPU second; {build}; "
                 f"{time.perf_counter() - t0:.0f} s in all)")
    cycles = fig["cycles_per_frame"] or fig["first_frame_latency_cycles"]
    stalled = " (random input stalls and output backpressure)" if stalls else ""
    print(f"frames checked: {fig['frames']}{stalled}")
    print(f"outputs compared: {fig['compared']}, mismatches: {fig['mismatches']}")
    print(f"first-frame latency: {fig['first_frame_latency_cycles']:,d} cycles")
    print(f"cycles per frame at steady state: {cycles:,d}")
    rep = perf_report(spec.name, prep.folding, spec.target.clock_mhz,
                      part_info(spec.target.part).dsp, measured_cycles=cycles)
    print(rep.format())
    if "fifos" in fig:
        slowest = rep.bottleneck
        print(fast.fifo_report(fig["fifos"], fig["frames"], cycles,
                               (slowest.name, slowest.cycles)))
    print(speed)
    print(f"rtl: {fig['frames']} frames, {fig['compared']} outputs compared, "
          f"{fig['mismatches']} mismatches, {cycles} cycles/frame")
    return fig["mismatches"] == 0 and fig["compared"] > 0
