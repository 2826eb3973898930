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

from hls.plan.folding import LayerFolding, fold_options, fold_to_budget
from hls.plan.memory import MemoryReport, memory_report
from hls.plan.streams import FifoPlan, fifo_plan
from model import paths
from model.builder import float_weights
from model.errors import DoesNotFitError
from model.fixed import FixedFormat
from model.graph import Node, build_graph
from model.quantize import FloatWeights, QuantPlan, calibrate
from model.spec import NetworkSpec


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
    # the float model: the weights before compression and bias correction (None when
    # ``weights`` are those; see ``reference``)
    uncompressed: FloatWeights | None = None
    # where the calibration frames came from (spec quantization.calibration), one line
    calibration: str = ""

    @property
    def reference(self) -> FloatWeights:
        """The float model the 8-bit design is measured against."""
        return self.uncompressed if self.uncompressed is not None else self.weights


# A calibration folder is read up to this many images (sorted by path).
MAX_CALIBRATION_IMAGES = 256


def calibration_photos(spec: NetworkSpec, log=print) -> tuple[list, str]:
    """The photos ``quantization.calibration`` names (``model.photos.Photo``) and a line
    saying where they come from. A folder is read recursively (sorted, at most
    MAX_CALIBRATION_IMAGES); a file in it that is not a readable image stops it, naming
    the file."""
    from model.photos import bundled_photos, load_image

    source = spec.quant.calibration
    if source == "bundled":
        photos = bundled_photos()
        what = (f"the {len(photos)} bundled demo photos (the csim photos themselves: their "
                "fidelity is then not independent)")
    elif source == "photo-set":
        from model.photo_sets import photo_set

        photos = photo_set("calibration", log=log)
        what = (f"{len(photos)} photos of the pinned calibration set (model/photo_sets.py; "
                "disjoint from the demo photos and the evaluation set)")
    else:
        from pathlib import Path

        from model.errors import InputError

        files = sorted(p for p in Path(source).rglob("*") if p.is_file()
                       and not p.name.startswith("."))
        if not files:
            raise InputError(f"calibration folder {source} holds no files")
        if len(files) > MAX_CALIBRATION_IMAGES:
            log(f"calibration: {len(files)} files in {source}; using the first "
                f"{MAX_CALIBRATION_IMAGES} (sorted by path)")
            files = files[:MAX_CALIBRATION_IMAGES]
        photos = [load_image(f) for f in files]
        what = f"{len(photos)} images of {source}"
    return photos, what


def calibration_frames(spec: NetworkSpec, log=print) -> tuple[list[Frame], str]:
    """``calibration_photos`` as the network's input frames (``model.photos.spec_frame``)."""
    from model.photos import spec_frame

    photos, what = calibration_photos(spec, log)
    return [Frame(p.name, spec_frame(p.rgb, spec)) for p in photos], what


def demo_frames(spec: NetworkSpec) -> list[Frame]:
    """The bundled real photos as the network's input frames (raw BGR, the spec's
    preprocessing: model.photos.spec_frame)."""
    from model.photos import bundled_photos, spec_frame

    return [Frame(p.name, spec_frame(p.rgb, spec)) for p in bundled_photos()]


def fold(spec: NetworkSpec, nodes: list[Node], cap: int | None = None,
         dsp: int | None = None, rom_bits: dict[str, int] | None = None,
         bram18: int | None = None) -> dict[str, LayerFolding]:
    """The fastest folding within ``dsp`` DSP slices (default: the part's) and, given the
    weight ROM bits per conv (``rom_bits``; default the spec's weight bits), ``bram18``
    BRAM18 for the folding-dependent memories (default: the part's); ``cap`` (default the
    spec's optional ``target_cycles_per_frame``) stops it below that many cycles/frame."""
    from hls.plan.memory import conv_bram18
    from hls.plan.parts import part_info

    part = part_info(spec.target.part)
    bits = rom_bits or {}

    def bram_of(f: LayerFolding) -> int:
        return conv_bram18(f, bits.get(f.name, spec.quant.weight_bits))

    # two lanes share a DSP48E2 (not a DSP48E1) with 8-bit weights (activations are 8-bit)
    return fold_to_budget(nodes, dsp or part.dsp,
                          cap if cap is not None else spec.target.target_cycles_per_frame,
                          bram_of, part.bram18 if bram18 is None else bram18,
                          packing=part.dsp_pack and spec.quant.weight_bits <= 8)


def _fold_to_fit(spec: NetworkSpec, nodes: list[Node], plan: QuantPlan
                 ) -> tuple[dict[str, LayerFolding], FifoPlan, MemoryReport]:
    """``fold`` with the block RAM the rest of the design (line buffers, FIFOs) leaves free,
    adjusted until the whole memory report fits; a design that fits in no folding gets the
    slowest one, whose memory report then names what does not fit."""
    from hls.plan.memory import conv_bram18
    from hls.plan.parts import part_info

    rom_bits = {name: lq.share_bits if lq.shared else lq.w_fmt.width
                for name, lq in plan.layers.items() if lq.kind == "conv"}
    part_bram = part_info(spec.target.part).bram18
    budget = part_bram
    for _ in range(6):
        try:
            folding = fold(spec, nodes, rom_bits=rom_bits, bram18=budget)
        except DoesNotFitError:
            break
        fifo, mem = fifos_and_memory(spec, nodes, plan, folding)
        over = mem.bram18 - part_bram
        if over <= 0:
            return folding, fifo, mem
        budget = sum(conv_bram18(f, rom_bits[f.name]) for f in folding.values()) - over
    slowest = {name: min(opts, key=lambda f: (f.multipliers, f.simd))
               for name, opts in fold_options(nodes).items()}
    return slowest, *fifos_and_memory(spec, nodes, plan, slowest)


def fifos_and_memory(spec: NetworkSpec, nodes: list[Node], plan: QuantPlan,
                     folding: dict[str, LayerFolding]) -> tuple[FifoPlan, MemoryReport]:
    """The FIFO policy's FIFOs and the on-chip memory budget of a folded, quantized design."""
    fifo = fifo_plan(nodes, folding, plan)
    return fifo, memory_report(nodes, plan, folding, fifo, spec.target.part)


# The float model's largest activation tensor (calibration holds a few per frame): more
# than this many values is refused before anything is allocated.
MAX_ACTIVATION_VALUES = 64 * 2**20


def check_bounds(spec: NetworkSpec, nodes: list[Node]) -> None:
    """Refuse, from the graph alone and before any weight or activation is allocated, a
    network whose weights cannot fit the part's block RAM whatever the folding, or whose
    activations are too large to calibrate here; the message gives the figures."""
    from hls.plan.parts import part_info

    part = part_info(spec.target.part)
    weight_bits = sum(n.weight_count for n in nodes) * spec.quant.weight_bits
    capacity = part.bram18 * 18 * 1024 + part.uram * 288 * 1024
    if weight_bits > capacity:
        raise DoesNotFitError(
            f"{spec.name} does not fit {spec.target.part}: its weights alone need "
            f"{weight_bits:,d} bits, the part's block RAM holds {capacity:,d} "
            f"({part.bram18:,d} BRAM18{f' + {part.uram} URAM' if part.uram else ''})")
    big = max(nodes, key=lambda n: n.out_shape[0] * n.out_shape[1] * n.out_shape[2])
    values = big.out_shape[0] * big.out_shape[1] * big.out_shape[2]
    if values > MAX_ACTIVATION_VALUES:
        raise DoesNotFitError(
            f"{spec.name}: layer {big.name} outputs {'x'.join(map(str, big.out_shape))} = "
            f"{values:,d} values per frame; at most {MAX_ACTIVATION_VALUES:,d} are allowed "
            "(input size and filters of the spec)")


def round_weights(spec: NetworkSpec, nodes: list[Node], weights: FloatWeights,
                  calib: list[np.ndarray], log=print
                  ) -> tuple[FloatWeights, dict[str, FixedFormat], dict[str, float]]:
    """The float kernels as the hardware stores them, each conv's 8-bit weight format, and
    the activation calibration levels (``model.quantize.activation_levels`` of the float
    network the design reproduces).

    The dense design is first equalized (``quantization.equalize``, exact in float); a
    spec with ``compression`` is pruned and shared (``model.compress``). Every kernel is then
    rounded onto its grid (the format, or the shared codebook with pruned weights at zero),
    by GPTQ (``model.gptq``: on the calibration frames, with the activations on their
    8-bit grids) or to the nearest value (``quantization.weight_rounding``; 'auto' is GPTQ
    except for pruned specs), and its biases
    absorb the mean shift this causes (bias correction: always with compression,
    ``quantization.bias_correction`` otherwise). With ``compression.tune_epochs``, the
    shared codebooks and the biases are then fine-tuned (``model.codebook_tune``). The
    returned kernels lie on their grids,
    so ``calibrate`` with these formats stores exactly them.
    """
    from model.compress import compress_weights, correct_biases
    from model.gptq import codebook_grid, gptq_network, uniform_grid
    from model.quantize import activation_format, activation_levels, output_bits, weight_format

    q, c = spec.quant, spec.compression
    bits = c.bits_by_layer([n.name for n in nodes if n.kind == "conv"])
    if c.active:  # Deep Compression in float; its kernels are the grid, the float the target
        target = weights
        importance = None
        if c.share_bits and c.codebook_weighting == "hessian":
            from model.compress import input_hessian_diagonals

            t_h = time.perf_counter()
            importance = input_hessian_diagonals(nodes, weights, calib)
            log(f"compression: codebooks weighted by the input Hessian diagonals of "
                f"{len(importance)} convs on {len(calib)} calibration frames "
                f"({time.perf_counter() - t_h:.1f} s)")
        compressed, masks = compress_weights(weights, c.sparsity, c.per_layer, bits,
                                             importance=importance)
    else:
        target = weights
        if q.equalize:  # exact in float: the reference logits do not change
            from model.equalize import equalize

            target = equalize(nodes, weights)
        compressed, masks = target, {}
    formats = {name: weight_format(w[masks[name]] if name in masks and masks[name].any()
                                   else w, q.weight_bits)
               for name, (w, _b) in compressed.items()}
    grids = {}
    for name, (w, _b) in compressed.items():
        keep = masks.get(name)
        keep = None if keep is None else keep.reshape(-1, w.shape[-1])
        if bits.get(name):
            grids[name] = codebook_grid(np.append(np.unique(w), 0.0), keep)
        else:
            grids[name] = uniform_grid(formats[name], keep)
    levels = activation_levels(nodes, target, calib, spec)
    correct = c.active or q.bias_correction
    rounding = q.weight_rounding
    if rounding == "auto":  # GPTQ measured worse than nearest on pruned designs
        rounding = "nearest" if c.sparsity > 0 else "gptq"
    act_formats = {name: activation_format(levels[name], bits)
                   for name, bits in output_bits(nodes, spec).items()}
    if rounding == "gptq":
        rounded = gptq_network(nodes, target, calib, grids, act_formats, correct, log=log,
                               cache=paths.BUILD / "gptq")
    else:
        rounded = {}
        for name, (w, b) in compressed.items():
            r = grids[name].round_kernel(w.reshape(-1, w.shape[-1]))
            rounded[name] = (r.reshape(w.shape).astype(w.dtype), b)
        if correct:
            rounded = correct_biases(nodes, target, rounded, calib)
    if c.tune_epochs:   # Deep Compression's centroid retraining, label-free
        from model.codebook_tune import tune_codebooks

        rounded = tune_codebooks(nodes, target, rounded, formats, act_formats, calib,
                                 c.tune_epochs, c.tune_lr, spec.seed,
                                 cache=paths.BUILD / "codebook_tune", log=log)
    if c.active:
        log("compression: "
            + (f"pruned to {c.sparsity:.0%} zeros{' per layer' if c.per_layer else ''}"
               if c.sparsity else "no pruning")
            + (f", weights shared in {2**c.share_bits}-entry codebooks ({c.share_bits}-bit "
               "indices)" if c.share_bits else "")
            + "".join(f"; {p}: " + (f"{b}-bit indices" if b else "not shared")
                      for p, b in c.layer_bits)
            + (f"; {c.index_bits_per_weight({n: w.size for n, (w, _) in compressed.items()}):.2f}"
               " index bits per weight on average" if c.layer_bits else "")
            + "; biases corrected"
            + (f"; codebooks fine-tuned ({c.tune_epochs} epochs)" if c.tune_epochs else ""))
    return rounded, formats, levels


def prepare(spec: NetworkSpec, log=print, demo: bool = True) -> Prepared:
    """Weights, calibration, quantization plan and folding of ``spec``; ``frames`` are the
    bundled demo photos (``demo=False``: none, and scikit-image / scikit-learn, which
    bundle them, are not imported: what a board running only ``sqz classify`` needs)."""
    t0 = time.perf_counter()
    nodes = build_graph(spec)
    check_bounds(spec, nodes)
    weights = float_weights(spec, nodes, paths.BUILD / "weights")
    t1 = time.perf_counter()
    frames = demo_frames(spec) if demo else []
    calib, calib_what = calibration_frames(spec, log)
    original = weights
    weights, formats, levels = round_weights(spec, nodes, weights,
                                             [f.pixels for f in calib], log)
    plan = calibrate(nodes, weights, [f.pixels for f in calib], spec, formats, levels)
    t2 = time.perf_counter()
    folding, fifo, mem = _fold_to_fit(spec, nodes, plan)
    bottleneck = max(f.cycles for f in folding.values())
    cap = spec.target.target_cycles_per_frame
    if cap is not None and bottleneck > cap:
        log(f"folding: {cap:,d} cycles/frame needs more DSP slices or block RAM than "
            f"{spec.target.part} has; the fastest that fits is {bottleneck:,d}")
    problems = mem.fits()
    if problems:
        raise DoesNotFitError(f"{spec.name} does not fit {spec.target.part}: "
                              + "; ".join(problems))
    return Prepared(spec, nodes, weights, frames, plan, folding, fifo, mem,
                    {"weights_s": t1 - t0, "calibration_s": t2 - t1}, original, calib_what)


