"""Hostile weights for the quantizer (issue 11, item 7): any finite weights get valid
fixed-point formats, or an InputError that names the layer and the reason.

Calibration runs on seeded random frames of a 35x35 network, so each case takes a fraction
of a second.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.builder import _activation_quantizer, random_weights
from model.errors import InputError
from model.fixed import FixedFormat, requantize
from model.graph import build_graph
from model.quantize import bias_format, calibrate, run_golden, weight_format
from model.spec import spec_from_dict

SMALL = {"name": "t", "variant": "custom", "weights": "random", "classes": 10,
         "input": {"height": 35, "width": 35}, "n_fire": 2, "conv1": {"filters": 8},
         "pool_after": ["conv1"]}


@pytest.fixture(scope="module", params=["none", "simple"])
def network(request):
    spec = spec_from_dict({**SMALL, "bypass": request.param})
    nodes = build_graph(spec)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (35, 35, 3), dtype=np.uint8) for _ in range(2)]
    return spec, nodes, frames


def _convs(nodes) -> list[str]:
    return [n.name for n in nodes if n.kind == "conv"]


def _check_plan(nodes, plan, frame) -> None:
    """Every format valid and the golden model runs to int64 values inside them."""
    for lq in plan.layers.values():
        for fmt in (lq.out_fmt, lq.pre_fmt, lq.w_fmt, lq.b_fmt, lq.acc_fmt):
            if fmt is not None:
                assert 1 <= fmt.width <= 64 and (fmt.width >= 2 or not fmt.signed), lq
        if lq.kind == "conv":
            assert lq.b_fmt.frac <= lq.w_fmt.frac + plan.fmt_of(
                next(n for n in nodes if n.name == lq.name).inputs[0]).frac
    out = run_golden(nodes, plan, frame)
    for name, lq in plan.layers.items():
        assert out[name].dtype == np.int64, name
        assert lq.out_fmt.qmin <= out[name].min() and out[name].max() <= lq.out_fmt.qmax


def _scaled(weights, name, kernel=None, bias=None):
    k, b = weights[name]
    weights[name] = (k if kernel is None else kernel(k).astype(np.float32),
                     b if bias is None else bias(b).astype(np.float32))
    return weights


CASES = {
    # The case: "fixed-point width must be 1..64, got 0" with no layer named.
    "conv1 all 1.0": lambda w: _scaled(w, "conv1", kernel=np.ones_like),
    "conv1 all 1.0, zero bias": lambda w: _scaled(w, "conv1", np.ones_like, np.zeros_like),
    "all zeros": lambda w: {n: (np.zeros_like(k), np.zeros_like(b)) for n, (k, b) in w.items()},
    "one 1e30 weight in conv1": lambda w: _scaled(
        w, "conv1", kernel=lambda k: np.where(np.arange(k.size).reshape(k.shape) == 5, 1e30, k)),
    "one 1e30 weight in fire2": lambda w: _scaled(
        w, "fire2_squeeze1x1",
        kernel=lambda k: np.where(np.arange(k.size).reshape(k.shape) == 0, -1e30, k)),
    "conv1 kernel and bias 1e-30": lambda w: _scaled(
        w, "conv1", kernel=lambda k: np.full_like(k, 1e-30), bias=lambda b: np.full_like(b, 1e-30)),
    "fire2 kernel 1e-30, zero bias": lambda w: _scaled(
        w, "fire2_expand3x3", kernel=lambda k: k * 1e-30, bias=np.zeros_like),
    "subnormal weights, zero bias": lambda w: _scaled(
        w, "conv10", kernel=lambda k: np.sign(k) * 1e-44, bias=np.zeros_like),
    "bias 1e-30 beside normal weights": lambda w: _scaled(
        w, "fire2_squeeze1x1", bias=lambda b: np.full_like(b, 1e-30)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_extreme_but_finite_weights_get_valid_formats(network, case):
    spec, nodes, frames = network
    weights = CASES[case](random_weights(nodes, 3))
    plan = calibrate(nodes, weights, frames, spec)
    _check_plan(nodes, plan, frames[0])


REFUSED = {
    "conv1 kernel 1e-30 next to a normal bias": (
        lambda w: _scaled(w, "conv1", kernel=lambda k: np.full_like(k, 1e-30)),
        r"^conv1: the exact accumulator needs \d+ bits, more than "
        r"quantization.accumulator_bits = 32 \(largest \|weight\| 1e-30, largest \|bias\| "),
    "bias 1e30": (
        lambda w: _scaled(w, "fire2_expand1x1", bias=lambda b: np.full_like(b, 1e30)),
        r"^fire2_expand1x1: the exact accumulator needs \d+ bits.*largest \|bias\| 1e\+30"),
    "every kernel 1e30 (float32 overflow)": (
        lambda w: {n: (np.full_like(k, 1e30), b) for n, (k, b) in w.items()},
        r"^fire2_squeeze1x1: the float activations overflow float32 \(inf or NaN\) on the "
        r"calibration frames, so no fixed-point format covers them; the weights are too "
        r"large \(largest \|value\| 1e\+30, in conv1\)$"),
    "NaN": (
        lambda w: _scaled(w, "fire2_expand3x3", kernel=lambda k: np.where(k > 0, np.nan, k)),
        r"^fire2_expand3x3: \d+ of the 9216 kernel values are NaN or infinite; weights must "
        r"be finite$"),
    "inf bias": (
        lambda w: _scaled(w, "conv10", bias=lambda b: np.full_like(b, -np.inf)),
        r"^conv10: 10 of the 10 bias values are NaN or infinite"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_unusable_weights_are_refused_naming_the_layer(network, case):
    spec, nodes, frames = network
    make, message = REFUSED[case]
    with pytest.raises(InputError, match=message):
        calibrate(nodes, make(random_weights(nodes, 3)), frames, spec)


def test_random_scales_give_a_plan_or_a_named_error(network):
    """Property: each conv scaled by 10**U(-35, 35) (kernel and bias independently)."""
    spec, nodes, frames = network
    rng = np.random.default_rng(11)
    convs = _convs(nodes)
    outcomes = {"plan": 0, "error": 0}
    for _ in range(12):
        weights = random_weights(nodes, int(rng.integers(1 << 16)))
        for name in convs:
            k, b = weights[name]
            weights[name] = ((k * 10.0 ** rng.uniform(-35, 35)).astype(np.float32),
                             (b * 10.0 ** rng.uniform(-35, 35)).astype(np.float32))
        try:
            plan = calibrate(nodes, weights, frames, spec)
        except InputError as exc:
            assert str(exc).split(":")[0] in {n.name for n in nodes}, exc
            assert "fixed-point width" not in str(exc)
            outcomes["error"] += 1
        else:
            _check_plan(nodes, plan, frames[0])
            outcomes["plan"] += 1
    assert outcomes["error"]  # the property was exercised on both sides
    for name in convs:  # a plan for mild scales: 10**U(-3, 3) per layer
        k, b = weights[name]
        weights[name] = (k / np.abs(k).max() * 10.0 ** rng.uniform(-3, 3),
                         b / max(np.abs(b).max(), 1e-30) * 10.0 ** rng.uniform(-3, 3))
    _check_plan(nodes, calibrate(nodes, weights, frames, spec), frames[0])


@pytest.mark.parametrize("b_max", [0.0, 1e-45, 1e-30, 2.0**-20, 0.3, 1.0, 1e4, 1e30])
@pytest.mark.parametrize("acc_frac", [-120, -7, 0, 7, 15, 40, 130])
def test_bias_format_is_valid_and_holds_the_bias(b_max, acc_frac):
    b = np.array([b_max, -b_max / 3, 0.0])
    fmt = bias_format(b, acc_frac, 16)
    assert 2 <= fmt.width <= 16 and fmt.frac <= acc_frac
    # Within half an LSB: the range holds the bias (saturation would be further off).
    assert np.all(np.abs(fmt.to_real(fmt.quantize(b)) - b) <= fmt.lsb / 2)


def test_weight_format_refuses_non_finite_values():
    assert weight_format(np.array([1e-30]), 8) == FixedFormat(8, -98)
    assert weight_format(np.array([-1e30]), 8) == FixedFormat(8, 101)
    with pytest.raises(ValueError, match="weights must be finite"):
        weight_format(np.array([1.0, np.inf]), 8)


def _reference_requantize(acc: int, acc_frac: int, out: FixedFormat) -> int:
    shift = acc_frac - out.frac
    q = (acc + (1 << (shift - 1))) >> shift if shift > 0 else acc << -shift
    return min(max(q, out.qmin), out.qmax)


@pytest.mark.parametrize("shift", [-200, -70, -63, -40, -1, 0, 1, 30, 62, 63, 64, 65, 98, 300])
def test_requantize_is_exact_for_any_shift(shift):
    rng = np.random.default_rng(abs(shift))
    acc = np.concatenate([rng.integers(-(2**62), 2**62, 50), [0, 1, -1, 2**63 - 1, -(2**63)],
                          rng.integers(-1000, 1000, 50)])
    for out in (FixedFormat(9, 3), FixedFormat(8, 4, signed=False), FixedFormat(24, -5)):
        acc_frac = out.frac + shift
        got = requantize(acc, acc_frac, out)
        assert got.dtype == np.int64
        want = [_reference_requantize(int(a), acc_frac, out) for a in acc]
        assert got.tolist() == want


def test_qkeras_range_and_activation_formats_it_cannot_express():
    assert FixedFormat(8, 31).qkeras() == "quantized_bits(8,30,alpha=1)"
    assert FixedFormat(8, 30, signed=False).qkeras() == "quantized_relu(8,30)"
    for fmt in (FixedFormat(8, 32), FixedFormat(8, 31, signed=False), FixedFormat(8, 0)):
        assert not fmt.qkeras_expressible
        with pytest.raises(ValueError, match="has no QKeras quantizer"):
            fmt.qkeras()
    with pytest.raises(InputError, match=r"^fire3_expand1x1: its activations need "
                       r"ap_ufixed<8,110,AP_RND,AP_SAT>, which QKeras 0.9.0 cannot express"):
        _activation_quantizer("fire3_expand1x1", FixedFormat(8, 110, signed=False))
    assert math.isclose(FixedFormat(8, 4, signed=False).lsb, 1 / 16)
