"""Command-line entry point (``sqz``); the Makefile is a thin facade over it.

    sqz info  --config configs/squeezenet_v1_1.yaml
    sqz classify IMAGE... [--config ...] [--backend golden|csim|rtl|board] [--bitfile BIT]
                          [--json] [--top K]
    sqz eval  --data DIR [--config ...] [--limit N] [--csim K] [--out DIR]
    sqz csim  --config ...   [--backend Vitis|Vivado] [--frames N]
    sqz synth --config ...   [--backend ...] [--part ...] [--clock-mhz ...]
    sqz compress --config ... [--sparsity 0.63] [--per-layer] [--frames N]
    sqz train --config configs/fashion_mnist.yaml [--epochs N] [--limit N] [--data DIR]
    sqz finetune --config configs/squeezenet_v1_1.yaml --data DIR [--sparsity S] [--qat]
    sqz dse   [--sr 0.125,0.25] [--pct 0.5] [--grid FILE] [--full] [--engine local|ray|dask]
    sqz sim-full  --config ... [--frames N] [--stalls] [--cocotb]
    sqz rtl-debug --config ... [--frames N] [--all] [--interval K]
    sqz bitstream --config ... --board zcu102|zcu104|kv260 [--clock-mhz ...] [--jobs N]
                  [--core open|hls4ml]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from model import paths
from model.errors import SqzError


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _load(args):
    from model.spec import load_spec, with_target

    return with_target(load_spec(args.config), backend=getattr(args, "backend", None),
                       part=getattr(args, "part", None),
                       clock_mhz=getattr(args, "clock_mhz", None),
                       calibration=getattr(args, "calibration", None))


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

    from hls.hls4ml_backend.csim import build_project, float_logits, run_csim
    from hls.plan.prepare import prepare
    from model.imagenet import imagenet_class_names, top_k

    t_start = time.perf_counter()
    spec = _load(args)
    print(f"== {spec.name}: preparing weights, calibration ({spec.weights} weights)")
    prep = prepare(spec)
    print(f"   calibrated on {prep.calibration}")
    frames = prep.frames[: args.frames] if args.frames else prep.frames
    print(f"== hls4ml: converting and compiling ({spec.target.backend}, io_stream, Resource)")
    _, hls_model = build_project(prep, backend=spec.target.backend)
    print(f"   convert {prep.timings['convert_s']:.1f} s, compile "
          f"{prep.timings['compile_s']:.1f} s")
    print(f"== C simulation of {len(frames)} frames, checked against the golden model")
    from model.progress import progress

    t0 = time.perf_counter()
    res = run_csim(prep, hls_model, frames,
                   progress=lambda it: progress(it, "csim", unit="frame"))
    t_sim = time.perf_counter() - t0
    names = imagenet_class_names() if spec.classes == 1000 else None
    agree1 = agree5 = overlap5 = 0
    for fr, logits_q in zip(frames, res.logits, strict=True):
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
    what = ("uncompressed float vs compressed 8-bit" if spec.compression.active
            else "float vs 8-bit")
    print(f"{what} on {n} photos: top-1 equal {agree1}/{n}, top-5 sets equal "
          f"{agree5}/{n}, top-5 overlap {overlap5}/{5 * n}")
    print("== per-layer bit-exact check (outputs compared / mismatches)")
    for name, (cmp_, bad) in res.per_layer.items():
        print(f"   {name:<26} {cmp_:>10} {bad:>6}")
    if res.first_mismatch:
        print(f"first mismatch: {res.first_mismatch}")
    tb_frames = min(2, n)
    print(f"== the written project's own C++ testbench (what vendor csim runs), built with "
          f"g++, on the first {tb_frames} photos")
    from hls.hls4ml_backend.csim import project_dir
    from hls.hls4ml_backend.testbench import compile_and_run_testbench, parse_summary

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


@contextlib.contextmanager
def _stdout_to_stderr():
    """Everything written to stdout inside, by Python or by a tool the process runs (hls4ml's
    messages, g++, Verilator), goes to stderr: ``--json`` keeps stdout for the JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _log_err(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def cmd_classify(args) -> int:
    """Top-k classes of the user's images through the golden model, the C simulation, the
    RTL or the board (hls.infer.classify.Classifier); the images are read before any other
    work."""
    import json

    from hls.infer.classify import BACKENDS, Classifier, load_frames, make_backend
    from hls.plan.prepare import prepare
    from model.errors import InputError

    if args.infer_backend not in BACKENDS:
        raise InputError(f"--backend: {args.infer_backend!r} is not allowed; allowed: "
                         f"{', '.join(BACKENDS)}")
    if (args.bitfile is None) != (args.infer_backend != "board"):
        raise InputError("--backend board needs --bitfile PATH" if args.bitfile is None
                         else "--bitfile is only for --backend board")
    if args.top < 1:
        raise InputError(f"--top: must be a positive integer, got {args.top}")
    _quiet_tensorflow()
    spec = _load(args)
    log = _log_err if args.json else print
    t0 = time.perf_counter()
    frames = load_frames(args.images, spec)  # a bad file stops before any other work
    if args.infer_backend == "board":
        from hls.infer.board import require_pynq

        require_pynq(args.bitfile)  # so does a missing PYNQ or bitstream
    with _stdout_to_stderr() if args.json else contextlib.nullcontext():
        # golden and board need no demo photos (nor scikit-image, which bundles them: a
        # board has only numpy, PyYAML, Pillow and tqdm); the csim testbench uses them
        prep = prepare(spec, log=log, demo=args.infer_backend in ("csim", "rtl"))
        clf = Classifier(prep, make_backend(args.infer_backend, prep, log, args.bitfile),
                         log=log)
        log(f"== {spec.name}: {len(frames)} images, {spec.preprocess} preprocessing to "
            f"{spec.height}x{spec.width}, backend {clf.backend.name} "
            f"(prepared in {time.perf_counter() - t0:.1f} s)")
        t1 = time.perf_counter()
        preds = clf.predict(frames, args.top)
        t_run = time.perf_counter() - t1
    checked = getattr(clf.backend, "checked", None)
    if args.json:
        print(json.dumps([p.to_json() for p in preds], indent=2))
    else:
        for p in preds:
            print(f"-- {p.image}")
            for c in p.top:
                print(f"   {c.prob:6.1%}  {c.index:4d}" + (f" {c.name}" if c.name else ""))
    log(f"time: {time.perf_counter() - t0:.1f} s ({clf.backend.name}: {t_run:.2f} s for "
        f"{len(frames)} image{'s' if len(frames) != 1 else ''})")
    if checked is not None:
        log(f"{clf.backend.name}: {checked.frames} frames, {checked.compared} outputs compared "
            f"with the golden model, {checked.mismatches} mismatches"
            + (f" (first: {checked.first_mismatch})" if checked.first_mismatch else ""))
        if checked.mismatches or not checked.compared:
            return 1
    return 0


def cmd_eval(args) -> int:
    """Accuracy (labelled folders), agreement with float and saturation of the 8-bit design
    on a folder of images (hls.infer.evaluate)."""
    from hls.infer.evaluate import evaluate
    from hls.plan.prepare import prepare

    _quiet_tensorflow()
    spec = _load(args)
    t0 = time.perf_counter()
    prep = prepare(spec)
    print(f"== {spec.name}: prepared in {time.perf_counter() - t0:.1f} s")
    res = evaluate(prep, args.data, args.out or paths.BUILD / "eval" / spec.name,
                   limit=args.limit, csim=args.csim)
    for line in res.lines():
        print(line)
    return 1 if res.csim and (res.csim["mismatches"] or not res.csim["compared"]) else 0


def cmd_synth(args) -> int:
    from hls.hls4ml_backend.csim import build_project, project_dir
    from hls.hls4ml_backend.synth import find_hls_tool, format_summary, run_synthesis
    from hls.plan.prepare import prepare

    spec = _load(args)
    find_hls_tool(spec.target.backend)  # fail at once, before any work, without the tool
    _quiet_tensorflow()
    prep = prepare(spec)
    build_project(prep, backend=spec.target.backend, compile_=False)
    summary = run_synthesis(project_dir(spec), spec.target.backend)
    print(format_summary(summary))
    return 0


def cmd_perf(args) -> int:
    from hls.plan.parts import part_info
    from hls.plan.perf import perf_report
    from hls.plan.prepare import fold
    from model.graph import build_graph

    spec = _load(args)
    folding = fold(spec, build_graph(spec))
    rep = perf_report(spec.name, folding, spec.target.clock_mhz,
                      part_info(spec.target.part).dsp)
    print(rep.format())
    png = rep.plot(paths.BUILD / "perf" / f"{spec.name}.png")
    print(f"chart: {png}")
    return 0


def cmd_rtl_synth(args) -> int:
    _quiet_tensorflow()
    from hls.plan.parts import part_info
    from hls.plan.prepare import prepare
    from hls.rtl.generate import generate_rtl
    from hls.rtl.yosys import find_yosys, synthesize

    spec = _load(args)
    find_yosys()
    prep = prepare(spec)
    top = paths.top_module_name(spec)
    out = paths.BUILD / "rtl" / spec.name
    design = generate_rtl(top, prep.nodes, prep.plan, prep.folding, out,
                          source=str(args.config))
    sources, what = design.sources() + [out / f"{top}.v"], top
    if args.axi:  # the board's top: the core behind the AXI shell (hls/rtl/axi.py)
        from hls.rtl.axi import generate_axi_top

        axi = generate_axi_top(design, prep, out)
        sources, what = list(axi.sources), axi.module
    work = out / ("yosys_axi" if args.axi else "yosys")
    t0 = time.perf_counter()
    res = synthesize(sources, what, spec.target.part, work, flatten=args.flatten)
    print(f"yosys synth_xilinx of {what} ({'flattened' if args.flatten else 'hierarchical'}): "
          f"{time.perf_counter() - t0:.0f} s; all cells in {work / 'stat.json'}")
    print(res.format(part_info(spec.target.part)))
    return 0


def cmd_bitstream(args) -> int:
    """The Vivado project of the AXI-wrapped network on a Zynq UltraScale+ board
    (hls.board.bitstream); without Vivado on PATH it stops after writing the scripts."""
    _quiet_tensorflow()
    from hls.board.bitstream import (
        board_dir,
        board_spec,
        find_hls4ml_verilog,
        find_vivado,
        hls4ml_ip,
        run_vivado,
        wrap_network,
        write_board_project,
    )
    from hls.board.boards import board_info
    from hls.hls4ml_backend.csim import project_dir

    board = board_info(args.board)   # a bad board name stops before any work
    spec = board_spec(_load(args), board, part_flag=args.part)
    out = board_dir(board)
    # --core hls4ml: make synth's exported Verilog, looked up before any work (exit 2)
    vendor = find_hls4ml_verilog(spec) if args.core == "hls4ml" else None
    ip = hls4ml_ip(project_dir(spec)) if vendor is None else None
    print(f"== {spec.name} on {board.name} ({board.part}, {spec.target.clock_mhz:g} MHz): "
          + ("planning, open RTL core and AXI wrapper" if vendor is None else
             f"planning, hls4ml RTL of make synth ({vendor}), its adapter and AXI wrapper"))
    wrapper = wrap_network(spec, out, core=args.core, hls4ml_dir=vendor)
    scripts = write_board_project(board, wrapper, spec.target.clock_mhz, out_dir=out,
                                  ip_repo=ip, jobs=args.jobs)
    print(f"== Vivado project scripts: {', '.join(str(p) for p in scripts.scripts)}; "
          f"{scripts.deploy}")
    if ip is not None:
        print(f"   hls4ml IP of make synth in the project's IP catalog (not wired): {ip}")
    result = run_vivado(find_vivado(scripts), scripts)
    print(result.format())
    return 0 if result.timing_met else 1


def cmd_sim_full(args) -> int:
    """The open RTL of the whole network in Verilator on real photos, against the golden
    model (sim.network.sim_full)."""
    _quiet_tensorflow()
    from sim.network import sim_full

    return 0 if sim_full(args.config, frames=args.frames, stalls=args.stalls,
                         cocotb=args.cocotb) else 1


def cmd_rtl_debug(args) -> int:
    """Per-stream and per-block stall counters of the open RTL over one frame
    (sim.debug_throughput.rtl_debug)."""
    _quiet_tensorflow()
    from sim.debug_throughput import rtl_debug

    ok = rtl_debug(args.config, frames=args.frames, all_edges=args.all,
                   interval=args.interval)
    return 0 if ok else 1


def cmd_compress(args) -> int:
    from hls.plan.prepare import demo_frames
    from model.builder import float_weights
    from model.compress import compress_network, format_sharing_errors, mbytes, sharing_errors
    from model.graph import build_graph

    spec = _load(args)
    nodes = build_graph(spec)
    weights = float_weights(spec, nodes, paths.BUILD / "weights")
    frames = demo_frames(spec)
    frames = frames[: args.frames] if args.frames else frames
    rep = compress_network(spec.name, nodes, weights, [f.pixels for f in frames],
                           sparsity=args.sparsity, per_layer=args.per_layer)
    print(rep.format())
    print(format_sharing_errors(sharing_errors(weights)))
    if args.hw_bits:
        _hardware_sharing(spec, nodes, weights, frames, args.hw_bits)
    print(f"compressed: {mbytes(rep.final_bits()):.2f} MB "
          f"(from {mbytes(rep.dense_bits):.1f} MB at 32-bit) {rep.recipe()}")
    return 0


def _hardware_sharing(spec, nodes, weights, frames, bits_list) -> None:
    """Weight sharing as the hardware does it (spec ``compression.share_bits``): BRAM of
    index ROMs vs 8-bit weights at the spec's folding, and the 8-bit golden model's
    agreement with the uncompressed float model."""
    from dataclasses import replace

    from hls.plan.prepare import prepare
    from model.compress import agreement
    from model.quantize import float_forward, run_golden
    from model.spec import CompressionSpec

    out = nodes[-1].name
    ref = [float_forward(nodes, weights, f.pixels)[out] for f in frames]
    cap = spec.target.target_cycles_per_frame
    print("== weight sharing in hardware: index ROMs + codebook registers, the spec's folding ("
          + (f"capped at {cap:,d} cycles/frame" if cap else "as fast as the part allows")
          + "; bit-exact in C sim and RTL: make csim / make sim-full "
          "CONFIG=configs/squeezenet_v1_1_shared.yaml)")
    for bits in bits_list:
        t0 = time.perf_counter()
        prep = prepare(replace(spec, compression=CompressionSpec(share_bits=bits)),
                       log=lambda *a: None)
        fmt = prep.plan.layers[out].out_fmt
        got = [fmt.to_real(run_golden(prep.nodes, prep.plan, f.pixels)[out]) for f in frames]
        mem = prep.memory
        print(f"  {bits}-bit indices: weight ROMs {mem.weight_bytes:,d} bytes, "
              f"{mem.bram18} BRAM18 ({mem.dense_bram18} with 8-bit weights: "
              f"{mem.dense_bram18 - mem.bram18} saved); 8-bit golden vs float: "
              f"{agreement(ref, got).format()} ({time.perf_counter() - t0:.0f} s)")


@dataclass
class _Labelled:
    x: object
    y: object
    x_test: object
    y_test: object
    test_what: str     # where the test images come from, for messages
    classes: int       # classes present in the data
    source: str


def _labelled_data(spec, args, imagenet_names: bool, without_val: str) -> _Labelled:
    """Training and test images for ``train`` / ``finetune``: ``args.data`` is
    'fashion-mnist' or an image folder ``<dir>/train/<class>/`` (optional ``val/``).

    With ``imagenet_names`` and a 1000-class spec the folders name ImageNet classes (any
    subset); otherwise there is one folder per class of the spec. Without ``val/`` the
    test images are a seeded tenth held out of ``train/`` (``without_val='hold out'``) or
    the training images themselves (``'train'``). ``args.limit`` keeps a seeded subset of
    the training images, ``args.test_images`` the first test images.
    """
    import numpy as np

    from model.datasets import image_folder_classes, load_fashion_mnist, load_image_folder
    from model.spec import SpecError

    if args.data == "fashion-mnist":
        if spec.classes != 10:
            raise SpecError(f"classes: Fashion-MNIST has 10 classes, {args.config} has "
                            f"{spec.classes}")
        shape = {"height": spec.height, "width": spec.width, "channels": spec.channels}
        x, y = load_fashion_mnist(split="train", **shape)
        x_test, y_test = load_fashion_mnist(split="test", **shape)
        test_what, classes = "the Fashion-MNIST test set", 10
    else:
        root = Path(args.data)
        if spec.height != spec.width:
            raise SpecError(f"input: image folders give square frames, {args.config} asks "
                            f"for {spec.height}x{spec.width}")
        folders = image_folder_classes(root)
        if imagenet_names and spec.classes == 1000:
            from model.imagenet import imagenet_label

            labels = np.array([imagenet_label(c) for c in folders], dtype=np.int64)
            first: dict[int, str] = {}
            for name, label in zip(folders, labels.tolist(), strict=True):
                if label in first:
                    raise SpecError(f"{root}/train: class folders {first[label]!r} and "
                                    f"{name!r} both stand for class {label}; keep one")
                first[label] = name
        elif len(folders) == spec.classes:
            labels = np.arange(len(folders))
        else:
            raise SpecError(f"classes: {root}/train has {len(folders)} class folders, "
                            f"{args.config} has {spec.classes} classes")
        pre = {"preprocess": spec.preprocess, "resize": spec.resize}
        x, y = load_image_folder(root, spec.height, folders, "train", spec.channels, **pre)
        y = labels[y]
        classes = len(folders)
        if (root / "val").is_dir():
            x_test, y_test = load_image_folder(root, spec.height, folders, "val",
                                               spec.channels, **pre)
            y_test, test_what = labels[y_test], f"{root}/val"
        elif without_val == "hold out":  # a seeded tenth of train/
            perm = np.random.default_rng(spec.seed).permutation(len(y))
            cut = max(1, len(y) // 10)
            x_test, y_test, x, y = x[perm[:cut]], y[perm[:cut]], x[perm[cut:]], y[perm[cut:]]
            test_what = f"{cut} images held out of {root}/train"
            print(f"no {root}/val: holding out {cut} training images for testing")
        else:
            x_test, y_test, test_what = x, y, "the training images (no val/ folder)"
    if args.limit and args.limit < len(y):  # a seeded subset, every class represented
        keep = np.sort(np.random.default_rng(spec.seed).permutation(len(y))[:args.limit])
        x, y = x[keep], y[keep]
    if args.test_images and args.test_images < len(y_test):
        x_test, y_test = x_test[:args.test_images], y_test[:args.test_images]
    return _Labelled(x, y, x_test, y_test, test_what, classes, str(args.data))


def cmd_train(args) -> int:
    """Train the spec's network (BatchNorm, optionally QAT), fold, save, evaluate 8-bit."""
    _quiet_tensorflow()
    import numpy as np

    from model.graph import build_graph
    from model.train import evaluate_quantized, keras_accuracy, train
    from model.weights import save_weights

    t_start = time.perf_counter()
    spec = _load(args)
    nodes = build_graph(spec)
    data = _labelled_data(spec, args, imagenet_names=False, without_val="hold out")
    x, y, x_test, y_test = data.x, data.y, data.x_test, data.y_test
    n_test = len(y_test)
    calib = x[np.random.default_rng(spec.seed + 1).permutation(len(y))[:args.calib]]
    out = paths.BUILD / "train" / spec.name
    print(f"== {spec.name}: training on {len(y)} images ({args.data}), testing on {n_test}; "
          f"{args.epochs} epochs, batch {args.batch_size}, {args.optimizer} "
          f"{args.schedule}{' lr ' + str(args.lr) if args.lr else ''}"
          f"{', quantization-aware' if args.qat else ''}; checkpoints in {out}")
    res = train(spec, nodes, x, y, x_test, y_test, epochs=args.epochs,
                batch_size=args.batch_size, lr_schedule=args.schedule, lr=args.lr,
                optimizer=args.optimizer, checkpoint_dir=out, resume=not args.restart,
                quantized=args.qat)
    path = save_weights(out / "weights.npz", res.weights)
    print(f"folded weights (BatchNorm in the convs, raw-pixel input): {path}")
    t_train = res.seconds
    print(f"== evaluating {n_test} test images: Keras, float golden path, 8-bit golden model "
          f"(calibrated on {len(calib)} training images)")
    t0 = time.perf_counter()
    k_acc = keras_accuracy(res.model, x_test, y_test)
    ev = evaluate_quantized(spec, nodes, res.weights, x_test, y_test, list(calib))
    t_eval = time.perf_counter() - t0
    print(f"keras model (inference mode) accuracy: {k_acc:.2%}")
    print(f"float accuracy (folded weights, float_forward): {ev.float_accuracy:.2%}")
    print(f"8-bit accuracy (golden model, bit-exact): {ev.int8_accuracy:.2%} "
          f"(top-1 equal to float on {ev.agreement:.2%})")
    print(f"time: total {time.perf_counter() - t_start:.1f} s (training {t_train:.1f} s for "
          f"{res.epochs_done - res.resumed_from} epochs, evaluation {t_eval:.1f} s)")
    return 0


def cmd_finetune(args) -> int:
    """Fine-tune the spec's pretrained weights (optionally pruned first) on an image folder."""
    _quiet_tensorflow()
    import numpy as np

    from model.builder import float_weights
    from model.compress import check_no_layer_emptied, prune
    from model.graph import build_graph
    from model.train import evaluate_quantized, finetune
    from model.weights import save_weights

    t_start = time.perf_counter()
    spec = _load(args)
    nodes = build_graph(spec)
    weights = float_weights(spec, nodes, paths.BUILD / "weights")
    data = _labelled_data(spec, args, imagenet_names=True, without_val="train")
    x, y, x_val, y_val = data.x, data.y, data.x_test, data.y_test
    masks = None
    if args.sparsity:
        weights, masks = prune(weights, args.sparsity, args.per_layer)
        check_no_layer_emptied(masks, args.sparsity, args.per_layer)
    calib = x[np.random.default_rng(spec.seed + 1).permutation(len(y))[:32]]
    before = evaluate_quantized(spec, nodes, weights, x_val, y_val, list(calib))
    out = paths.BUILD / "train" / f"{spec.name}_finetune"
    print(f"== {spec.name}: fine-tuning the {spec.weights} weights"
          f"{f' pruned to {args.sparsity:.0%} zeros (kept at zero)' if masks else ''} on "
          f"{len(y)} images of {data.classes} classes ({data.source}); {args.epochs} epochs, batch "
          f"{args.batch_size}, {args.optimizer} lr {args.lr}"
          f"{', quantization-aware' if args.qat else ''}; checkpoints in {out}")
    res = finetune(spec, nodes, weights, x, y, lr=args.lr, epochs=args.epochs,
                   batch_size=args.batch_size, optimizer=args.optimizer, checkpoint_dir=out,
                   resume=not args.restart, quantized=args.qat, masks=masks, )
    after = evaluate_quantized(spec, nodes, res.weights, x_val, y_val, list(calib))
    path = save_weights(out / "weights.npz", res.weights)
    if masks:
        kept_zero = all(np.all(res.weights[k][0][~m] == 0) for k, m in masks.items())
        zeros = sum(int((res.weights[k][0] == 0).sum()) for k in masks)
        total = sum(m.size for m in masks.values())
        print(f"pruned weights still zero: {kept_zero} ({zeros / total:.1%} of conv weights)")
    print(f"top-1 on {len(y_val)} images of {data.test_what}:")
    print(f"  before: float {before.float_accuracy:.2%}, 8-bit golden {before.int8_accuracy:.2%}")
    print(f"  after:  float {after.float_accuracy:.2%}, 8-bit golden {after.int8_accuracy:.2%}")
    print(f"fine-tuned weights: {path} (use them with 'weights: {path}' in a spec)")
    print(f"time: {time.perf_counter() - t_start:.1f} s (training {res.seconds:.1f} s)")
    return 0


def cmd_distill(args) -> int:
    """Label-free distillation of a pruned spec from its float model (model.distill), with
    the compressed 8-bit design's agreement with the float model before and after."""
    _quiet_tensorflow()
    from dataclasses import replace

    import numpy as np

    from hls.plan.prepare import calibration_photos, prepare
    from model.builder import float_weights
    from model.compress import agreement, check_no_layer_emptied, prune
    from model.distill import TEMPERATURE, augmented_frames, distill
    from model.errors import InputError
    from model.graph import build_graph
    from model.photo_sets import photo_set
    from model.photos import spec_frame
    from model.quantize import float_forward, run_golden
    from model.weights import save_weights

    t_start = time.perf_counter()
    spec = _load(args)
    c = spec.compression
    if c.sparsity <= 0:
        raise InputError(f"{spec.name}: distill fine-tunes a pruned network, and this spec "
                         "prunes nothing (compression.sparsity is 0); the unpruned 8-bit "
                         "design is rounded by GPTQ (quantization.weight_rounding) instead")
    nodes = build_graph(spec)
    teacher = float_weights(spec, nodes, paths.BUILD / "weights")
    student, masks = prune(teacher, c.sparsity, c.per_layer)
    check_no_layer_emptied(masks, c.sparsity, c.per_layer)
    photos, what = calibration_photos(spec)
    frames = augmented_frames([p.rgb for p in photos], spec, args.copies, spec.seed,
                              mix=args.mix)
    out = paths.BUILD / "train" / f"{spec.name}_distill"
    print(f"== {spec.name}: distilling the float model into its {c.sparsity:.0%}-pruned copy "
          f"(pruned weights kept at zero) on {len(frames)} frames of {what} ({args.copies} "
          f"crops and {args.mix} blends with another photo each, no labels); {args.epochs} "
          f"epochs, batch {args.batch_size}, adam lr {args.lr} (linear decay), "
          f"T = {TEMPERATURE}; checkpoints in {out}")
    res = distill(spec, nodes, teacher, student, masks, frames, args.epochs, args.lr,
                  batch_size=args.batch_size, checkpoint_dir=out, resume=not args.restart)
    path = save_weights(out / "weights.npz", res.weights)
    kept_zero = all(np.all(res.weights[k][0][~m] == 0) for k, m in masks.items())
    print(f"pruned weights still zero: {kept_zero}; distilled weights: {path}")
    if res.history:
        first, last = res.history[0], res.history[-1]
        print(f"distillation loss {first['loss']:.4f} (epoch 1) -> {last['loss']:.4f} "
              f"(epoch {last['epoch']}); training {res.seconds:.1f} s")
    evaluation = photo_set("evaluation")
    if args.eval_limit:
        evaluation = evaluation[:args.eval_limit]
    eval_frames = [spec_frame(p.rgb, spec) for p in evaluation]
    gap = nodes[-1].name
    ref = [float_forward(nodes, teacher, f)[gap] for f in eval_frames]
    print(f"agreement of the compressed 8-bit design (golden model) with the unpruned float "
          f"model on {len(eval_frames)} photos of the evaluation set:")
    quiet = dict(log=lambda *a: None)
    for label, s in (("before", spec), ("after", replace(spec, weights=str(path)))):
        prep = prepare(s, **quiet)
        got = [run_golden(prep.nodes, prep.plan, f)[gap] for f in eval_frames]
        ag = agreement(ref, got)
        print(f"  {label}: top-1 agreement {100 * ag.top1 / ag.frames:.1f}%, top-5 overlap "
              f"{100 * ag.top5_overlap / (5 * ag.frames):.1f}%")
    print(f"use them with 'weights: {path}' and the same compression: section in a spec")
    print(f"time: {time.perf_counter() - t_start:.1f} s")
    return 0


def cmd_dse(args) -> int:
    """SR x pct3x3 design-space exploration (paper Section 5): size, hardware, accuracy."""
    _quiet_tensorflow()
    from dataclasses import replace as _replace

    from hls import dse

    t_start = time.perf_counter()
    dse.check_engine(args.engine)  # fail before any work when ray / dask is missing
    grid = dse.make_grid(args.sr, args.pct, args.grid)
    spec = _load(args)
    settings = dse.FULL if args.full else dse.SHORT
    overrides = {k: getattr(args, k) for k in ("epochs", "limit", "test_images", "calib",
                                                "batch_size", "lr", "fps", "dsp")
                 if getattr(args, k) is not None}
    settings = _replace(settings, **overrides, qat=args.qat, data=args.data)
    res = dse.run_dse(spec, grid, settings, args.out or dse.DEFAULT_OUT, engine=args.engine,
                      workers=args.workers, address=args.address, restart=args.restart)
    print(dse.format_table(res.rows))
    print("P: on the Pareto front of 8-bit accuracy (max), weight bytes (min), BRAM18 (min), "
          "frames/s (max)")
    for name, path in res.paths.items():
        print(f"{name}: {path}")
    print(f"sweep wall time: {time.perf_counter() - t_start:.1f} s for {len(res.rows)} points "
          f"({res.computed} computed, {res.reused} reused; engine {args.engine}, "
          f"{args.workers} workers)")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the product's error format: one ``error:`` line, exit 2."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\n")


def _int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer in lo..hi (hi None: no upper bound)."""
    allowed = f"an integer >= {lo}" if hi is None else f"an integer {lo}..{hi}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {value}")
        return value

    return parse


def _real_in(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False):
    """An argparse type: a finite number in [lo, hi] (an open end excludes it)."""
    allowed = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if (not math.isfinite(value) or value < lo or value > hi
                or (lo_open and value == lo) or (hi_open and value == hi)):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text}")
        return value

    return parse


def _output_dir(text: str) -> Path:
    """An argparse type: an output folder, which must lie inside the build folder."""
    try:
        return paths.build_path(Path(text).absolute())
    except SqzError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# The ranges of the numeric flags: those of the spec where a spec key says the same.
COUNT = _int_in(0)                        # 0 = all
POSITIVE = _int_in(1)
CLOCK_MHZ = _real_in(10.0, 800.0)         # model.spec.CLOCK_MHZ
FRACTION = _real_in(0.0, 1.0, hi_open=True)
LEARNING_RATE = _real_in(0.0, 10.0, lo_open=True)
SHARE_BITS = _int_in(2, 7)                # compression.share_bits with 8-bit weights


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="sqz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, fn, help_ in (("info", cmd_info, "parameters, MACs and weight bytes"),
                            ("classify", cmd_classify,
                             "top-5 classes of your images on the 8-bit integer path"),
                            ("eval", cmd_eval, "accuracy, agreement with float and "
                             "saturation of the 8-bit design on an image folder"),
                            ("csim", cmd_csim, "hls4ml C simulation, bit-exact check"),
                            ("synth", cmd_synth, "vendor HLS synthesis and IP export"),
                            ("perf", cmd_perf, "per-layer folding, cycles, efficiency, chart"),
                            ("rtl-synth", cmd_rtl_synth, "Yosys resources of the open RTL"),
                            ("bitstream", cmd_bitstream, "Vivado project, bitstream and .hwh "
                             "of the AXI-wrapped network for a Zynq UltraScale+ board"),
                            ("sim-full", cmd_sim_full,
                             "the open RTL in Verilator on real photos, bit-exact check"),
                            ("rtl-debug", cmd_rtl_debug,
                             "stall counters of the open RTL per stream and block"),
                            ("compress", cmd_compress,
                             "Deep Compression sizes: pruning, weight sharing, Huffman"),
                            ("train", cmd_train,
                             "train (BatchNorm, resumable), fold, 8-bit test accuracy"),
                            ("finetune", cmd_finetune,
                             "fine-tune pretrained (optionally pruned) weights on an image "
                             "folder"),
                            ("distill", cmd_distill,
                             "label-free distillation of a pruned spec from its float model"),
                            ("dse", cmd_dse,
                             "SR x pct3x3 sweep: size, folding, BRAM, fps, accuracy")):
        p = sub.add_parser(name, help=help_)
        # A path, or the name of a bundled config (tiny, squeezenet_v1_1_shared, ...).
        p.add_argument("--config", default=paths.DEFAULT_CONFIG, type=paths.config_path)
        p.set_defaults(fn=fn)
        if name in ("csim", "synth", "perf", "rtl-synth", "bitstream"):
            p.add_argument("--backend", help="Vitis or Vivado (default: the config's)")
            p.add_argument("--part", help="FPGA part (default: the config's)")
            p.add_argument("--clock-mhz", type=CLOCK_MHZ,
                           help="target clock (default: the config's)")
        if name in ("csim", "synth", "rtl-synth", "classify", "eval", "bitstream"):
            p.add_argument("--calibration", metavar="SET_OR_DIR",
                           help="calibration photos: photo-set (the pinned set, default), "
                                "bundled (the demo photos) or a folder of images")
        if name == "classify":
            p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
            # not `backend`: _load reads that as the hls4ml backend (Vitis / Vivado)
            p.add_argument("--backend", dest="infer_backend", default="golden",
                           help="golden (numpy golden model, default), csim (hls4ml C "
                                "simulation), rtl (the open RTL in Verilator) or board (the "
                                "bitstream on a PYNQ board: needs --bitfile)")
            p.add_argument("--bitfile", metavar="PATH",
                           help="--backend board: the bitstream (.bit, its .hwh beside it)")
            p.add_argument("--json", action="store_true",
                           help='print only a JSON list of {"image", "top5": [{"index", '
                                '"name", "prob"}]} on stdout (logs go to stderr)')
            p.add_argument("--top", type=_int_in(1, 1000), default=5,
                           help="classes per image (default 5)")
        if name == "eval":
            p.add_argument("--data", required=True,
                           help="image folder: class sub-folders named by ImageNet class "
                                "name, index or WordNet id (n01440764, the ILSVRC-2012 val "
                                "layout), or a flat folder of unlabelled images")
            p.add_argument("--limit", type=COUNT, default=0,
                           help="evaluate a seeded random subset of N images (0 = all)")
            p.add_argument("--csim", type=COUNT, default=0,
                           help="also run the first K images through the hls4ml C "
                                "simulation, checked bit-exact (default 0)")
            p.add_argument("--out", type=_output_dir, default=None,
                           help="output folder inside build/ (default build/eval/<spec name>)")
        if name == "bitstream":
            p.add_argument("--board", default="zcu102",
                           help="zcu102 (default), zcu104 or kv260; it sets the part")
            p.add_argument("--jobs", type=_int_in(1, 64), default=4,
                           help="Vivado runs in parallel (launch_runs -jobs, default 4)")
            p.add_argument("--core", choices=("open", "hls4ml"), default="open",
                           help="the core in the wrapper: open (the open RTL, default) or "
                                "hls4ml (the Verilog make synth exported, behind the "
                                "stream adapter)")
        if name == "rtl-synth":
            p.add_argument("--flatten", action="store_true",
                           help="flatten before synthesis (cross-module optimisation; "
                                "hours on the full v1.1, default: keep the hierarchy)")
            p.add_argument("--axi", action="store_true",
                           help="synthesise the board's top: the network behind its AXI "
                                "wrapper (DMA streams, registers; make bitstream's core)")
        if name == "csim":
            p.add_argument("--frames", type=COUNT, default=0, help="limit the photos (0 = all)")
            p.add_argument("-v", "--verbose", action="store_true",
                           help="per-layer memory table")
        if name == "compress":
            p.add_argument("--sparsity", type=FRACTION, default=0.63,
                           help="fraction of kernel weights pruned (default 0.63)")
            p.add_argument("--per-layer", action="store_true",
                           help="one pruning threshold per layer (default: one global)")
            p.add_argument("--hw-bits", type=SHARE_BITS, nargs="*", default=[6, 4],
                           help="index widths for the hardware weight-sharing rows "
                                "(default 6 4; none to skip)")
            p.add_argument("--frames", type=COUNT, default=0,
                           help="limit the agreement photos (0 = all)")
        if name == "finetune":
            p.add_argument("--data", required=True,
                           help="image folder <dir>/train/<class>/*.jpg (ImageNet specs: "
                                "folders named by class name or index), optional val/; or "
                                "'fashion-mnist'")
            p.add_argument("--limit", type=COUNT, default=0,
                           help="train on a seeded subset of this many images (0 = all)")
            p.add_argument("--test-images", type=COUNT, default=0,
                           help="evaluate on the first N test images (0 = all)")
            p.add_argument("--sparsity", type=FRACTION, default=0.0,
                           help="prune to this fraction of zeros first, kept at zero")
            p.add_argument("--per-layer", action="store_true",
                           help="one pruning threshold per layer (default: one global)")
            p.add_argument("--epochs", type=POSITIVE, default=1, help="default 1")
            p.add_argument("--batch-size", type=_int_in(1, 4096), default=16, help="default 16")
            p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam")
            p.add_argument("--lr", type=LEARNING_RATE, default=1e-4, help="default 1e-4")
            p.add_argument("--qat", action="store_true", help="quantization-aware (QKeras)")
            p.add_argument("--restart", action="store_true",
                           help="ignore an existing checkpoint")
        if name == "distill":
            p.add_argument("--epochs", type=POSITIVE, default=12, help="default 12")
            p.add_argument("--copies", type=_int_in(1, 64), default=8,
                           help="random crops per calibration photo (default 8)")
            p.add_argument("--mix", type=_int_in(0, 64), default=8,
                           help="blends of two photos per calibration photo (default 8)")
            p.add_argument("--batch-size", type=_int_in(1, 4096), default=32, help="default 32")
            p.add_argument("--lr", type=LEARNING_RATE, default=1e-3, help="default 1e-3")
            p.add_argument("--eval-limit", type=COUNT, default=0,
                           help="agreement on the first N evaluation photos (0 = all)")
            p.add_argument("--restart", action="store_true",
                           help="ignore an existing checkpoint")
        if name == "train":
            p.add_argument("--data", default="fashion-mnist",
                           help="'fashion-mnist' or an image folder <dir>/train/<class>/*.jpg")
            p.add_argument("--epochs", type=COUNT, default=3, help="epochs (default 3)")
            p.add_argument("--batch-size", type=_int_in(1, 4096), default=64, help="default 64")
            p.add_argument("--limit", type=COUNT, default=0,
                           help="train on a seeded subset of N images (0 = all)")
            p.add_argument("--schedule", choices=("linear", "constant"), default="linear",
                           help="learning rate: linear decay to 0 (the paper's) or constant")
            p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                           help="sgd (momentum 0.9, lr 0.04) or adam (lr 1e-3)")
            p.add_argument("--lr", type=LEARNING_RATE, default=None, help="initial learning rate")
            p.add_argument("--qat", action="store_true",
                           help="quantization-aware: QKeras 8-bit weights and activations")
            p.add_argument("--restart", action="store_true",
                           help="ignore existing checkpoints")
            p.add_argument("--test-images", type=COUNT, default=1000,
                           help="test images evaluated (0 = all)")
            p.add_argument("--calib", type=POSITIVE, default=64,
                           help="training images used to calibrate the 8-bit formats")
        if name in ("sim-full", "rtl-debug"):
            p.add_argument("--frames", type=POSITIVE, default=3, help="photos to run (default 3)")
        if name == "sim-full":
            p.add_argument("--stalls", action="store_true",
                           help="random input stalls and output backpressure (slower)")
            p.add_argument("--cocotb", action="store_true",
                           help="run the cocotb bench instead of the fast C++ driver (~10x "
                                "slower, no FIFO occupancy report)")
        if name == "rtl-debug":
            p.add_argument("--all", action="store_true",
                           help="print every edge, not only those with stalls")
            p.add_argument("--interval", type=COUNT, default=None,
                           help="which interval between frame ends to show (0 = first)")
        if name == "dse":
            p.set_defaults(config=paths.TRAIN_CONFIG)
            p.add_argument("--sr", help="squeeze ratios, e.g. 0.125,0.25 (default "
                           "0.125,0.25,0.5,0.75; each in (0, 1])")
            p.add_argument("--pct", help="pct3x3 values, e.g. 0.5 (default "
                           "0.01,0.25,0.5,0.75,0.99; each in (0, 1))")
            p.add_argument("--grid", type=Path, help="YAML grid file {SR: [...], "
                           "pct3x3: [...]}; --sr / --pct override its axes")
            p.add_argument("--full", action="store_true", help="paper-like schedule: 10 "
                           "epochs on all 60,000 images, all 10,000 test images (default: 1 "
                           "epoch on 10,000 images, 1,000 test images)")
            p.add_argument("--epochs", type=COUNT, help="epochs per point (0 = no training, "
                           "hardware metrics only)")
            p.add_argument("--limit", type=COUNT, help="training images, a seeded subset (0 = all)")
            p.add_argument("--test-images", type=COUNT, help="test images (0 = all)")
            p.add_argument("--calib", type=POSITIVE, help="calibration images (default 32)")
            p.add_argument("--batch-size", type=_int_in(1, 4096), help="default 64")
            p.add_argument("--lr", type=LEARNING_RATE,
                           help="initial learning rate (SGD default 0.04)")
            p.add_argument("--qat", action="store_true",
                           help="quantization-aware training (QKeras 8-bit)")
            p.add_argument("--fps", type=_real_in(0.0, 1e6, lo_open=True),
                           help="target frames/s for the folding (default: the spec's "
                                "target_cycles_per_frame at its clock)")
            p.add_argument("--dsp", type=POSITIVE, help="multiplier budget (default: the part's "
                           "DSP slices)")
            p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist', a folder "
                           "with its IDX .gz files, or 'synthetic:N' (smoke tests)")
            p.add_argument("--engine", default="local", choices=("local", "ray", "dask",
                                                                 "serial"),
                           help="local processes (default), a Ray or Dask cluster, or serial "
                           "in this process")
            p.add_argument("--workers", type=_int_in(1, 256), default=2,
                           help="parallel points (local processes / local cluster; default 2)")
            p.add_argument("--address", help="Ray / Dask scheduler address (default: start "
                           "a local one)")
            p.add_argument("--out", type=_output_dir, default=None,
                           help="output folder inside build/ (default build/dse)")
            p.add_argument("--restart", action="store_true",
                           help="recompute points already in <out>/points")
    args = parser.parse_args(argv)
    if argv is None:  # the sqz program itself (not a test calling main): a kill of this
        from model.children import install  # process stops its g++ / Verilator / pip too

        install()
    # Only what the user can fix is reported as one line; anything else is a bug and
    # keeps its traceback.
    try:
        return args.fn(args)
    except SqzError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
