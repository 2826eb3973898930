"""Quantization plan: calibrated fixed-point formats and integer weights for every block.

One ``QuantPlan`` is the single source of truth for numbers. It renders to the QKeras
quantizers (``model.builder``), the hls4ml per-layer precisions
(``hls.hls4ml_backend.convert``) and the golden model's integer forward pass (``run_golden`` here).

Formats (all AP_RND rounding, AP_SAT saturation):
- input: the raw 8-bit camera pixel, ``ap_ufixed<8,8>`` (integers 0..255).
- conv weights: ``ap_fixed<8,Iw>`` per layer, Iw the smallest that holds max|w|.
- conv bias: at most ``bias_bits`` wide, on the accumulator grid when it fits; a bias
  below half an accumulator LSB is ``ap_fixed<2,...>`` on that grid (it rounds to 0).
- accumulator: exact: as many bits as the worst-case sum over the layer's real weights.
- conv result before ReLU: ``ap_fixed<9,Io+1>``; after ReLU: ``ap_ufixed<8,Io>``, Io from
  the float activations on calibration photos (the two expand convs of a Fire module
  share one format so their concatenation is exact).
- the classifier conv (conv10: read only by the global average pool) is
  ``ap_fixed<classifier_bits+1,Io+1>`` / ``ap_ufixed<classifier_bits,Io>``: its outputs feed no
  multiplier, only the pool's adder, so the wider grid costs no DSP. At 8 bits its
  rounding cost the v1.1 design 0.8 points of top-5 overlap with the float model
  (243 evaluation photos: 96.3% / 94.7% top-1 agreement / top-5 overlap at 8 bits,
  96.7% / 95.5% at 16).
- global average pool output (the logits): ``ap_ufixed<logit_bits,Il>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from model import golden
from model.errors import InputError
from model.fixed import FixedFormat, bits_for_signed
from model.graph import Node
from model.spec import NetworkSpec

INPUT_FORMAT = FixedFormat(8, 8, signed=False)
FloatWeights = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class LayerQuant:
    """Formats of one block; conv blocks also carry their integer weights."""

    name: str
    kind: str
    out_fmt: FixedFormat
    pre_fmt: FixedFormat | None = None      # conv result before ReLU
    w_fmt: FixedFormat | None = None
    b_fmt: FixedFormat | None = None
    acc_fmt: FixedFormat | None = None
    w_q: np.ndarray | None = field(default=None, repr=False)
    b_q: np.ndarray | None = field(default=None, repr=False)
    # Weight sharing (spec.compression.share_bits > 0): w_q == w_codebook[w_idx] exactly;
    # the hardware stores share_bits-bit indices and the 2**share_bits-entry codebook.
    share_bits: int = 0
    w_codebook: np.ndarray | None = field(default=None, repr=False)
    w_idx: np.ndarray | None = field(default=None, repr=False)

    @property
    def shared(self) -> bool:
        return self.share_bits > 0


@dataclass
class QuantPlan:
    input_fmt: FixedFormat
    layers: dict[str, LayerQuant]

    def fmt_of(self, name: str) -> FixedFormat:
        return self.input_fmt if name not in self.layers else self.layers[name].out_fmt


def float_node(n: Node, ins: list[np.ndarray], weights: FloatWeights) -> np.ndarray:
    """One block of the float32 reference network on its input arrays ``ins``."""
    if n.kind == "conv":
        w, b = weights[n.name]
        return golden.conv2d_float(ins[0], w, b, n.stride, n.pad, relu=True)
    if n.kind == "maxpool":
        return golden.maxpool_ceil(ins[0])
    if n.kind == "concat":
        return np.concatenate(ins, axis=-1)
    if n.kind == "add":
        return ins[0] + ins[1]
    if n.kind == "gap":
        return ins[0].mean(axis=(0, 1))
    raise ValueError(f"{n.name}: unknown block kind {n.kind}")


def float_forward(nodes: list[Node], weights: FloatWeights, frame: np.ndarray) -> dict:
    """Float32 reference forward pass (ReLU network, ceil pools, mean GAP): name -> array."""
    out: dict[str, np.ndarray] = {"frame": np.asarray(frame, dtype=np.float32)}
    for n in nodes:
        out[n.name] = float_node(n, [out[i] if i in out else out["frame"] for i in n.inputs],
                                 weights)
    return out


def _int_bits_unsigned(value: float, width: int) -> int:
    """Integer bits of an unsigned ``width``-bit format whose range just covers ``value``.

    Never below 0: activations are QKeras ``quantized_relu`` tensors, and QKeras 0.9.0
    cannot express a negative integer part (see ``FixedFormat.qkeras_expressible``).
    """
    if value <= 0:
        return 0
    return max(math.ceil(math.log2(value * (1 + 2.0**-width))), 0)


def rounded_weights(weights: FloatWeights, quant) -> FloatWeights:
    """The float weights rounded to each layer's 8-bit weight format, as the plan stores
    them (biases unchanged)."""
    out = {}
    for name, (w, b) in weights.items():
        fmt = weight_format(w, quant.weight_bits)
        out[name] = (fmt.to_real(fmt.quantize(w)).astype(w.dtype), b)
    return out


MSE_CANDIDATES = 5        # integer-bit choices tried below the one that covers the maximum
MSE_SAMPLE = 4_000_000    # activation values the squared error is measured on (seeded)


def _candidates(top_value: float, bits: int) -> range:
    """Integer bits tried: the format covering ``top_value`` and MSE_CANDIDATES - 1 finer."""
    top = _int_bits_unsigned(top_value, bits)
    return range(top, max(top - MSE_CANDIDATES, 0) - 1, -1)


def _level_of(int_bits: int, bits: int) -> float:
    """A calibration level that ``_int_bits_unsigned`` maps back to ``int_bits``."""
    return 0.0 if int_bits == 0 else 2.0**int_bits / (1 + 2.0**-bits) * (1 - 2.0**-20)


def _rounded(x: np.ndarray, int_bits: int, bits: int) -> np.ndarray:
    step = 2.0 ** (int_bits - bits)
    return np.clip(np.floor(x / step + 0.5), 0, 2**bits - 1) * step


def _mse_level(x: np.ndarray, bits: int, seed: int = 0) -> float:
    """The calibration level whose unsigned ``bits``-bit format gives ``x`` (ReLU
    outputs) the least mean squared error after AP_RND rounding and AP_SAT saturation,
    among the format covering ``x.max()`` and the MSE_CANDIDATES - 1 narrower ones (finer
    steps, more saturation). Returned as a level that ``_int_bits_unsigned`` maps to the
    chosen integer bits."""
    if x.size > MSE_SAMPLE:
        x = np.random.default_rng(seed).choice(x, MSE_SAMPLE, replace=False)
    x = x.astype(np.float64)
    best, best_err = 0, math.inf
    for ib in _candidates(float(x.max()), bits):
        err = float(np.mean((_rounded(x, ib, bits) - x) ** 2))
        if err < best_err:
            best, best_err = ib, err
    return _level_of(best, bits)


def weight_format(w: np.ndarray, bits: int) -> FixedFormat:
    """Smallest ``ap_fixed<bits,I>`` whose range holds max|w| (negative end exactly).

    Defined for any finite ``w`` (``I`` may be negative or above ``bits``); raises
    ``ValueError`` for NaN or infinite values.
    """
    m = float(np.abs(w).max(initial=0.0))
    if not math.isfinite(m):
        raise ValueError("weights must be finite to choose a fixed-point format")
    if m == 0:
        return FixedFormat(bits, 1)
    return FixedFormat(bits, math.ceil(math.log2(m)) + 1)


def bias_format(b: np.ndarray, acc_frac: int, bits: int) -> FixedFormat:
    """Signed format of a conv bias, at most ``bits`` wide, with at most ``acc_frac``
    fractional bits (the bias is added to the accumulator by a left shift).

    Holds max|b| with a guard bit; on the accumulator grid (``frac == acc_frac``) when
    ``bits`` allow. A bias smaller than half an accumulator LSB (also an all-zero bias
    next to coarse weights) gets ``ap_fixed<2, 2 - acc_frac>``: on the accumulator grid,
    where it rounds to 0. So the width is always 2..``bits``, for any finite ``b``.
    """
    b_max = float(np.abs(b).max(initial=0.0))
    if not math.isfinite(b_max):
        raise ValueError("biases must be finite to choose a fixed-point format")
    b_int = (math.ceil(math.log2(b_max)) + 2) if b_max > 0 else 1
    b_frac = min(acc_frac, bits - b_int)
    if b_int + b_frac < 2:  # only when b_frac == acc_frac, since bits >= 2
        return FixedFormat(2, 2 - acc_frac)
    return FixedFormat(b_int + b_frac, b_int)


def pooled_convs(nodes: list[Node]) -> set[str]:
    """The convs whose output only the global average pool reads (conv10, the classifier)."""
    readers: dict[str, list[str]] = {}
    for n in nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n.kind)
    return {n.name for n in nodes if n.kind == "conv" and readers.get(n.name) == ["gap"]}


def output_bits(nodes: list[Node], spec: NetworkSpec) -> dict[str, int]:
    """Width of every conv / bypass output format: ``activation_bits``, and
    ``classifier_bits`` for the classifier convs (``pooled_convs``)."""
    q = spec.quant
    pooled = pooled_convs(nodes)
    return {n.name: q.classifier_bits if n.name in pooled else q.activation_bits
            for n in nodes if n.kind in ("conv", "add")}


def activation_levels(nodes: list[Node], weights: FloatWeights, frames: list[np.ndarray],
                      spec: NetworkSpec) -> dict[str, float]:
    """Per block, the calibration level its output format must cover, from the float
    network ``weights`` on ``frames`` (``quantization.calibration_method``); the two
    expand convs of a Fire module get one level (their concatenation shares a format).
    With 'mse', a conv read only by the global average pool (conv10) still gets the format
    that covers its largest calibration value: the pool averages its rounding errors away,
    but saturation clips the largest maps, which are those of the winning classes (a
    squared-error choice costs 2 points of top-1 agreement there).

    Raises :class:`InputError` naming the layer when weights are NaN or infinite or when
    the float activations overflow float32.
    """
    if not frames:
        raise ValueError("calibration needs at least one frame")
    q = spec.quant
    stats: dict[str, list[np.ndarray]] = {n.name: [] for n in nodes}
    pooled = pooled_convs(nodes)
    for n in nodes:
        if n.kind == "conv":
            _check_finite(n.name, weights[n.name])
    with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow: reported below
        for f in frames:
            acts = float_forward(nodes, weights, f)
            for n in nodes:
                stats[n.name].append(np.ravel(acts[n.name]))
        values = {name: np.concatenate(v) for name, v in stats.items()}
        level = {name: float(np.percentile(v, q.calibration_percentile))
                 for name, v in values.items()}
    for n in nodes:  # float32 overflow (huge weights) leaves no range to choose a format from
        if not math.isfinite(level[n.name]) or not math.isfinite(float(values[n.name].max())):
            raise InputError(_overflow_message(n.name, nodes, weights))
    for n in nodes:  # the two expand convs of a Fire module share the concat's format
        if n.kind == "concat":
            shared = max(level[i] for i in n.inputs)
            for i in n.inputs:
                level[i] = shared
    if q.calibration_method == "mse":
        joined = {i: n.inputs for n in nodes if n.kind == "concat" for i in n.inputs}
        for n in nodes:
            if n.kind not in ("conv", "add"):
                continue
            if n.name in pooled:  # covers its calibration maximum: no squared-error trade
                level[n.name] = float(values[n.name].max())
                continue
            names = joined.get(n.name, (n.name,))
            x = np.concatenate([values[i] for i in names])
            level[n.name] = _mse_level(x, q.activation_bits, seed=len(names))
    return level


def activation_format(level: float, bits: int) -> FixedFormat:
    """The unsigned ``bits``-bit output format of a conv (after ReLU) or bypass add whose
    calibration level is ``level``."""
    return FixedFormat(bits, _int_bits_unsigned(level, bits), signed=False)


def calibrate(nodes: list[Node], weights: FloatWeights, frames: list[np.ndarray],
              spec: NetworkSpec,
              weight_formats: dict[str, FixedFormat] | None = None,
              levels: dict[str, float] | None = None) -> QuantPlan:
    """Choose every format from activation statistics on ``frames`` and quantize weights.

    ``levels`` (``activation_levels``; default: measured on ``weights`` and ``frames``)
    set the activation formats. ``weight_formats`` fixes a conv's weight format (default:
    ``weight_format`` of its kernel); the kernel must then already lie on that grid
    (``hls.plan.prepare.round_weights``), and the plan's integers are exactly it (checked).

    Every format is valid for any finite weights; raises :class:`InputError` naming the
    layer and the reason when weights are NaN or infinite, when the float activations
    overflow float32, or when a layer's exact accumulator needs more than
    ``quantization.accumulator_bits`` (weights and bias scales too far apart).
    """
    q = spec.quant
    for n in nodes:
        if n.kind == "conv":
            _check_finite(n.name, weights[n.name])
    level = activation_levels(nodes, weights, frames, spec) if levels is None else levels
    out_bits = output_bits(nodes, spec)
    share = spec.compression.bits_by_layer([n.name for n in nodes if n.kind == "conv"])
    layers: dict[str, LayerQuant] = {}
    fmt_of = {"frame": INPUT_FORMAT, "input_1": INPUT_FORMAT}
    for n in nodes:
        src_fmt = fmt_of[n.inputs[0]]
        if n.kind == "conv":
            layers[n.name] = _quantize_conv(n, weights[n.name], src_fmt, level[n.name], spec,
                                            (weight_formats or {}).get(n.name),
                                            out_bits[n.name])
            if share.get(n.name):
                attach_codebook(layers[n.name], share[n.name])
        elif n.kind == "maxpool":
            layers[n.name] = LayerQuant(n.name, n.kind, src_fmt)
        elif n.kind == "concat":
            a, b = (fmt_of[i] for i in n.inputs)
            if a != b:
                raise AssertionError(f"{n.name}: inputs have different formats {a} {b}")
            layers[n.name] = LayerQuant(n.name, n.kind, a)
        elif n.kind == "add":
            a, b = (fmt_of[i] for i in n.inputs)
            if abs(a.frac - b.frac) + max(a.width, b.width) > 62:  # golden.add's int64 sum
                raise InputError(
                    f"{n.name}: its inputs' scales differ by 2**{abs(a.frac - b.frac)} "
                    f"({a.ap()} and {b.ap()}), too far apart to add exactly; the weights "
                    "of one branch are far too large or too small")
            fmt = activation_format(level[n.name], q.activation_bits)
            layers[n.name] = LayerQuant(n.name, n.kind, fmt)
        elif n.kind == "gap":
            bits = q.logit_bits
            fmt = FixedFormat(bits, max(_int_bits_unsigned(level[n.name], bits),
                                        src_fmt.integer), signed=False)
            layers[n.name] = LayerQuant(n.name, n.kind, fmt)
        fmt_of[n.name] = layers[n.name].out_fmt
    return QuantPlan(INPUT_FORMAT, layers)


def _check_finite(name: str, wb: tuple[np.ndarray, np.ndarray]) -> None:
    for part, array in zip(("kernel", "bias"), wb, strict=True):
        bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        if bad:
            raise InputError(f"{name}: {bad} of the {array.size} {part} values are NaN or "
                             "infinite; weights must be finite")


def _overflow_message(name: str, nodes: list[Node], weights: FloatWeights) -> str:
    convs = [n.name for n in nodes if n.kind == "conv"]
    peak = max(convs, key=lambda c: max(float(np.abs(a).max(initial=0.0))
                                        for a in weights[c]))
    value = max(float(np.abs(a).max(initial=0.0)) for a in weights[peak])
    return (f"{name}: the float activations overflow float32 (inf or NaN) on the "
            f"calibration frames, so no fixed-point format covers them; the weights are too "
            f"large (largest |value| {value:.3g}, in {peak})")


def attach_codebook(lq: LayerQuant, bits: int) -> None:
    """Express ``lq.w_q`` as a codebook of at most ``2**bits`` integers plus indices.

    The codebook is the sorted distinct integer weights, padded with zeros to ``2**bits``
    entries; ``w_codebook[w_idx] == w_q`` element by element (checked). Weights that were
    shared in float (``model.compress``) have at most ``2**bits`` distinct values after
    quantization, since quantization is elementwise; other weights are refused.
    """
    values, idx = np.unique(lq.w_q, return_inverse=True)
    if values.size > 2**bits:
        raise ValueError(
            f"{lq.name}: {values.size} distinct 8-bit weights do not fit a {bits}-bit "
            f"codebook ({2**bits} entries); share the float weights first "
            "(model.compress.share_weights)")
    codebook = np.zeros(2**bits, dtype=np.int64)
    codebook[:values.size] = values
    idx = idx.reshape(lq.w_q.shape).astype(np.int64)
    if not np.array_equal(codebook[idx], lq.w_q):
        raise AssertionError(f"{lq.name}: codebook lookup does not reproduce the weights")
    lq.share_bits, lq.w_codebook, lq.w_idx = bits, codebook, idx


def _quantize_conv(n: Node, wb: tuple[np.ndarray, np.ndarray], x_fmt: FixedFormat,
                   level: float, spec: NetworkSpec,
                   w_fmt: FixedFormat | None = None, out_bits: int | None = None) -> LayerQuant:
    q = spec.quant
    w, b = wb
    if w_fmt is None:
        w_fmt = weight_format(w, q.weight_bits)
        w_q = w_fmt.quantize(w)
    else:  # a kernel already rounded onto this grid: its integers, unchanged
        w_q = w_fmt.quantize(w)
        if not np.array_equal(w_fmt.to_real(w_q), np.asarray(w, dtype=np.float64)):
            raise AssertionError(f"{n.name}: the rounded kernel is not on its grid "
                                 f"{w_fmt.ap()}")
    acc_frac = x_fmt.frac + w_fmt.frac
    b_fmt = bias_format(b, acc_frac, q.bias_bits)
    b_q = b_fmt.quantize(b)
    # Exact accumulator: worst case over all inputs in range, for the real weights. In
    # Python ints: the bias shift is unbounded when weights and bias differ by far in scale.
    x_max = max(abs(x_fmt.qmin), abs(x_fmt.qmax))
    w_abs = np.abs(w_q).reshape(-1, w_q.shape[-1]).sum(axis=0)
    shift = acc_frac - b_fmt.frac
    bound = max((int(wa) * x_max + (abs(int(bq)) << shift)
                 for wa, bq in zip(w_abs.tolist(), b_q.tolist(), strict=True)), default=0)
    acc_width = max(bits_for_signed(bound), 2)  # 2: a signed format (all-zero weights)
    if acc_width > q.accumulator_bits:
        raise InputError(
            f"{n.name}: the exact accumulator needs {acc_width} bits, more than "
            f"quantization.accumulator_bits = {q.accumulator_bits} (largest |weight| "
            f"{float(np.abs(w).max(initial=0.0)):.3g}, largest |bias| "
            f"{float(np.abs(b).max(initial=0.0)):.3g}: their scales are too far apart "
            "or the layer too large)"
        )
    acc_fmt = FixedFormat(acc_width, acc_width - acc_frac)
    bits = out_bits or q.activation_bits
    out_fmt = activation_format(level, bits)
    pre_fmt = FixedFormat(bits + 1, out_fmt.integer + 1, signed=True)
    return LayerQuant(n.name, "conv", out_fmt, pre_fmt, w_fmt, b_fmt, acc_fmt, w_q, b_q)


def run_golden(nodes: list[Node], plan: QuantPlan, frame: np.ndarray,
               keep_pre: bool = False) -> dict[str, np.ndarray]:
    """Integer forward pass. ``frame``: uint8 (H, W, C) raw pixels. name -> int64 array.

    With ``keep_pre`` the conv results before ReLU are kept too, as ``<name>_pre``.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise TypeError(f"golden model input must be uint8 raw pixels, got {frame.dtype}")
    out: dict[str, np.ndarray] = {"frame": frame.astype(np.int64)}
    for n in nodes:
        ins = [out[i] if i in out else out["frame"] for i in n.inputs]
        lq = plan.layers[n.name]
        in_fmt = plan.fmt_of(n.inputs[0]) if n.inputs[0] in plan.layers else plan.input_fmt
        if n.kind == "conv":
            pre = golden.conv2d(ins[0], in_fmt, lq.w_q, lq.w_fmt, lq.b_q, lq.b_fmt,
                                lq.pre_fmt, n.stride, n.pad, relu=False)
            if keep_pre:
                out[n.name + "_pre"] = pre
            out[n.name] = np.maximum(pre, 0)  # exact: pre_fmt has one more integer bit
        elif n.kind == "maxpool":
            out[n.name] = golden.maxpool_ceil(ins[0])
        elif n.kind == "concat":
            out[n.name] = np.concatenate(ins, axis=-1)
        elif n.kind == "add":
            b_fmt = plan.fmt_of(n.inputs[1])
            out[n.name] = golden.add(ins[0], in_fmt, ins[1], b_fmt, lq.out_fmt)
        elif n.kind == "gap":
            out[n.name] = golden.global_avgpool(ins[0], in_fmt, lq.out_fmt)
    return out
