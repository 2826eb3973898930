"""Whole-network RTL verification: generate the top for a spec, stream real photos through
it under cocotb, compare every class score with the golden model.

``prepare_network`` does the Python side (spec -> plan -> folding -> Verilog + ROM files +
golden vectors in an .npz); ``run_network`` builds and runs the cocotb bench
``sim/test_network.py`` and returns the figures it measured (written to ``result.json``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from hls.plan.prepare import Prepared, prepare
from model import paths
from hls.rtl.generate import RtlDesign, generate_rtl
from model.quantize import run_golden
from model.spec import NetworkSpec


def rtl_dir(spec: NetworkSpec) -> Path:
    return paths.BUILD / "rtl" / spec.name


def prepare_network(spec: NetworkSpec, frames: int | None = None,
                    prep: Prepared | None = None) -> tuple[Prepared, RtlDesign, Path]:
    """Generate the RTL and the golden vectors; returns (prep, design, vectors .npz)."""
    prep = prep or prepare(spec)
    out = rtl_dir(spec)
    top = f"sqz_{spec.name}".replace(".", "_").replace("-", "_")
    design = generate_rtl(top, prep.nodes, prep.plan, prep.folding, out,
                          source=f"{spec.name} ({spec.variant})",
                          description=f"{spec.height}x{spec.width}x{spec.channels} -> "
                                      f"{spec.classes} classes")
    chosen = prep.frames[:frames] if frames else prep.frames
    pixels = np.stack([f.pixels for f in chosen])
    gap = prep.nodes[-1].name
    expected = np.stack([run_golden(prep.nodes, prep.plan, f.pixels)[gap] for f in chosen])
    vectors = out / "vectors.npz"
    np.savez(vectors, pixels=pixels, expected=expected,
             names=np.array([f.name for f in chosen]),
             in_lanes=design.in_stream.lanes, out_lanes=design.out_stream.lanes,
             out_bits=design.out_stream.bits)
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
               {}, "sim.test_network", testcase=testcase, build_name=build_name,
               extra_env={"SQZ_VECTORS": str(vectors), "SQZ_RESULT": str(result),
                          "SQZ_STALLS": "1" if stalls else "0"})
    figures = json.loads(result.read_text()) if result.exists() else {}
    figures["wall_s"] = time.perf_counter() - t0
    return figures
