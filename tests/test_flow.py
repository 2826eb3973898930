"""The whole flow on the small spec: golden model vs QKeras vs hls4ml C simulation."""

from __future__ import annotations

import numpy as np
import pytest

from hls.hls4ml_backend.csim import build_project, run_csim
from hls.plan.prepare import prepare
from model.builder import keras_output_name
from model.paths import REPO
from model.quantize import run_golden
from model.spec import load_spec

TINY = REPO / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny():
    return prepare(load_spec(TINY))


@pytest.fixture(scope="module")
def tiny_project(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("hls") / "tiny_vitis"
    qmodel, hls_model = build_project(tiny, backend="Vitis", out_dir=out)
    return qmodel, hls_model


@pytest.mark.csim
def test_tiny_csim_every_layer_bit_exact(tiny, tiny_project):
    _, hls_model = tiny_project
    res = run_csim(tiny, hls_model)
    print(f"\ntiny csim: {res.frames} frames, {res.compared} outputs compared, "
          f"{res.mismatches} mismatches")
    assert res.frames == len(tiny.frames) >= 3
    # every block of the graph (and each conv before its ReLU) was traced and compared
    expected = {keras_output_name(n) for n in tiny.nodes}
    expected |= {n.name for n in tiny.nodes if n.kind == "conv"}
    assert expected <= set(res.per_layer), expected - set(res.per_layer)
    assert res.compared > 0
    assert res.mismatches == 0, res.first_mismatch


@pytest.mark.csim
def test_csim_detects_a_wrong_golden_value(tiny, tiny_project):
    """The comparison can fail: a plan whose conv bias is off by one LSB is caught."""
    _, hls_model = tiny_project
    import copy

    bad = copy.deepcopy(tiny)
    lq = bad.plan.layers["fire2_expand1x1"]
    lq.b_q = lq.b_q + (1 << max(lq.b_fmt.frac - lq.out_fmt.frac, 0))
    res = run_csim(bad, hls_model, bad.frames[:1])
    assert res.per_layer["fire2_expand1x1"][1] > 0


def test_qkeras_matches_golden_within_one_lsb(tiny):
    """Each QKeras layer, fed the QKeras input of that layer, is within 1 LSB of golden."""
    import tensorflow as tf

    from model import golden
    from model.builder import build_qkeras

    model = build_qkeras(tiny.spec, tiny.nodes, tiny.plan)
    names = [keras_output_name(n) for n in tiny.nodes]
    probe = tf.keras.Model(model.input, [model.get_layer(k).output for k in names])
    frames = np.stack([f.pixels for f in tiny.frames]).astype(np.float32)
    outs = dict(zip(names, probe.predict(frames, verbose=0), strict=True))
    exact = total = 0
    for n in tiny.nodes:
        lq = tiny.plan.layers[n.name]
        got = np.rint(outs[keras_output_name(n)] * 2.0**lq.out_fmt.frac).astype(np.int64)
        if n.inputs[0] == "input_1":
            x_q, x_fmt = frames.astype(np.int64), tiny.plan.input_fmt
        else:
            src = next(m for m in tiny.nodes if m.name == n.inputs[0])
            x_fmt = tiny.plan.layers[src.name].out_fmt
            x_q = np.rint(outs[keras_output_name(src)] * 2.0**x_fmt.frac).astype(np.int64)
        for i in range(len(frames)):
            if n.kind == "conv":
                want = golden.conv2d(x_q[i], x_fmt, lq.w_q, lq.w_fmt, lq.b_q, lq.b_fmt,
                                     lq.pre_fmt, n.stride, n.pad)
            elif n.kind == "maxpool":
                want = golden.maxpool_ceil(x_q[i])
            elif n.kind == "gap":
                want = golden.global_avgpool(x_q[i], x_fmt, lq.out_fmt)
            else:
                continue  # concat: no arithmetic
            diff = np.abs(got[i].reshape(want.shape) - want)
            assert diff.max() <= 1, f"{n.name}: QKeras differs from golden by {diff.max()} LSB"
            exact += int(np.count_nonzero(diff == 0))
            total += diff.size
    print(f"\nQKeras vs golden (per layer): {exact}/{total} exactly equal "
          f"({exact / total:.4%}), the rest within 1 LSB")
    assert total > 0


def test_golden_rejects_non_uint8_frames(tiny):
    with pytest.raises(TypeError, match="uint8 raw pixels"):
        run_golden(tiny.nodes, tiny.plan, tiny.frames[0].pixels.astype(np.float32))


def test_plan_formats_are_consistent(tiny):
    q = tiny.spec.quant
    for n in tiny.nodes:
        lq = tiny.plan.layers[n.name]
        # conv10, the classifier, is read only by the pool: classifier_bits wide
        want = {"gap": q.logit_bits, "conv10": q.classifier_bits}.get(n.name, 8)
        assert lq.out_fmt.width == want, n.name
        if n.kind == "conv":
            assert lq.w_fmt.width == 8
            assert np.abs(lq.w_q).max() <= 128
            assert lq.pre_fmt.frac == lq.out_fmt.frac
        if n.kind == "concat":
            a, b = (tiny.plan.layers[i].out_fmt for i in n.inputs)
            assert a == b == lq.out_fmt


def test_tiny_test_vectors_exercise_every_layer(tiny):
    """The bit-exact checks above mean something only if no layer is dead or constant."""
    outs = [run_golden(tiny.nodes, tiny.plan, f.pixels) for f in tiny.frames]
    for n in tiny.nodes:
        for o in outs:
            assert np.count_nonzero(o[n.name]) > 0, f"{n.name} is all zeros on a photo"
    assert len({tuple(o["gap"]) for o in outs}) == len(outs), "photos give equal logits"


# The Vivado-backend variant runs in make test-all (CI time); the Vitis one in the
# default suite.
@pytest.mark.slow
@pytest.mark.csim
def test_tiny_csim_vivado_backend(tiny, tmp_path):
    """The same project through hls4ml's Vivado backend (Vivado HLS templates)."""
    _, hls_model = build_project(tiny, backend="Vivado", out_dir=tmp_path / "tiny_vivado")
    res = run_csim(tiny, hls_model, tiny.frames[:3])
    print(f"\ntiny csim (Vivado backend): {res.compared} outputs compared, "
          f"{res.mismatches} mismatches")
    assert res.compared > 0 and res.mismatches == 0, res.first_mismatch
