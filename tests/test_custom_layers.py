"""The custom pooling layers: Keras semantics and hls4ml C simulation against the golden model.

The C-simulation tests convert one-layer Keras models with hls4ml (io_stream), compile them
with g++ and compare every output element, as integers, with ``model.golden``.
"""

from __future__ import annotations

import hls4ml
import numpy as np
import pytest
import tensorflow as tf
from hls4ml.model.types import FixedPrecisionType

from hls.hls4ml_backend.extensions import gap_accum_precision, gap_constants, register_custom_layers
from model import golden
from model.fixed import FixedFormat
from model.graph import pool_out_ceil
from model.layers import FixedGlobalAvgPool, MaxPool2DCeil

PART = "xczu9eg-ffvb1156-2-e"
U8_4 = FixedFormat(8, 4, signed=False)
S8_3 = FixedFormat(8, 3, signed=True)
LOGIT = FixedFormat(16, 8, signed=False)


@pytest.fixture(scope="module", autouse=True)
def _registered():
    register_custom_layers()
    register_custom_layers()  # idempotent


def _grid_input(rng, fmt: FixedFormat, shape) -> tuple[np.ndarray, np.ndarray]:
    """Random integers on ``fmt``'s grid: (q as int64, the same values as float64)."""
    q = rng.integers(fmt.qmin, fmt.qmax + 1, size=shape, dtype=np.int64)
    return q, fmt.to_real(q)


def _one_layer_model(shape, layer: tf.keras.layers.Layer) -> tf.keras.Model:
    inp = tf.keras.Input(shape, name="in0")  # hls4ml reserves the name 'input'
    return tf.keras.Model(inp, layer(inp))


def _convert(kmodel, precisions: dict[str, str], backend: str, out_dir, io_type="io_stream"):
    cfg = {
        "Model": {"Precision": "fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": {name: {"Precision": {"result": p}} for name, p in precisions.items()},
    }
    return hls4ml.converters.convert_from_keras_model(
        kmodel, hls_config=cfg, io_type=io_type, backend=backend, output_dir=str(out_dir),
        part=PART,
    )


def _to_int(y: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    scaled = np.asarray(y, dtype=np.float64) * 2.0**fmt.frac
    assert np.array_equal(scaled, np.rint(scaled)), "C-simulation output is off the grid"
    return scaled.astype(np.int64)


# ---------------------------------------------------------------- Keras layers (no g++)

KERAS_CASES = [
    (h, w, pool, stride)
    for h, w in [(7, 7), (8, 8), (9, 6), (3, 4), (27, 27), (55, 55), (113, 113)]
    for pool, stride in [(3, 2), (2, 2), (3, 3), (2, 1), (4, 3)]
    if min(h, w) >= pool
]


@pytest.mark.parametrize("h,w,pool,stride", KERAS_CASES)
def test_keras_maxpool_matches_golden(h, w, pool, stride):
    rng = np.random.default_rng(h * 1000 + w * 10 + pool)
    x = rng.normal(size=(2, h, w, 3)).astype(np.float32)  # negatives too: no ReLU assumed
    y = MaxPool2DCeil(pool, stride)(x).numpy()
    ho, wo = pool_out_ceil(h, pool, stride), pool_out_ceil(w, pool, stride)
    assert y.shape == (2, ho, wo, 3)
    assert MaxPool2DCeil(pool, stride).compute_output_shape((None, h, w, 3)) == (None, ho, wo, 3)
    for frame in range(2):
        assert np.array_equal(y[frame], golden.maxpool_ceil(x[frame], pool, stride))


def test_keras_maxpool_rejects_bad_geometry():
    with pytest.raises(ValueError, match=r"strides <= pool_size <= 2 \* strides, got "
                                         r"pool_size=5, strides=2"):
        MaxPool2DCeil(5, 2)


def test_keras_layers_round_trip_through_json():
    inp = tf.keras.Input((9, 9, 2), name="in0")
    kmodel = tf.keras.Model(inp, FixedGlobalAvgPool(12, 6)(MaxPool2DCeil(3, 2)(inp)))
    clone = tf.keras.models.model_from_json(kmodel.to_json())
    assert clone.layers[1].get_config()["pool_size"] == 3
    assert clone.layers[2].get_config()["logit_width"] == 12
    assert clone.output_shape == (None, 2)


def test_keras_gap_within_one_lsb_of_golden():
    rng = np.random.default_rng(7)
    q, x = _grid_input(rng, U8_4, (4, 13, 13, 10))
    y = FixedGlobalAvgPool(LOGIT.width, LOGIT.integer)(x.astype(np.float32)).numpy()
    assert y.shape == (4, 10)
    got = _to_int(y, LOGIT)
    want = np.stack([golden.global_avgpool(q[i], U8_4, LOGIT) for i in range(4)])
    assert np.abs(got - want).max() <= 1
    print(f"Keras GAP == golden for {np.sum(got == want)} of {got.size} logits")


# ---------------------------------------------------------------- hls4ml C simulation

# (H, W, C, pool, stride, input format, backend)
MAXPOOL_CASES = [
    (7, 7, 1, 3, 2, U8_4, "Vivado"),
    (8, 8, 3, 3, 2, U8_4, "Vivado"),
    (9, 6, 4, 3, 2, U8_4, "Vivado"),
    (9, 6, 4, 3, 2, U8_4, "Vitis"),
    (10, 7, 3, 3, 2, S8_3, "Vivado"),    # signed, negative values: no ReLU assumed
    (113, 113, 3, 3, 2, U8_4, "Vivado"),
    (8, 11, 2, 2, 2, U8_4, "Vitis"),     # pool == stride
    (11, 9, 2, 4, 3, S8_3, "Vivado"),    # generic overlap, clipped last window
    (6, 7, 2, 2, 1, U8_4, "Vivado"),     # stride 1
]


@pytest.mark.csim
@pytest.mark.parametrize("h,w,c,pool,stride,fmt,backend", MAXPOOL_CASES)
def test_csim_maxpool_ceil_bit_exact(tmp_path, h, w, c, pool, stride, fmt, backend):
    kmodel = _one_layer_model((h, w, c), MaxPool2DCeil(pool, stride, name="pool"))
    hmodel = _convert(kmodel, {"in0": fmt.hls(), "pool": fmt.hls()}, backend, tmp_path / "prj")
    hmodel.compile()
    assert "nnet::maxpool2d_ceil_cl<" in (tmp_path / "prj/firmware/myproject.cpp").read_text()

    frames = 3  # more than one: the kernel's static buffers must not leak between frames
    rng = np.random.default_rng(h * 100 + w + c)
    q, x = _grid_input(rng, fmt, (frames, h, w, c))
    ho, wo = pool_out_ceil(h, pool, stride), pool_out_ceil(w, pool, stride)
    got = _to_int(hmodel.predict(x), fmt).reshape(frames, ho, wo, c)
    want = np.stack([golden.maxpool_ceil(q[i], pool, stride) for i in range(frames)])
    assert np.array_equal(got, want)
    print(f"maxpool {h}x{w}x{c} {pool}/{stride} {backend}: {got.size} elements bit-exact")


# (H, W, C, input format, output format, backend)
GAP_CASES = [
    (14, 14, 4, U8_4, LOGIT, "Vivado"),
    (13, 13, 3, U8_4, LOGIT, "Vitis"),
    (4, 4, 5, U8_4, LOGIT, "Vivado"),                                # H*W a power of two
    (7, 5, 2, U8_4, LOGIT, "Vivado"),
    (4, 4, 3, U8_4, FixedFormat(30, 3, signed=False), "Vivado"),    # shift < 0, saturation
    (7, 5, 6, S8_3, FixedFormat(6, 1, signed=True), "Vivado"),      # signed, both rails
]


@pytest.mark.csim
@pytest.mark.parametrize("h,w,c,in_fmt,out_fmt,backend", GAP_CASES)
def test_csim_global_avgpool_bit_exact(tmp_path, h, w, c, in_fmt, out_fmt, backend):
    kmodel = _one_layer_model((h, w, c), FixedGlobalAvgPool(name="gap"))
    hmodel = _convert(kmodel, {"in0": in_fmt.hls(), "gap": out_fmt.hls()}, backend,
                      tmp_path / "prj")
    hmodel.compile()
    assert "nnet::global_avgpool_fixed_cl<" in (tmp_path / "prj/firmware/myproject.cpp").read_text()

    frames = 8
    rng = np.random.default_rng(h * 100 + w + c)
    q, x = _grid_input(rng, in_fmt, (frames, h, w, c))
    x[0] = in_fmt.to_real(np.full((h, w, c), in_fmt.qmax))  # the largest sum
    q[0] = in_fmt.qmax
    if in_fmt.signed:
        x[1] = in_fmt.to_real(np.full((h, w, c), in_fmt.qmin))  # the most negative sum
        q[1] = in_fmt.qmin
    got = _to_int(hmodel.predict(x), out_fmt).reshape(frames, c)
    want = np.stack([golden.global_avgpool(q[i], in_fmt, out_fmt) for i in range(frames)])
    assert np.array_equal(got, want)
    print(f"gap {h}x{w}x{c} -> {out_fmt.ap()} {backend}: {got.size} elements bit-exact")


def test_gap_constants_follow_golden():
    in_prec = FixedPrecisionType(8, 4, signed=False)
    out_prec = FixedPrecisionType(16, 8, signed=False)
    recip, s = golden.gap_reciprocal(169)
    assert gap_constants(in_prec, out_prec, 169) == (recip, 4 + s - 8)
    acc = gap_accum_precision(in_prec, 169)
    assert (acc.width, acc.integer, acc.signed) == (16, 12, False)  # 169 pixels: 8 more bits


def test_maxpool_result_precision_must_match_input(tmp_path):
    kmodel = _one_layer_model((7, 7, 1), MaxPool2DCeil(name="pool"))
    with pytest.raises(ValueError, match=r"pool \(MaxPool2DCeil\): result precision .* must "
                                         r"equal the input precision"):
        _convert(kmodel, {"in0": U8_4.hls(), "pool": "ufixed<8,3,RND,SAT>"}, "Vivado",
                 tmp_path / "prj")


def test_custom_layers_need_io_stream(tmp_path):
    kmodel = _one_layer_model((4, 4, 2), FixedGlobalAvgPool(name="gap"))
    with pytest.raises(ValueError, match=r"gap \(FixedGlobalAvgPool\): only io_stream is "
                                         r"implemented, got io_parallel"):
        _convert(kmodel, {"in0": U8_4.hls(), "gap": LOGIT.hls()}, "Vivado", tmp_path / "prj",
                 io_type="io_parallel")


def test_gap_needs_an_explicit_result_precision(tmp_path):
    kmodel = _one_layer_model((4, 4, 2), FixedGlobalAvgPool(name="gap"))
    with pytest.raises(ValueError, match=r"gap \(FixedGlobalAvgPool\): the result precision "
                                         r"must be an explicit fixed-point type"):
        _convert(kmodel, {"in0": U8_4.hls(), "gap": "auto"}, "Vivado", tmp_path / "prj")
