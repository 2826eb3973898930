"""The backend-neutral hardware plan of a spec: what both hardware flows build from.

``prepare`` turns a spec into the graph, the float weights (compressed when the spec asks),
the calibration frames, the quantization plan, the folding, the FIFO policy and the memory
budget, and refuses a design that does not fit the part. The hls4ml backend
(``hls.hls4ml_backend``) and the open RTL backend (``hls.rtl``) both take a ``Prepared``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from hls.plan.folding import LayerFolding, fold_within_budget
from hls.plan.memory import MemoryReport, memory_report
from hls.plan.streams import FifoPlan, fifo_plan
from model import paths
from model.builder import float_weights
from model.errors import DoesNotFitError
from model.graph import Node, build_graph
from model.quantize import FloatWeights, QuantPlan, calibrate
from model.spec import NetworkSpec, SpecError


@dataclass
class Frame:
    name: str
    pixels: np.ndarray  # uint8 (H, W, C) raw BGR


@dataclass
class Prepared:
    spec: NetworkSpec
    nodes: list[Node]
    weights: FloatWeights
    frames: list[Frame]
    plan: QuantPlan
    folding: dict[str, LayerFolding]
    fifo: FifoPlan
    memory: MemoryReport
    timings: dict[str, float] = field(default_factory=dict)
    # the weights before spec.compression (None when the spec compresses nothing)
    uncompressed: FloatWeights | None = None


def demo_frames(spec: NetworkSpec) -> list[Frame]:
    """The bundled real photos, resized and cropped to the network input, as raw BGR."""
    from model.photos import bundled_photos, to_network_input

    if spec.height != spec.width:
        raise SpecError(f"the photo frames are square crops; the spec asks for "
                         f"{spec.height}x{spec.width}")
    frames = []
    for p in bundled_photos():
        x = to_network_input(p.rgb, spec.height)
        if spec.channels == 1:
            x = x.mean(axis=2, keepdims=True).round().astype(np.uint8)
        elif spec.channels != 3:
            raise SpecError(f"photos have 1 or 3 channels; the spec asks for {spec.channels}")
        frames.append(Frame(p.name, x))
    return frames


def fold(spec: NetworkSpec, nodes: list[Node], target: int | None = None,
         dsp: int | None = None) -> tuple[dict[str, LayerFolding], int]:
    """The folding balanced for ``target`` cycles/frame (default: the spec's) within ``dsp``
    multipliers (default: the part's DSP slices, one multiplier each); a target that needs
    more is relaxed until it fits. Returns the folding and the target it met."""
    from hls.plan.parts import part_info

    return fold_within_budget(nodes, target or spec.target.target_cycles_per_frame,
                              dsp or part_info(spec.target.part).dsp)


def fifos_and_memory(spec: NetworkSpec, nodes: list[Node], plan: QuantPlan,
                     folding: dict[str, LayerFolding]) -> tuple[FifoPlan, MemoryReport]:
    """The FIFO policy's FIFOs and the on-chip memory budget of a folded, quantized design."""
    fifo = fifo_plan(nodes, folding)
    return fifo, memory_report(nodes, plan, folding, fifo, spec.target.part)


def prepare(spec: NetworkSpec, log=print) -> Prepared:
    t0 = time.perf_counter()
    nodes = build_graph(spec)
    weights = float_weights(spec, nodes, paths.BUILD / "weights")
    t1 = time.perf_counter()
    frames = demo_frames(spec)
    c = spec.compression
    original = None
    if c.active:  # Deep Compression in float, before calibration and quantization
        from model.compress import compress_weights, correct_biases

        original = weights
        weights, _ = compress_weights(weights, c.sparsity, c.per_layer, c.share_bits)
        weights = correct_biases(nodes, original, weights, [f.pixels for f in frames])
        log("compression: "
            + (f"pruned to {c.sparsity:.0%} zeros{' per layer' if c.per_layer else ''}"
               if c.sparsity else "no pruning")
            + (f", weights shared in {2**c.share_bits}-entry codebooks ({c.share_bits}-bit "
               "indices)" if c.share_bits else "") + "; biases corrected")
    plan = calibrate(nodes, weights, [f.pixels for f in frames], spec)
    t2 = time.perf_counter()
    folding, met = fold(spec, nodes)
    if met != spec.target.target_cycles_per_frame:
        log(f"folding: {spec.target.target_cycles_per_frame:,d} cycles/frame needs more "
            f"multipliers than {spec.target.part} has; balanced for {met:,d} instead")
    fifo, mem = fifos_and_memory(spec, nodes, plan, folding)
    problems = mem.fits()
    if problems:
        raise DoesNotFitError(f"{spec.name} does not fit {spec.target.part}: "
                              + "; ".join(problems))
    return Prepared(spec, nodes, weights, frames, plan, folding, fifo, mem,
                    {"weights_s": t1 - t0, "calibration_s": t2 - t1}, original)


