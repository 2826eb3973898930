"""Command-line entry point (``sqz``); the Makefile is a thin facade over it.

    sqz info  --config configs/squeezenet_v1_1.yaml
    sqz csim  --config ...   [--backend Vitis|Vivado] [--frames N]
    sqz synth --config ...   [--backend ...] [--part ...] [--clock-mhz ...]
    sqz compress --config ... [--sparsity 0.63] [--per-layer] [--frames N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

DEFAULT_CONFIG = "configs/squeezenet_v1_1.yaml"


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _load(args):
    from model.spec import BACKENDS, SpecError, load_spec

    spec = load_spec(args.config)
    target = spec.target
    if getattr(args, "backend", None):
        if args.backend not in BACKENDS:
            raise SpecError(f"--backend: {args.backend!r} is not allowed; allowed: "
                            f"{', '.join(BACKENDS)}")
        target = replace(target, backend=args.backend)
    if getattr(args, "part", None):
        target = replace(target, part=args.part)
    if getattr(args, "clock_mhz", None):
        target = replace(target, clock_mhz=float(args.clock_mhz))
    return replace(spec, target=target)


def cmd_info(args) -> int:
    from model.graph import build_graph, macs_per_frame, parameter_count

    spec = _load(args)
    nodes = build_graph(spec)
    print(f"network: {spec.name} ({spec.variant}, {spec.height}x{spec.width}x{spec.channels}, "
          f"{spec.classes} classes)")
    for i, (s, e1, e3) in enumerate(spec.fire_sizes()):
        print(f"  fire{i + 2}: s1x1={s} e1x1={e1} e3x3={e3}")
    weights = sum(n.weight_count for n in nodes)
    print(f"parameters: {parameter_count(nodes)}")
    print(f"macs: {macs_per_frame(nodes)}")
    print(f"weight_bytes: {weights * spec.quant.weight_bits // 8}")
    return 0


def cmd_csim(args) -> int:
    _quiet_tensorflow()
    import numpy as np

    from hls.flow import build_project, float_logits, prepare, run_csim
    from model.imagenet import imagenet_class_names, top_k

    t_start = time.perf_counter()
    spec = _load(args)
    print(f"== {spec.name}: preparing weights, calibration ({spec.weights} weights)")
    prep = prepare(spec)
    frames = prep.frames[: args.frames] if args.frames else prep.frames
    print(f"== hls4ml: converting and compiling ({spec.target.backend}, io_stream, Resource)")
    _, hls_model = build_project(prep, backend=spec.target.backend)
    print(f"   convert {prep.timings['convert_s']:.1f} s, compile "
          f"{prep.timings['compile_s']:.1f} s")
    print(f"== C simulation of {len(frames)} frames, checked against the golden model")
    t0 = time.perf_counter()
    res = run_csim(prep, hls_model, frames)
    t_sim = time.perf_counter() - t0
    names = imagenet_class_names() if spec.classes == 1000 else None
    agree1 = agree5 = overlap5 = 0
    for fr, logits_q in zip(frames, res.logits):
        fmt = prep.plan.layers[prep.nodes[-1].name].out_fmt
        q_real = fmt.to_real(logits_q)
        f_real = float_logits(prep, fr)
        q_top = np.argsort(-q_real, kind="stable")[:5]
        f_top = np.argsort(-f_real, kind="stable")[:5]
        agree1 += int(q_top[0] == f_top[0])
        agree5 += int(set(q_top) == set(f_top))
        overlap5 += len(set(q_top) & set(f_top))
        print(f"-- {fr.name}")
        if names:
            for idx, name, prob in top_k(q_real, 5):
                print(f"   {prob:6.1%}  {idx:4d} {name}")
        else:
            print(f"   top-5 classes: {list(map(int, q_top))}")
        print(f"   float model top-1: {int(f_top[0])}"
              + (f" {names[f_top[0]]}" if names else ""))
    n = len(frames)
    print(f"float vs 8-bit on {n} photos: top-1 equal {agree1}/{n}, top-5 sets equal "
          f"{agree5}/{n}, top-5 overlap {overlap5}/{5 * n}")
    print("== per-layer bit-exact check (outputs compared / mismatches)")
    for name, (cmp_, bad) in res.per_layer.items():
        print(f"   {name:<26} {cmp_:>10} {bad:>6}")
    if res.first_mismatch:
        print(f"first mismatch: {res.first_mismatch}")
    tb_frames = min(2, n)
    print(f"== the written project's own C++ testbench (what vendor csim runs), built with "
          f"g++, on the first {tb_frames} photos")
    from hls.flow import project_dir
    from hls.testbench import compile_and_run_testbench, parse_summary

    t0 = time.perf_counter()
    tb_rc, tb_out = compile_and_run_testbench(project_dir(spec, spec.target.backend),
                                              max_frames=tb_frames)
    t_tb = time.perf_counter() - t0
    tb_line = [ln for ln in tb_out.splitlines() if ln.startswith("tb: ")][-1:]
    print(f"   {tb_line[0] if tb_line else tb_out[-500:]} ({t_tb:.1f} s)")
    tb_ok = tb_rc == 0 and bool(tb_line) and parse_summary(tb_out)[2] == 0
    print("== on-chip memory")
    print(prep.memory.format(per_layer=args.verbose))
    total = time.perf_counter() - t_start
    print(f"time: total {total:.1f} s (weights {prep.timings['weights_s']:.1f}, calibration "
          f"{prep.timings['calibration_s']:.1f}, convert {prep.timings['convert_s']:.1f}, "
          f"compile {prep.timings['compile_s']:.1f}, C sim {t_sim:.1f} = "
          f"{t_sim / max(n, 1):.1f} s/frame, g++ testbench {t_tb:.1f})")
    print(f"csim: {res.frames} frames, {res.compared} outputs compared, "
          f"{res.mismatches} mismatches")
    return 0 if (res.mismatches == 0 and res.compared > 0 and tb_ok) else 1


def cmd_synth(args) -> int:
    from hls.flow import build_project, prepare, project_dir
    from hls.synth import find_hls_tool, format_summary, run_synthesis

    spec = _load(args)
    find_hls_tool(spec.target.backend)  # fail at once, before any work, without the tool
    _quiet_tensorflow()
    prep = prepare(spec)
    build_project(prep, backend=spec.target.backend, compile_=False)
    summary = run_synthesis(project_dir(spec), spec.target.backend)
    print(format_summary(summary))
    return 0


def cmd_perf(args) -> int:
    from hls.flow import BUILD
    from hls.folding import choose_folding
    from hls.memory import part_info
    from hls.perf import perf_report
    from model.graph import build_graph

    spec = _load(args)
    folding = choose_folding(build_graph(spec), spec.target.target_cycles_per_frame)
    rep = perf_report(spec.name, folding, spec.target.clock_mhz,
                      part_info(spec.target.part).dsp)
    print(rep.format())
    png = rep.plot(BUILD / "perf" / f"{spec.name}.png")
    print(f"chart: {png}")
    return 0


def cmd_rtl_synth(args) -> int:
    _quiet_tensorflow()
    from hls.flow import BUILD, prepare
    from hls.memory import part_info
    from hls.rtl_gen import generate_rtl
    from hls.rtl_synth import find_yosys, synthesize

    spec = _load(args)
    find_yosys()
    prep = prepare(spec)
    top = f"sqz_{spec.name}".replace(".", "_").replace("-", "_")
    out = BUILD / "rtl" / spec.name
    design = generate_rtl(top, prep.nodes, prep.plan, prep.folding, out,
                          source=str(args.config))
    t0 = time.perf_counter()
    res = synthesize(design.sources() + [out / f"{top}.v"], top, spec.target.part,
                     out / "yosys")
    print(f"yosys synth_xilinx: {time.perf_counter() - t0:.0f} s; all cells in "
          f"{out / 'yosys' / 'stat.json'}")
    print(res.format(part_info(spec.target.part)))
    return 0


def cmd_compress(args) -> int:
    from hls.flow import BUILD, demo_frames
    from model.builder import float_weights
    from model.compress import compress_network, mbytes
    from model.graph import build_graph

    spec = _load(args)
    nodes = build_graph(spec)
    weights = float_weights(spec, nodes, BUILD / "weights")
    frames = demo_frames(spec)
    frames = frames[: args.frames] if args.frames else frames
    rep = compress_network(spec.name, nodes, weights, [f.pixels for f in frames],
                           sparsity=args.sparsity, per_layer=args.per_layer)
    print(rep.format())
    print(f"compressed: {mbytes(rep.final_bits()):.2f} MB "
          f"(from {mbytes(rep.dense_bits):.1f} MB at 32-bit)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sqz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, fn, help_ in (("info", cmd_info, "parameters, MACs and weight bytes"),
                            ("csim", cmd_csim, "hls4ml C simulation, bit-exact check"),
                            ("synth", cmd_synth, "vendor HLS synthesis and IP export"),
                            ("perf", cmd_perf, "per-layer folding, cycles, efficiency, chart"),
                            ("rtl-synth", cmd_rtl_synth, "Yosys resources of the open RTL"),
                            ("compress", cmd_compress,
                             "Deep Compression sizes: pruning, weight sharing, Huffman")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", default=DEFAULT_CONFIG, type=Path)
        p.set_defaults(fn=fn)
        if name in ("csim", "synth", "perf", "rtl-synth"):
            p.add_argument("--backend", help="Vitis or Vivado (default: the config's)")
            p.add_argument("--part", help="FPGA part (default: the config's)")
            p.add_argument("--clock-mhz", help="target clock (default: the config's)")
        if name == "csim":
            p.add_argument("--frames", type=int, default=0, help="limit the photos (0 = all)")
            p.add_argument("-v", "--verbose", action="store_true",
                           help="per-layer memory table")
        if name == "compress":
            p.add_argument("--sparsity", type=float, default=0.63,
                           help="fraction of kernel weights pruned (default 0.63)")
            p.add_argument("--per-layer", action="store_true",
                           help="one pruning threshold per layer (default: one global)")
            p.add_argument("--frames", type=int, default=0,
                           help="limit the agreement photos (0 = all)")
    args = parser.parse_args(argv)
    from model.spec import SpecError

    try:
        return args.fn(args)
    except (SpecError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
