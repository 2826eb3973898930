"""The hls4ml side of the flow: convert, write and compile the project, run the C simulation.

``build_project`` converts the prepared network with hls4ml, writes the project (with the
golden ``tb_data``) and compiles the C simulation; ``run_csim`` streams frames through it
and checks every traced layer output against the golden model, element by element, as
integers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hls.plan.prepare import Frame, Prepared
from model import paths
from model.builder import keras_output_name
from model.locks import hold
from model.quantize import float_forward, run_golden
from model.spec import NetworkSpec


def project_dir(spec: NetworkSpec, backend: str | None = None) -> Path:
    return paths.build_path("hls", f"{spec.name}_{(backend or spec.target.backend).lower()}")


def build_project(prep: Prepared, backend: str | None = None, out_dir: Path | None = None,
                  compile_: bool = True, log=print):
    """Convert with hls4ml, write the project (with golden tb_data) and compile the C sim."""
    from hls.hls4ml_backend.convert import convert
    from model.builder import build_qkeras

    out_dir = hold(out_dir or project_dir(prep.spec, backend), log=log)  # model.locks
    t0 = time.perf_counter()
    qmodel = build_qkeras(prep.spec, prep.nodes, prep.plan)
    hls_model = convert(prep.spec, prep.nodes, prep.plan, qmodel, prep.folding, out_dir,
                        backend=backend, fifos=prep.fifo)
    t1 = time.perf_counter()
    if compile_:
        from hls.hls4ml_backend.testbench import require_gxx

        require_gxx()  # before hls4ml's build_lib.sh fails with a bare Exception
        # Compiled once, with the per-layer trace hooks in: hls4ml's own trace() would
        # recompile on every call (seconds to a minute each).
        hls_model.config.trace_output = True
        hls_model.compile()
    else:
        hls_model.write()
    from hls.hls4ml_backend.testbench import write_testbench

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
    logits: list[np.ndarray] = field(default_factory=list)  # the golden model's, per frame
    # the C simulation's own output stream per frame, as integers of the logit format
    outputs: list[np.ndarray] = field(default_factory=list)
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
             log=print, progress=None) -> CsimResult:
    """Every traced layer of every frame compared with the golden model as integers.

    ``progress``, when given, wraps the frame loop (e.g. ``model.progress.progress``
    with its description bound)."""
    frames = prep.frames if frames is None else frames
    nodes_by_keras = {keras_output_name(n): n for n in prep.nodes}
    pre_names = {n.name: n for n in prep.nodes if n.kind == "conv"}
    res = CsimResult()
    for fr in (progress(frames) if progress else frames):
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
            if name == "__output__":
                res.outputs.append(got)
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
    weights = prep.reference
    return float_forward(prep.nodes, weights, frame.pixels)[prep.nodes[-1].name]
