"""GPTQ weight rounding (model.gptq): hand-computed cases, its objective, and the plan.

The hardware side needs no test of its own: a GPTQ kernel lies on the layer's grid, so the
plan stores its integers unchanged (checked here) and the C simulation and RTL tests of
tiny / tiny_shared, which prepare with the default ``weight_rounding: gptq``, compare
against the golden model built from them.
"""

from __future__ import annotations

import numpy as np
import pytest

from model.fixed import FixedFormat
from model.gptq import codebook_grid, gptq_kernel, output_error, relative_error, uniform_grid

QUARTER = FixedFormat(8, 6)   # lsb 0.25, range -32 .. 31.75


def test_two_inputs_by_hand():
    """Two inputs with correlation 0.9 and no damping. Row 0 (0.3) rounds to 0.25; its
    error 0.05 moves row 1 by 0.05 * H^-1_01 / H^-1_00 = +0.045 (OBS update), 0.1 -> 0.145,
    which rounds to 0.25 where plain rounding gives 0. The output error d^T H d is then
    0.0115 against 0.0215."""
    h = np.array([[1.0, 0.9], [0.9, 1.0]])
    w = np.array([[0.3], [0.1]])
    q = gptq_kernel(w, h, uniform_grid(QUARTER), damping=0.0)
    assert q.tolist() == [[0.25], [0.25]]
    nearest = QUARTER.to_real(QUARTER.quantize(w))
    assert nearest.tolist() == [[0.25], [0.0]]
    assert output_error(w, q, h) == pytest.approx(0.0115)
    assert output_error(w, nearest, h) == pytest.approx(0.0215)


def test_uncorrelated_inputs_give_plain_rounding():
    """With a diagonal H no error has anywhere to go: GPTQ is nearest rounding."""
    rng = np.random.default_rng(1)
    w = rng.normal(0, 2, (12, 5))
    h = np.diag(rng.uniform(0.5, 3.0, 12))
    q = gptq_kernel(w, h, uniform_grid(QUARTER))
    assert np.array_equal(q, QUARTER.to_real(QUARTER.quantize(w)))


def _correlated(rng, k: int, n: int = 4000) -> np.ndarray:
    mix = rng.normal(size=(k, k)) + 2 * np.eye(k)
    x = np.maximum(rng.normal(size=(n, k)) @ mix, 0)   # ReLU-like inputs, correlated
    return x.T @ x / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lower_output_error_than_nearest_on_grid(seed):
    rng = np.random.default_rng(seed)
    k, c = 36, 16
    h = _correlated(rng, k)
    w = rng.normal(0, 0.6, (k, c))
    q = gptq_kernel(w, h, uniform_grid(QUARTER))
    nearest = QUARTER.to_real(QUARTER.quantize(w))
    assert np.array_equal(QUARTER.to_real(QUARTER.quantize(q)), q)   # on the grid
    err_g, err_n = relative_error(w, q, h), relative_error(w, nearest, h)
    print(f"seed {seed}: relative output error GPTQ {err_g:.5f}, nearest {err_n:.5f}")
    assert err_g < 0.8 * err_n


def test_saturates_at_the_grid_ends():
    """Error feedback may push a weight past the format's range: it is clamped there."""
    fmt = FixedFormat(4, 2)            # lsb 0.25, range -2 .. 1.75
    h = np.array([[1.0, 0.99], [0.99, 1.0]])
    w = np.array([[1.1], [1.9]])       # row 0 -> 1.0; its error pushes row 1 to 1.999
    q = gptq_kernel(w, h, uniform_grid(fmt), damping=0.0)
    assert q[0, 0] == 1.0 and q[1, 0] == 1.75
    assert q.max() <= fmt.to_real(fmt.qmax)


def test_codebook_and_pruning():
    """Values come only from the codebook; pruned weights are exactly 0 and their error
    is spread over the kept ones."""
    rng = np.random.default_rng(4)
    k, c = 20, 6
    h = _correlated(rng, k)
    w = rng.normal(0, 1, (k, c))
    keep = np.abs(w) > 0.6
    book = np.array([-1.5, -0.75, 0.0, 0.5, 1.25])
    q = gptq_kernel(w, h, codebook_grid(book, keep))
    assert set(np.unique(q)) <= set(book)
    assert np.all(q[~keep] == 0)
    mids = (book[1:] + book[:-1]) / 2
    nearest = np.where(keep, book[np.searchsorted(mids, w)], 0.0)
    assert relative_error(w, q, h) < relative_error(w, nearest, h)


def test_codebook_needs_zero():
    with pytest.raises(ValueError, match="exact zero"):
        codebook_grid(np.array([-1.0, 1.0]))


def test_hessian_shape_checked():
    with pytest.raises(ValueError, match="input rows"):
        gptq_kernel(np.zeros((3, 2)), np.eye(4), uniform_grid(QUARTER))


def test_dead_inputs_are_rounded_plainly():
    """An input that is always 0 (a dead ReLU channel) has H_kk = 0: its weights round to
    the nearest value and move no other weight."""
    h = np.array([[1.0, 0.0, 0.5], [0.0, 0.0, 0.0], [0.5, 0.0, 1.0]])
    w = np.array([[0.3, -0.2], [0.6, 0.4], [0.1, 0.9]])
    q = gptq_kernel(w, h, uniform_grid(QUARTER), damping=0.0)
    assert q[1].tolist() == [0.5, 0.5]
    alive = [0, 2]
    rest = gptq_kernel(w[alive], h[np.ix_(alive, alive)], uniform_grid(QUARTER), damping=0.0)
    assert np.array_equal(q[alive], rest)


@pytest.mark.parametrize("config", ["tiny.yaml", "tiny_shared.yaml"])
def test_plan_stores_the_rounded_kernels(config):
    """prepare with weight_rounding: gptq (what 'auto' picks without pruning): every
    conv's plan integers times its LSB are exactly the rounded kernel; with sharing, at most
    2**bits distinct values and the pruned positions zero."""
    from dataclasses import replace

    from hls.plan.prepare import prepare
    from model import paths
    from model.spec import load_spec

    spec = load_spec(paths.CONFIGS / config)
    spec = replace(spec, quant=replace(spec.quant, weight_rounding="gptq"))
    prep = prepare(spec, log=lambda *a: None)
    convs = [n for n in prep.nodes if n.kind == "conv"]
    for n in convs:
        lq = prep.plan.layers[n.name]
        assert np.array_equal(lq.w_fmt.to_real(lq.w_q), prep.weights[n.name][0]), n.name
        if spec.compression.share_bits:
            assert np.unique(lq.w_q).size <= 2**spec.compression.share_bits
    if spec.compression.sparsity:
        zeros = sum(int((prep.plan.layers[n.name].w_q == 0).sum()) for n in convs)
        total = sum(prep.plan.layers[n.name].w_q.size for n in convs)
        assert zeros / total >= spec.compression.sparsity - 1e-6


def test_logit_conv_format_covers_its_maximum():
    """The conv read only by the global average pool gets a format covering its largest
    calibration value (no saturation of the winning classes' maps), the other convs the
    least-squared-error format, which saturates some values."""
    from hls.plan.prepare import calibration_frames
    from model import paths
    from model.builder import float_weights
    from model.graph import build_graph
    from model.quantize import activation_format, activation_levels, float_forward
    from model.spec import load_spec

    spec = load_spec(paths.CONFIGS / "tiny.yaml")
    nodes = build_graph(spec)
    weights = float_weights(spec, nodes, paths.BUILD / "weights")
    frames = [f.pixels for f in calibration_frames(spec, log=lambda *a: None)[0]][:8]
    levels = activation_levels(nodes, weights, frames, spec)
    last = [n for n in nodes if n.kind == "conv"][-1]
    assert [n.kind for n in nodes if last.name in n.inputs] == ["gap"]
    peak = max(float(float_forward(nodes, weights, f)[last.name].max()) for f in frames)
    fmt = activation_format(levels[last.name], 8)
    assert fmt.to_real(fmt.qmax) >= peak


def test_cache_reuses_and_survives_damage(build_tmp):
    """gptq_network keeps its result under the digest of its inputs: a second run loads
    the same arrays; a damaged file is recomputed (and rewritten), a changed input misses."""
    from hls.plan.prepare import calibration_frames
    from model import paths
    from model.builder import float_weights
    from model.gptq import gptq_network
    from model.graph import build_graph
    from model.quantize import weight_format
    from model.spec import load_spec

    spec = load_spec(paths.CONFIGS / "tiny.yaml")
    nodes = build_graph(spec)
    weights = float_weights(spec, nodes, paths.BUILD / "weights")
    frames = [f.pixels for f in calibration_frames(spec, log=lambda *a: None)[0]][:4]
    grids = {k: uniform_grid(weight_format(w, 8)) for k, (w, _) in weights.items()}
    lines: list[str] = []
    first = gptq_network(nodes, weights, frames, grids, cache=build_tmp, log=lines.append)
    files = list(build_tmp.glob("*.npz"))
    assert len(files) == 1 and "calibration frames" in lines[-1]
    again = gptq_network(nodes, weights, frames, grids, cache=build_tmp, log=lines.append)
    assert "reused from" in lines[-1]
    for k in first:
        assert np.array_equal(first[k][0], again[k][0]) and np.array_equal(first[k][1],
                                                                             again[k][1])
    files[0].write_bytes(files[0].read_bytes()[:100])      # truncated
    gptq_network(nodes, weights, frames, grids, cache=build_tmp, log=lines.append)
    assert "calibration frames" in lines[-1]
    gptq_network(nodes, weights, frames[:3], grids, cache=build_tmp, log=lines.append)
    assert "calibration frames" in lines[-1] and len(list(build_tmp.glob("*.npz"))) == 2
