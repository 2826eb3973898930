"""hls4ml extension: the ceil-mode max-pool and the bit-exact global average pool.

hls4ml 1.3.0's io_stream pooling asserts pool == stride and no padding (SqueezeNet's 3x3/2
Caffe max-pool aborts the C simulation), and its global average pool divides an ap_fixed by
an int. ``register_custom_layers()`` plugs in replacements through hls4ml's extension API:
hls4ml layer classes, Keras v2 handlers for ``model.layers``, config/function templates for
the Vivado and Vitis backends, and the streaming kernels in
``firmware/nnet_sqz_pool_stream.h``.

Precisions (hls4ml config, per layer name):
- ``MaxPool2DCeil``: ``Precision: {result: ...}`` must equal the input's type (width, integer
  bits, signedness): a max-pool never changes the grid. ``'auto'`` takes the input's type.
- ``FixedGlobalAvgPool``: ``Precision: {result: ...}`` is the logit type. The accumulator is
  derived, not configured: the input type widened by ``ceil(log2(H*W))`` integer bits, so the
  sum is exact; the scaling constants come from ``model.golden.gap_reciprocal``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import hls4ml
from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
from hls4ml.converters.keras_v2_to_hls import get_layer_handlers, register_keras_v2_layer_handler
from hls4ml.model.attributes import Attribute, TypeAttribute
from hls4ml.model.layers import Layer, register_layer
from hls4ml.model.optimizer.optimizer import get_backend_passes
from hls4ml.model.types import (
    FixedPrecisionType,
    IntegerPrecisionType,
    NamedType,
    UnspecifiedPrecisionType,
)

from model.golden import gap_reciprocal
from model.graph import pool_out_ceil
from model.paths import FIRMWARE
from model.spec import BACKENDS

KERNEL_HEADER = FIRMWARE / "nnet_sqz_pool_stream.h"
_INCLUDE = ["nnet_utils/" + KERNEL_HEADER.name]


# ---------------------------------------------------------------- precision helpers


def _frac(p) -> int:
    if isinstance(p, FixedPrecisionType):
        return p.width - p.integer
    if isinstance(p, IntegerPrecisionType):
        return 0
    raise TypeError(f"expected a fixed-point or integer precision, got {p!r}")


def _grid(p) -> tuple[int, int, bool]:
    """(width, fractional bits, signed): what decides the values a type can hold."""
    return p.width, _frac(p), bool(p.signed)


def gap_accum_precision(in_prec, pixels: int):
    """The input type with ``ceil(log2(pixels))`` more integer bits: holds any sum exactly."""
    grow = max(0, math.ceil(math.log2(pixels)))
    if isinstance(in_prec, FixedPrecisionType):
        return FixedPrecisionType(in_prec.width + grow, in_prec.integer + grow, in_prec.signed)
    if isinstance(in_prec, IntegerPrecisionType):
        return IntegerPrecisionType(in_prec.width + grow, in_prec.signed)
    raise TypeError(f"global average pool input must be fixed-point or integer, got {in_prec!r}")


def gap_constants(in_prec, out_prec, pixels: int) -> tuple[int, int]:
    """(recip, shift) of the golden model: ``out = sat((sum * recip + half) >> shift)``."""
    recip, s = gap_reciprocal(pixels)
    return recip, _frac(in_prec) + s - _frac(out_prec)


# ---------------------------------------------------------------- hls4ml layers


class MaxPool2DCeil(Layer):
    """Caffe ceil-mode max-pool (channels last, no padding); output type = input type."""

    _expected_attributes: ClassVar[list[Attribute]] = [
        Attribute("in_height"),
        Attribute("in_width"),
        Attribute("out_height"),
        Attribute("out_width"),
        Attribute("n_chan"),
        Attribute("pool_height"),
        Attribute("pool_width"),
        Attribute("stride_height"),
        Attribute("stride_width"),
    ]

    def initialize(self):
        precision, _ = self.model.config.get_precision(self, var="result")
        if isinstance(precision, UnspecifiedPrecisionType):
            precision = self.get_input_variable().type.precision
        shape = [self.get_attr("out_height"), self.get_attr("out_width"), self.get_attr("n_chan")]
        self.add_output_variable(shape, precision=precision)


class FixedGlobalAvgPool(Layer):
    """Global average pool with the golden model's reciprocal-multiply rounding; shape (C,)."""

    _expected_attributes: ClassVar[list[Attribute]] = [
        Attribute("in_height"),
        Attribute("in_width"),
        Attribute("n_chan"),
        Attribute("recip"),
        Attribute("shift"),
        TypeAttribute("accum"),
    ]

    def initialize(self):
        in_prec = self.get_input_variable().type.precision
        out_prec, _ = self.model.config.get_precision(self, var="result")
        unset = [(what, p) for what, p in (("input", in_prec), ("result", out_prec))
                 if not isinstance(p, (FixedPrecisionType, IntegerPrecisionType))]
        if unset:  # e.g. 'auto' from config_from_keras_model: a configuration error
            what, p = unset[0]
            raise ValueError(
                f"{self.name} (FixedGlobalAvgPool): the {what} precision must be an explicit "
                f"fixed-point type, got {p} (set Precision: {{result: ...}} in the hls4ml "
                f"config of this layer and of its producer)"
            )
        pixels = self.get_attr("in_height") * self.get_attr("in_width")
        recip, shift = gap_constants(in_prec, out_prec, pixels)
        self.set_attr("accum_t", NamedType(f"{self.name}_accum_t",
                                           gap_accum_precision(in_prec, pixels)))
        self.set_attr("recip", recip)
        self.set_attr("shift", shift)
        self.add_output_variable([self.get_attr("n_chan")], precision=out_prec)


# ---------------------------------------------------------------- Keras v2 handlers


def _parse_maxpool(keras_layer, input_names, input_shapes, data_reader):
    cfg = keras_layer["config"]
    batch, h, w, c = input_shapes[0]
    pool, stride = int(cfg["pool_size"]), int(cfg["strides"])
    layer = {
        "name": cfg["name"], "class_name": "MaxPool2DCeil", "inputs": input_names,
        "data_format": "channels_last",
        "in_height": h, "in_width": w, "n_chan": c,
        "out_height": pool_out_ceil(h, pool, stride), "out_width": pool_out_ceil(w, pool, stride),
        "pool_height": pool, "pool_width": pool, "stride_height": stride, "stride_width": stride,
    }
    return layer, [batch, layer["out_height"], layer["out_width"], c]


def _parse_gap(keras_layer, input_names, input_shapes, data_reader):
    batch, h, w, c = input_shapes[0]
    layer = {
        "name": keras_layer["config"]["name"], "class_name": "FixedGlobalAvgPool",
        "inputs": input_names, "data_format": "channels_last",
        "in_height": h, "in_width": w, "n_chan": c,
    }
    return layer, [batch, c]


# ---------------------------------------------------------------- templates

_maxpool_config = """struct config{index} : nnet::maxpool2d_ceil_config {{
    static const unsigned in_height = {in_height};
    static const unsigned in_width = {in_width};
    static const unsigned n_chan = {n_chan};
    static const unsigned out_height = {out_height};
    static const unsigned out_width = {out_width};
    static const unsigned pool_height = {pool_height};
    static const unsigned pool_width = {pool_width};
    static const unsigned stride_height = {stride_height};
    static const unsigned stride_width = {stride_width};
}};\n"""

_gap_config = """struct config{index} : nnet::global_avgpool_fixed_config {{
    static const unsigned in_height = {in_height};
    static const unsigned in_width = {in_width};
    static const unsigned n_chan = {n_chan};
    static const unsigned recip = {recip};
    static const int shift = {shift};
    typedef {accum_t.name} accum_t;
}};\n"""

_maxpool_call = "nnet::maxpool2d_ceil_cl<{input_t}, {output_t}, {config}>({input}, {output});"
_gap_call = "nnet::global_avgpool_fixed_cl<{input_t}, {output_t}, {config}>({input}, {output});"


def _check_io_stream(node) -> None:
    io_type = node.model.config.get_config_value("IOType")
    if io_type != "io_stream":
        raise ValueError(f"{node.name} ({node.class_name}): only io_stream is implemented, "
                         f"got {io_type}")


def _check_maxpool(node) -> None:
    """Types may change after a layer is created (optimizer passes): check what is written."""
    _check_io_stream(node)
    in_prec = node.get_input_variable().type.precision
    out_prec = node.get_output_variable().type.precision
    if _grid(in_prec) != _grid(out_prec):
        raise ValueError(
            f"{node.name} (MaxPool2DCeil): result precision {out_prec} must equal the input "
            f"precision {in_prec} (set Precision: {{result: ...}} to the input's type or 'auto')"
        )


def _check_gap(node) -> None:
    _check_io_stream(node)
    in_prec = node.get_input_variable().type.precision
    out_prec = node.get_output_variable().type.precision
    pixels = node.get_attr("in_height") * node.get_attr("in_width")
    want = (_grid(gap_accum_precision(in_prec, pixels)),
            gap_constants(in_prec, out_prec, pixels))
    have = (_grid(node.get_attr("accum_t").precision), (node.get_attr("recip"),
                                                         node.get_attr("shift")))
    if want != have:
        raise ValueError(
            f"{node.name} (FixedGlobalAvgPool): the input or result type changed after the "
            f"layer was created (accumulator/recip/shift {have} != {want}); set the "
            f"producer's precision explicitly in the hls4ml config"
        )


class MaxPool2DCeilConfigTemplate(LayerConfigTemplate):
    def __init__(self):
        super().__init__(MaxPool2DCeil)

    def format(self, node):
        _check_maxpool(node)
        return _maxpool_config.format(**self._default_config_params(node))


class MaxPool2DCeilFunctionTemplate(FunctionCallTemplate):
    def __init__(self):
        super().__init__(MaxPool2DCeil, include_header=_INCLUDE)

    def format(self, node):
        return _maxpool_call.format(**self._default_function_params(node))


class FixedGlobalAvgPoolConfigTemplate(LayerConfigTemplate):
    def __init__(self):
        super().__init__(FixedGlobalAvgPool)

    def format(self, node):
        _check_gap(node)
        return _gap_config.format(**self._default_config_params(node))


class FixedGlobalAvgPoolFunctionTemplate(FunctionCallTemplate):
    def __init__(self):
        super().__init__(FixedGlobalAvgPool, include_header=_INCLUDE)

    def format(self, node):
        return _gap_call.format(**self._default_function_params(node))


_TEMPLATES = (MaxPool2DCeilConfigTemplate, MaxPool2DCeilFunctionTemplate,
              FixedGlobalAvgPoolConfigTemplate, FixedGlobalAvgPoolFunctionTemplate)

# Keras 2.14 writes the plain class name into model JSON; the package-qualified form is what
# newer serializers write for classes registered with register_keras_serializable.
_KERAS_HANDLERS = {
    "MaxPool2DCeil": _parse_maxpool, "sqz>MaxPool2DCeil": _parse_maxpool,
    "FixedGlobalAvgPool": _parse_gap, "sqz>FixedGlobalAvgPool": _parse_gap,
}


def register_custom_layers() -> None:
    """Make hls4ml convert ``model.layers`` for the Vivado and Vitis backends (idempotent)."""
    register_layer("MaxPool2DCeil", MaxPool2DCeil)
    register_layer("FixedGlobalAvgPool", FixedGlobalAvgPool)
    handlers = get_layer_handlers()
    for keras_name, handler in _KERAS_HANDLERS.items():
        if keras_name not in handlers:
            register_keras_v2_layer_handler(keras_name, handler)
    for name in BACKENDS:
        backend = hls4ml.backends.get_backend(name)
        registered = set(get_backend_passes(name))
        for template_cls in _TEMPLATES:
            if f"{name.lower()}:{template_cls().get_name()}" not in registered:
                backend.register_template(template_cls)
        backend.register_source(KERNEL_HEADER)  # a dict keyed by destination: idempotent
