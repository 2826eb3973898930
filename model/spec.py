"""Network spec: a YAML file, validated on load, that says which SqueezeNet to build.

The paper's metaparameters (Section 3.3) give every Fire module's size:
``e_i = base_e + incr_e * floor(i / freq)``, ``e3x3_i = e_i * pct3x3``,
``e1x1_i = e_i - e3x3_i``, ``s1x1_i = SR * e_i`` for ``i = 0..n_fire-1``.
The variants fix conv1 and where the max-pools sit: v1.0 (Table 1) and v1.1 (the widely
used revision with a 3x3/64 conv1 and earlier pools).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from model.errors import SqzError
from model.photos import PREPROCESS_METHODS

VARIANTS = ("v1.0", "v1.1", "custom")
WEIGHT_SOURCES = ("imagenet", "random")
BYPASS_MODES = ("none", "simple")
BACKENDS = ("Vitis", "Vivado")

# What each variant fixes (Table 1 for v1.0; the v1.1 revision moves the pools earlier and
# shrinks conv1).
VARIANT_DEFAULTS: dict[str, dict[str, Any]] = {
    "v1.0": {"conv1": {"filters": 96, "kernel": 7, "stride": 2},
             "pool_after": ["conv1", "fire4", "fire8"], "n_fire": 8},
    "v1.1": {"conv1": {"filters": 64, "kernel": 3, "stride": 2},
             "pool_after": ["conv1", "fire3", "fire5"], "n_fire": 8},
}


# Identifiers that reach file names, Verilog module names and generated Tcl / Yosys / shell
# scripts: checked against these patterns when a spec is loaded or a flag overrides it.
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
NAME_RULE = "a letter, then up to 63 letters, digits or '_'"
# An AMD/Xilinx part number: xc + device (e.g. xczu9eg) + up to four '-' fields (package,
# speed grade, temperature: xczu9eg-ffvb1156-2-e, xcu250-figd2104-2L-e).
PART_PATTERN = re.compile(r"xc[a-z0-9]{3,12}(?:-[A-Za-z0-9]{1,12}){0,4}")
PART_RULE = "an AMD part number such as xczu9eg-ffvb1156-2-e"
CLOCK_MHZ = (10.0, 800.0)
SEED_MAX = 2**32 - 1


class SpecError(SqzError, ValueError):
    """A network / target spec that names an unknown key or holds a value not allowed."""


@dataclass(frozen=True)
class Conv1Spec:
    filters: int = 64
    kernel: int = 3
    stride: int = 2


@dataclass(frozen=True)
class Metaparameters:
    base_e: int = 128
    incr_e: int = 128
    pct3x3: float = 0.5
    freq: int = 2
    SR: float = 0.125


@dataclass(frozen=True)
class QuantSpec:
    """How numbers are represented; formats per layer come from calibration."""

    weight_bits: int = 8
    activation_bits: int = 8
    bias_bits: int = 16          # at most; fewer fractional bits if the range needs it
    accumulator_bits: int = 32   # upper bound; the exact need is computed per layer
    logit_bits: int = 16         # global-average-pool output (the class scores)
    # The classifier conv's output (conv10: read only by the global average pool, so it
    # feeds an adder, not a multiplier); activation_bits .. logit_bits.
    classifier_bits: int = 16
    calibration_percentile: float = 99.99
    # How an activation format's integer bits are chosen from the calibration activations:
    # 'mse' (the candidate with the least squared error after rounding and saturation, as
    # TensorRT / Vitis AI do) or 'percentile' (the range just covers calibration_percentile).
    calibration_method: str = "mse"
    # Bias correction of the dense design (Nagel et al. 2019): each channel's bias absorbs
    # the mean shift the 8-bit weight rounding causes on the calibration frames.
    bias_correction: bool = True
    # Cross-layer equalization of the dense design (model.equalize): channel scales moved
    # between consecutive convs so that one 8-bit format per layer fits every channel.
    equalize: bool = True
    # How kernels are rounded to their 8-bit grid (or, with compression.share_bits, to
    # their codebook): 'gptq' (model.gptq: each rounding error is spread over the weights
    # not yet rounded so that the layer's output on the calibration frames barely moves),
    # 'nearest' (each weight to its nearest grid value) or 'auto': gptq, except for pruned
    # specs (compression.sparsity > 0), where it measured worse than nearest (63% pruned +
    # 6-bit shared v1.1: top-1 agreement 8.6% against 25.5% on the evaluation set).
    weight_rounding: str = "auto"
    # The photos the formats (and the bias correction of compression) are calibrated on:
    # 'photo-set' (the pinned calibration set of model.photo_sets, disjoint from the demo
    # photos and the evaluation set), 'bundled' (the 11 demo photos themselves: their
    # fidelity figures are then not independent) or the path of a folder of images.
    calibration: str = "photo-set"


@dataclass(frozen=True)
class CompressionSpec:
    """Deep Compression applied to the float weights before quantization (model.compress).

    ``sparsity``: fraction of conv weights pruned to zero by magnitude (0 = none), one
    global threshold or one per layer. ``share_bits``: per-layer k-means weight sharing into
    ``2**share_bits`` values, entry 0 the exact zero (0 = no sharing); the hardware then
    stores ``share_bits``-bit indices in its weight ROMs and the codebook in registers.
    ``codebook_weighting``: what each weight counts for when the codebooks are clustered:
    'none' (once) or 'hessian' (the second moment, on the calibration frames, of the float
    network's input it multiplies: the diagonal of the layer's input Hessian, Choi et al.
    2017; model.compress.input_hessian_diagonals); needs share_bits.
    ``tune_epochs``: epochs of codebook fine-tuning (``model.codebook_tune``: the shared
    values and the biases of the hardware network learn the float model's class
    distribution on the calibration photos, Deep Compression's centroid retraining without
    labels; 0 = none); needs share_bits. ``tune_lr``: its Adam learning rate, in LSBs of
    each layer's weight (and output) format per step.
    ``layer_bits``: per-layer exceptions to ``share_bits``, as Deep Compression gives its
    layers different index widths: a mapping of conv-name patterns (``fnmatch``, e.g.
    ``fire*_expand1x1``) to 0 (not shared: the layer keeps its 8-bit weights) or
    2..weight_bits-1 index bits; every pattern must name at least one conv and no conv
    may match two patterns (checked by ``bits_by_layer``); needs share_bits.
    """

    sparsity: float = 0.0
    per_layer: bool = False
    share_bits: int = 0
    codebook_weighting: str = "none"
    tune_epochs: int = 0
    tune_lr: float = 0.1
    layer_bits: tuple[tuple[str, int], ...] = ()

    @property
    def active(self) -> bool:
        return self.sparsity > 0 or self.share_bits > 0

    def bits_by_layer(self, convs: list[str]) -> dict[str, int]:
        """Index bits of every conv in ``convs`` (0 = not shared): ``share_bits``, or its
        ``layer_bits`` exception. Raises :class:`SpecError` for a pattern that names no conv
        and for a conv that two patterns name."""
        from fnmatch import fnmatchcase

        bits = dict.fromkeys(convs, self.share_bits)
        seen: dict[str, str] = {}
        for pattern, b in self.layer_bits:
            hits = [c for c in convs if fnmatchcase(c, pattern)]
            if not hits:
                raise SpecError(f"compression.layer_bits: {pattern!r} names no conv layer; "
                                f"the convs are {', '.join(convs)}")
            for c in hits:
                if c in seen:
                    raise SpecError(f"compression.layer_bits: {c} matches both "
                                    f"{seen[c]!r} and {pattern!r}")
                seen[c] = pattern
                bits[c] = b
        return bits

    def index_bits_per_weight(self, sizes: dict[str, int], weight_bits: int = 8) -> float:
        """Weight-memory bits per kernel weight averaged over the convs (``sizes``: conv name
        -> its number of kernel weights): each shared layer's index width, ``weight_bits``
        for a layer kept unshared (and for every layer when nothing is shared). Codebooks
        (a few registers per layer) are not counted."""
        total = sum(sizes.values())
        if not total:
            raise ValueError("index_bits_per_weight: no weights")
        bits = self.bits_by_layer(list(sizes))   # all 0 when nothing is shared
        return sum(n * (bits[c] or weight_bits) for c, n in sizes.items()) / total

    def describe_bits(self) -> str:
        """'6-bit shared', with the exceptions: '6-bit shared (fire*_expand1x1 8-bit)'."""
        if not self.share_bits:
            return ""
        extra = ", ".join(f"{p} {f'{b}-bit shared' if b else 'unshared 8-bit'}"
                          for p, b in self.layer_bits)
        return f"{self.share_bits}-bit shared" + (f" ({extra})" if extra else "")


@dataclass(frozen=True)
class TargetSpec:
    part: str = "xczu9eg-ffvb1156-2-e"
    clock_mhz: float = 200.0
    backend: str = "Vitis"
    # Folding: by default the pipeline is as fast as the part's DSP slices and block RAM
    # allow; a number caps it (no resources are spent to go below that many cycles per
    # frame), e.g. for a small part or a shared device.
    target_cycles_per_frame: int | None = None


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    variant: str = "v1.1"
    height: int = 227
    width: int = 227
    channels: int = 3
    # How a photo becomes the input frame (model.photos.to_network_input): 'caffe' (resize
    # to resize x resize, centre crop) or 'short_side'; resize None = the method's default
    # (caffe: 256 for 227).
    preprocess: str = "caffe"
    resize: int | None = None
    classes: int = 1000
    weights: str = "imagenet"
    seed: int = 0
    bypass: str = "none"
    n_fire: int = 8
    conv1: Conv1Spec = field(default_factory=Conv1Spec)
    pool_after: tuple[str, ...] = ("conv1", "fire3", "fire5")
    meta: Metaparameters = field(default_factory=Metaparameters)
    quant: QuantSpec = field(default_factory=QuantSpec)
    compression: CompressionSpec = field(default_factory=CompressionSpec)
    target: TargetSpec = field(default_factory=TargetSpec)

    def fire_sizes(self) -> list[tuple[int, int, int]]:
        """(s1x1, e1x1, e3x3) per Fire module, from the paper's metaparameter formula."""
        m = self.meta
        sizes = []
        for i in range(self.n_fire):
            e = m.base_e + m.incr_e * (i // m.freq)
            e3 = int(math.floor(e * m.pct3x3 + 0.5))
            e1 = e - e3
            s = int(math.floor(m.SR * e + 0.5))
            if s < 1 or e1 < 1 or e3 < 1:
                raise SpecError(
                    f"fire{i + 2}: metaparameters give s1x1={s}, e1x1={e1}, e3x3={e3}; "
                    "every Fire layer needs at least one filter"
                )
            sizes.append((s, e1, e3))
        return sizes


_SECTIONS = {
    "conv1": Conv1Spec,
    "metaparameters": Metaparameters,
    "quantization": QuantSpec,
    "compression": CompressionSpec,
    "target": TargetSpec,
}
_TOP_KEYS = {"name", "variant", "input", "classes", "weights", "seed", "bypass", "n_fire",
             "conv1", "pool_after", "metaparameters", "quantization", "compression",
             "target"}
_INPUT_KEYS = {"height", "width", "channels", "preprocess", "resize"}


def _check_keys(where: str, given: dict, allowed: set[str]) -> None:
    if not isinstance(given, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(given).__name__}")
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise SpecError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _section(where: str, cls: type, given: dict) -> Any:
    allowed = {f.name for f in fields(cls)}
    _check_keys(where, given, allowed)
    kwargs = {}
    for f in fields(cls):
        if f.name not in given:
            continue
        value = given[f.name]
        default = getattr(cls(), f.name)
        kind = type(default)
        if default is None:  # optional: a number or null (see the field's comment)
            if value is None:
                kwargs[f.name] = None
                continue
            kind = int
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) != isinstance(default, bool):
            raise SpecError(
                f"{where}.{f.name}: expected {kind.__name__}, got {value!r}"
            )
        kwargs[f.name] = value
    return cls(**kwargs)


LAYER_PATTERN = re.compile(r"[A-Za-z0-9_*?]{1,64}")


def _layer_bits(value: Any, weight_bits: int) -> tuple[tuple[str, int], ...]:
    """``compression.layer_bits``: {conv-name pattern: 0 or 2..weight_bits-1}."""
    where = "compression.layer_bits"
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping of conv-name patterns to index bits, "
                        f"got {value!r}")
    out = []
    for pattern, bits in value.items():
        if not isinstance(pattern, str) or not LAYER_PATTERN.fullmatch(pattern):
            raise SpecError(f"{where}: {pattern!r} is not a conv-name pattern (letters, "
                            "digits, '_', and the wildcards '*' and '?'; 1..64 characters)")
        if (not isinstance(bits, int) or isinstance(bits, bool)
                or not (bits == 0 or 2 <= bits < weight_bits)):
            raise SpecError(f"{where}.{pattern}: 0 (not shared) or 2..{weight_bits - 1} "
                            f"index bits, got {bits!r}")
        out.append((pattern, bits))
    return tuple(out)


def _choice(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpecError(f"{where}: {value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def _weights_source(value: Any) -> str:
    """'imagenet', 'random', or a .npz of folded weights (``make train`` / ``sqz finetune``)."""
    if isinstance(value, str) and value.endswith(".npz"):
        return value
    if value not in WEIGHT_SOURCES:
        raise SpecError(f"weights: {value!r} is not allowed; allowed: "
                        f"{', '.join(WEIGHT_SOURCES)}, or the path of a .npz of weights "
                        "written by make train / sqz finetune")
    return value


def _positive(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"{where}: expected a positive integer, got {value!r}")
    return value


def check_name(where: str, value: Any) -> str:
    """A spec name (it becomes file names, module names and script text): NAME_PATTERN."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise SpecError(f"{where}: {value!r} is not allowed; a name is {NAME_RULE}")
    return value


def check_part(where: str, value: Any) -> str:
    """An FPGA part number (it is written into Tcl scripts): PART_PATTERN."""
    if not isinstance(value, str) or not PART_PATTERN.fullmatch(value):
        raise SpecError(f"{where}: {value!r} is not allowed; the part is {PART_RULE}")
    return value


CALIBRATION_SETS = ("photo-set", "bundled")
CALIBRATION_METHODS = ("mse", "percentile")
WEIGHT_ROUNDINGS = ("auto", "gptq", "nearest")
CODEBOOK_WEIGHTINGS = ("none", "hessian")
# Codebook fine-tuning runs at most this many epochs (compression.tune_epochs).
MAX_TUNE_EPOCHS = 200


def check_calibration(where: str, value: Any) -> str:
    """'photo-set', 'bundled' or an existing folder of images."""
    if value in CALIBRATION_SETS:
        return value
    if not isinstance(value, str) or not value or "\0" in value:
        raise SpecError(f"{where}: {value!r} is not allowed; give {' or '.join(CALIBRATION_SETS)}"
                        " or the path of a folder of images")
    if not Path(value).is_dir():
        raise SpecError(f"{where}: {value!r} is not a folder; give "
                        f"{' or '.join(CALIBRATION_SETS)} or the path of a folder of images")
    return value


def check_clock_mhz(where: str, value: Any) -> float:
    lo, hi = CLOCK_MHZ
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not lo <= value <= hi:
        raise SpecError(f"{where}: must be a number in {lo:g}..{hi:g} MHz, got {value!r}")
    return float(value)


def with_target(spec: NetworkSpec, backend: str | None = None, part: str | None = None,
                clock_mhz: float | None = None, calibration: str | None = None) -> NetworkSpec:
    """The spec with its target (and calibration photos) overridden (command-line flags),
    checked as a spec's are."""
    if calibration is not None:
        spec = replace(spec, quant=replace(spec.quant, calibration=check_calibration(
            "--calibration", calibration)))
    target = spec.target
    if backend is not None:
        target = replace(target, backend=_choice("--backend", backend, BACKENDS))
    if part is not None:
        target = replace(target, part=check_part("--part", part))
    if clock_mhz is not None:
        target = replace(target, clock_mhz=check_clock_mhz("--clock-mhz", clock_mhz))
    return replace(spec, target=target)


def spec_from_dict(raw: dict, default_name: str = "network") -> NetworkSpec:
    """Validate a parsed YAML mapping and return the spec; errors name the key."""
    _check_keys("spec", raw, _TOP_KEYS)
    for key in ("input", "conv1", "metaparameters", "quantization", "compression", "target"):
        if key in raw and not isinstance(raw[key], dict):
            raise SpecError(f"{key}: expected a mapping of keys, got {raw[key]!r}")
    variant = _choice("variant", raw.get("variant", "v1.1"), VARIANTS)
    base = VARIANT_DEFAULTS.get(variant, {})
    if variant == "custom":
        for key in ("conv1", "pool_after"):
            if key not in raw:
                raise SpecError(f"variant 'custom' needs '{key}' to be given")
    inp = raw.get("input", {})
    _check_keys("input", inp, _INPUT_KEYS)
    conv1_raw = {**base.get("conv1", {}), **raw.get("conv1", {})}
    conv1 = _section("conv1", Conv1Spec, conv1_raw)
    for k in ("filters", "kernel", "stride"):
        _positive(f"conv1.{k}", getattr(conv1, k))
    n_fire = _positive("n_fire", raw.get("n_fire", base.get("n_fire", 8)))
    pool_after = raw.get("pool_after", base.get("pool_after", []))
    layer_names = ["conv1"] + [f"fire{i + 2}" for i in range(n_fire)]
    if not isinstance(pool_after, list):
        raise SpecError(f"pool_after: expected a list of layer names, got {pool_after!r}")
    for p in pool_after:
        _choice("pool_after entry", p, tuple(layer_names))
    meta = _section("metaparameters", Metaparameters, raw.get("metaparameters", {}))
    if not 0.0 < meta.pct3x3 < 1.0:
        raise SpecError(f"metaparameters.pct3x3: must lie in (0, 1), got {meta.pct3x3}")
    if not 0.0 < meta.SR <= 1.0:
        raise SpecError(f"metaparameters.SR: must lie in (0, 1], got {meta.SR}")
    for k in ("base_e", "freq"):
        _positive(f"metaparameters.{k}", getattr(meta, k))
    if meta.incr_e < 0:
        raise SpecError(f"metaparameters.incr_e: must be >= 0, got {meta.incr_e}")
    quant = _section("quantization", QuantSpec, raw.get("quantization", {}))
    if quant.weight_bits != 8 or quant.activation_bits != 8:
        raise SpecError(
            "quantization: weight_bits and activation_bits must be 8 (the product's "
            f"datapath); got {quant.weight_bits} and {quant.activation_bits}"
        )
    if not 8 <= quant.bias_bits <= 32 or not 16 <= quant.accumulator_bits <= 48:
        raise SpecError("quantization: bias_bits must be 8..32 and accumulator_bits 16..48")
    if not 8 <= quant.logit_bits <= 24:
        raise SpecError(f"quantization.logit_bits: must be 8..24, got {quant.logit_bits}")
    if not quant.activation_bits <= quant.classifier_bits <= quant.logit_bits:
        raise SpecError(f"quantization.classifier_bits: must be {quant.activation_bits}.."
                        f"{quant.logit_bits} (activation_bits..logit_bits), got "
                        f"{quant.classifier_bits}")
    if not 90.0 <= quant.calibration_percentile <= 100.0:
        raise SpecError("quantization.calibration_percentile: must be 90..100")
    check_calibration("quantization.calibration", quant.calibration)
    _choice("quantization.calibration_method", quant.calibration_method, CALIBRATION_METHODS)
    _choice("quantization.weight_rounding", quant.weight_rounding, WEIGHT_ROUNDINGS)
    raw_compression = raw.get("compression", {})
    layer_bits: tuple[tuple[str, int], ...] = ()
    if isinstance(raw_compression, dict) and "layer_bits" in raw_compression:
        raw_compression = dict(raw_compression)
        layer_bits = _layer_bits(raw_compression.pop("layer_bits"), quant.weight_bits)
    compression = _section("compression", CompressionSpec, raw_compression)
    compression = replace(compression, layer_bits=layer_bits)
    if layer_bits and not compression.share_bits:
        raise SpecError("compression.layer_bits: per-layer exceptions to share_bits; it "
                        "needs share_bits")
    if not 0.0 <= compression.sparsity < 1.0:
        raise SpecError(f"compression.sparsity: must lie in [0, 1), got {compression.sparsity}")
    if compression.share_bits and not 2 <= compression.share_bits < quant.weight_bits:
        raise SpecError(
            f"compression.share_bits: 0 (no sharing) or 2..{quant.weight_bits - 1} (fewer "
            f"bits than the {quant.weight_bits}-bit weights), got {compression.share_bits}"
        )
    _choice("compression.codebook_weighting", compression.codebook_weighting,
            CODEBOOK_WEIGHTINGS)
    if compression.codebook_weighting != "none" and not compression.share_bits:
        raise SpecError(f"compression.codebook_weighting: {compression.codebook_weighting!r} "
                        "weights the shared codebooks; it needs share_bits")
    if not 0 <= compression.tune_epochs <= MAX_TUNE_EPOCHS:
        raise SpecError(f"compression.tune_epochs: must be 0..{MAX_TUNE_EPOCHS}, got "
                        f"{compression.tune_epochs}")
    if compression.tune_epochs and not compression.share_bits:
        raise SpecError("compression.tune_epochs: codebook fine-tuning tunes the shared "
                        "codebooks; it needs share_bits")
    if not (math.isfinite(compression.tune_lr) and 0.0 < compression.tune_lr <= 10.0):
        raise SpecError(f"compression.tune_lr: must lie in (0, 10] (LSBs per step), got "
                        f"{compression.tune_lr}")
    target = _section("target", TargetSpec, raw.get("target", {}))
    _choice("target.backend", target.backend, BACKENDS)
    check_part("target.part", target.part)
    check_clock_mhz("target.clock_mhz", target.clock_mhz)
    if target.target_cycles_per_frame is not None:
        _positive("target.target_cycles_per_frame", target.target_cycles_per_frame)
    height = _positive("input.height", inp.get("height", 227))
    width = _positive("input.width", inp.get("width", 227))
    preprocess = _choice("input.preprocess", inp.get("preprocess", "caffe"), PREPROCESS_METHODS)
    resize = inp.get("resize")
    if resize is not None and _positive("input.resize", resize) < max(height, width):
        raise SpecError(f"input.resize: must be at least the input size {max(height, width)} "
                        f"(the centre crop is cut from the resized picture), got {resize}")
    spec = NetworkSpec(
        name=check_name("name" if "name" in raw else f"name (from the file name "
                        f"{default_name!r}; set name: in the spec)",
                        raw.get("name", default_name)),
        variant=variant,
        height=height,
        width=width,
        channels=_positive("input.channels", inp.get("channels", 3)),
        preprocess=preprocess,
        resize=resize,
        classes=_positive("classes", raw.get("classes", 1000)),
        weights=_weights_source(raw.get("weights", "imagenet")),
        seed=_seed(raw.get("seed", 0)),
        bypass=_choice("bypass", raw.get("bypass", "none"), BYPASS_MODES),
        n_fire=n_fire,
        conv1=conv1,
        pool_after=tuple(pool_after),
        meta=meta,
        quant=quant,
        compression=compression,
        target=target,
    )
    spec.fire_sizes()  # raises on degenerate metaparameters
    if spec.weights == "imagenet":
        _check_imagenet_compatible(spec)
    return spec


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise SpecError(f"seed: expected an integer 0..{SEED_MAX}, got {value!r}")
    return value


def _check_imagenet_compatible(spec: NetworkSpec) -> None:
    reference = replace(
        NetworkSpec(name=spec.name), quant=spec.quant, target=spec.target, seed=spec.seed,
        height=spec.height, width=spec.width,
    )
    if (spec.variant, spec.channels, spec.classes, spec.n_fire, spec.conv1, spec.pool_after,
            spec.meta, spec.bypass) != ("v1.1", 3, 1000, 8, reference.conv1,
                                        reference.pool_after, reference.meta, "none"):
        raise SpecError(
            "weights: 'imagenet' exists only for the standard SqueezeNet v1.1 (3 input "
            "channels, 1000 classes, default metaparameters, no bypass); use weights: random "
            "for other shapes"
        )


def load_spec(path: str | Path) -> NetworkSpec:
    """Read and validate a YAML network spec."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"config file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot be read as text: {exc}") from None
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: {len(text):,d} bytes; a spec is at most "
                        f"{MAX_SPEC_BYTES:,d}")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise SpecError(f"{path}: not valid YAML: {problem}") from None
    except RecursionError:
        raise SpecError(f"{path}: YAML nested too deeply to be a spec") from None
    if raw is None:
        raise SpecError(f"{path}: the file is empty; a spec is a mapping of keys (name, "
                        "variant, input, ...), e.g. configs/tiny.yaml")
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of spec keys, got "
                        f"{type(raw).__name__}")
    return spec_from_dict(raw, default_name=path.stem)


MAX_SPEC_BYTES = 1 << 20
