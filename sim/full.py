"""Full-network RTL run (``make sim-full``): the configured network, real photos, every
class score compared with the golden model; prints cycles per frame, latency and the
simulation speed, and ends with ``rtl: F frames, N outputs compared, M mismatches,
C cycles/frame``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_CONFIG = "configs/squeezenet_v1_1.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.full", description=__doc__)
    parser.add_argument("--config", default=DEFAULT_CONFIG, type=Path)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--stalls", action="store_true",
                        help="random input stalls and output backpressure (slower)")
    args = parser.parse_args(argv)

    from hls.plan.perf import perf_report
    from model.spec import load_spec
    from sim.network import prepare_network, run_network

    spec = load_spec(args.config)
    t0 = time.perf_counter()
    prep, design, vectors = prepare_network(spec, frames=args.frames)
    print(f"== {spec.name}: RTL generated in {time.perf_counter() - t0:.1f} s "
          f"({len(design.instances)} blocks) under build/rtl/{spec.name}/")
    fig = run_network(spec, design, vectors, testcase="test_frames", stalls=args.stalls)
    if not fig.get("frames"):
        print("error: the RTL simulation wrote no result", file=sys.stderr)
        return 1
    cycles = fig["cycles_per_frame"] or fig["first_frame_latency_cycles"]
    print(f"frames checked: {fig['frames']}")
    print(f"outputs compared: {fig['compared']}, mismatches: {fig['mismatches']}")
    print(f"first-frame latency: {fig['first_frame_latency_cycles']:,d} cycles")
    print(f"cycles per frame at steady state: {cycles:,d}")
    print(f"simulation: {fig['total_cycles']:,d} cycles in {fig['wall_s']:.0f} s "
          f"(build included) = {fig['total_cycles'] / fig['wall_s']:,.0f} cycles/s")
    from hls.plan.parts import part_info

    rep = perf_report(spec.name, prep.folding, spec.target.clock_mhz,
                      part_info(spec.target.part).dsp, measured_cycles=cycles)
    print(rep.format())
    print(f"rtl: {fig['frames']} frames, {fig['compared']} outputs compared, "
          f"{fig['mismatches']} mismatches, {cycles} cycles/frame")
    return 0 if fig["mismatches"] == 0 and fig["compared"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
