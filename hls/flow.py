"""The end-to-end flow behind the CLI: spec -> weights -> calibration -> hls4ml -> C sim.

``prepare`` does the Python side (graph, float weights, calibration photos, quantization
plan, folding, memory budget); ``build_project`` converts, writes and compiles the hls4ml
project; ``run_csim`` streams frames through the compiled C simulation and checks every
traced layer output against the golden model, element by element, as integers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hls.folding import LayerFolding, fifo_depths, fold_within_budget, save_folding
from hls.memory import MemoryReport, memory_report
from model.builder import float_weights, keras_output_name
from model.graph import Node, build_graph
from model.quantize import FloatWeights, QuantPlan, calibrate, float_forward, run_golden
from model.spec import NetworkSpec

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"


class DoesNotFitError(RuntimeError):
    """The configuration needs more on-chip resources than the chosen part has."""


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
    fifo: dict[str, int]
    memory: MemoryReport
    timings: dict[str, float] = field(default_factory=dict)
    # the weights before spec.compression (None when the spec compresses nothing)
    uncompressed: FloatWeights | None = None


def demo_frames(spec: NetworkSpec) -> list[Frame]:
    """The bundled real photos, resized and cropped to the network input, as raw BGR."""
    from model.photos import bundled_photos, to_network_input

    if spec.height != spec.width:
        raise ValueError(f"the photo frames are square crops; the spec asks for "
                         f"{spec.height}x{spec.width}")
    frames = []
    for p in bundled_photos():
        x = to_network_input(p.rgb, spec.height)
        if spec.channels == 1:
            x = x.mean(axis=2, keepdims=True).round().astype(np.uint8)
        elif spec.channels != 3:
            raise ValueError(f"photos have 1 or 3 channels; the spec asks for {spec.channels}")
        frames.append(Frame(p.name, x))
    return frames


def prepare(spec: NetworkSpec, log=print) -> Prepared:
    t0 = time.perf_counter()
    nodes = build_graph(spec)
    weights = float_weights(spec, nodes, BUILD / "weights")
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
    # The pipeline is balanced for the target, within the part's DSP slices (one
    # multiplier each); a target that needs more is relaxed until it fits.
    from hls.memory import part_info

    folding, met = fold_within_budget(nodes, spec.target.target_cycles_per_frame,
                                      part_info(spec.target.part).dsp)
    if met != spec.target.target_cycles_per_frame:
        log(f"folding: {spec.target.target_cycles_per_frame:,d} cycles/frame needs more "
            f"multipliers than {spec.target.part} has; balanced for {met:,d} instead")
    save_folding(folding, BUILD / "hls" / f"{spec.name}_folding.yaml")
    fifo = fifo_depths(nodes)
    mem = memory_report(nodes, plan, folding, fifo, spec.target.part)
    if any(lq.shared for lq in plan.layers.values()):
        dense = memory_report(nodes, plan, folding, fifo, spec.target.part, sharing=False)
        mem.dense_bram18 = dense.bram18
    problems = mem.fits()
    if problems:
        raise DoesNotFitError(f"{spec.name} does not fit {spec.target.part}: "
                              + "; ".join(problems))
    return Prepared(spec, nodes, weights, frames, plan, folding, fifo, mem,
                    {"weights_s": t1 - t0, "calibration_s": t2 - t1}, original)


def project_dir(spec: NetworkSpec, backend: str | None = None) -> Path:
    return BUILD / "hls" / f"{spec.name}_{(backend or spec.target.backend).lower()}"


def build_project(prep: Prepared, backend: str | None = None, out_dir: Path | None = None,
                  compile_: bool = True, log=print):
    """Convert with hls4ml, write the project (with golden tb_data) and compile the C sim."""
    from hls.convert import convert
    from model.builder import build_qkeras

    out_dir = out_dir or project_dir(prep.spec, backend)
    t0 = time.perf_counter()
    qmodel = build_qkeras(prep.spec, prep.nodes, prep.plan)
    hls_model = convert(prep.spec, prep.nodes, prep.plan, qmodel, prep.folding, out_dir,
                        backend=backend)
    t1 = time.perf_counter()
    if compile_:
        # Compiled once, with the per-layer trace hooks in: hls4ml's own trace() would
        # recompile on every call (seconds to a minute each).
        hls_model.config.trace_output = True
        hls_model.compile()
    else:
        hls_model.write()
    from hls.testbench import write_testbench

    write_testbench(out_dir, hls_model, prep.frames, prep.nodes, prep.plan)
    t2 = time.perf_counter()
    prep.timings.update({"convert_s": t1 - t0, "compile_s": t2 - t1})
    return qmodel, hls_model


@dataclass
class CsimResult:
    frames: int = 0
    compared: int = 0
    mismatches: int = 0
    per_layer: dict[str, list[int]] = field(default_factory=dict)  # name -> [compared, bad]
    logits: list[np.ndarray] = field(default_factory=list)
    first_mismatch: str = ""


def trace_frame(hls_model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-layer outputs of one frame from a library compiled with trace hooks.

    The same ctypes protocol as hls4ml 1.3.0's ``ModelGraph.trace`` (allocate, run, collect,
    free), without its recompilation on every call.
    """
    import ctypes
    import os

    if not hls_model.config.trace_output:
        raise RuntimeError("the C simulation library was compiled without trace hooks")

    class TraceData(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p)]

    top, ctype = hls_model._get_top_function(x)
    lib = hls_model._top_function_lib
    sizes = {layer.name: layer.get_output_variable().shape for layer in hls_model.get_layers()
             if layer.get_attr("function_cpp", None) and layer.get_attr("trace", False)}
    n_traced = sum(len(hls_model.graph[name].get_variables()) for name in sizes)
    lib.collect_trace_output.argtypes = [ctypes.POINTER(TraceData)]
    lib.collect_trace_output.restype = None
    lib.allocate_trace_storage.argtypes = [ctypes.c_size_t]
    lib.allocate_trace_storage.restype = None
    lib.free_trace_storage.argtypes = None
    lib.free_trace_storage.restype = None
    data = (TraceData * n_traced)()
    out_size = hls_model.get_output_variables()[0].size()
    cwd = os.getcwd()
    os.chdir(hls_model.config.get_output_dir() + "/firmware")
    try:
        lib.allocate_trace_storage(ctypes.sizeof(ctype))
        try:
            pred = np.zeros(out_size, dtype=ctype)
            top(np.ascontiguousarray(x, dtype=ctype), pred)
            lib.collect_trace_output(data)
            result = {}
            for t in data:
                name = t.name.decode()
                arr = np.ctypeslib.as_array(ctypes.cast(t.data, ctypes.POINTER(ctype)),
                                            shape=sizes[name])
                result[name] = np.copy(arr)
            result["__output__"] = pred
        finally:
            lib.free_trace_storage()
    finally:
        os.chdir(cwd)
    return result


def run_csim(prep: Prepared, hls_model, frames: list[Frame] | None = None,
             log=print) -> CsimResult:
    """Every traced layer of every frame compared with the golden model as integers."""
    frames = prep.frames if frames is None else frames
    nodes_by_keras = {keras_output_name(n): n for n in prep.nodes}
    pre_names = {n.name: n for n in prep.nodes if n.kind == "conv"}
    res = CsimResult()
    for fr in frames:
        gold = run_golden(prep.nodes, prep.plan, fr.pixels, keep_pre=True)
        trace = trace_frame(hls_model, fr.pixels.astype(np.float64))
        compared_here = 0
        for name, value in trace.items():
            if name == "__output__":  # the model's output stream itself
                node = prep.nodes[-1]
                want = gold[node.name]
                fmt = prep.plan.layers[node.name].out_fmt
            elif name in nodes_by_keras:
                node = nodes_by_keras[name]
                want = gold[node.name]
                fmt = prep.plan.layers[node.name].out_fmt
            elif name in pre_names:
                want = gold[name + "_pre"]
                fmt = prep.plan.layers[name].pre_fmt
            else:
                continue
            got = fmt.from_real_exact(np.asarray(value).reshape(want.shape), name)
            bad = int(np.count_nonzero(got != want))
            stat = res.per_layer.setdefault(name, [0, 0])
            stat[0] += want.size
            stat[1] += bad
            res.compared += want.size
            compared_here += want.size
            res.mismatches += bad
            if bad and not res.first_mismatch:
                idx = np.argwhere(got != want)[0]
                res.first_mismatch = (f"{fr.name}: {name}{tuple(idx)} C sim {got[tuple(idx)]} "
                                      f"golden {want[tuple(idx)]}")
        if compared_here == 0:
            raise RuntimeError("hls4ml trace returned no layer that the golden model knows")
        gap = prep.nodes[-1]
        res.logits.append(gold[gap.name])
        res.frames += 1
    order = [name for n in prep.nodes
             for name in ((n.name, keras_output_name(n)) if n.kind == "conv" else (n.name,))]
    order.append("__output__")
    res.per_layer = {k: res.per_layer[k] for k in order if k in res.per_layer}
    return res


def float_logits(prep: Prepared, frame: Frame) -> np.ndarray:
    """The float model's logits: the uncompressed network when the spec compresses it."""
    weights = prep.uncompressed if prep.uncompressed is not None else prep.weights
    return float_forward(prep.nodes, weights, frame.pixels)[prep.nodes[-1].name]
