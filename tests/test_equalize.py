"""Cross-layer equalization (model.equalize): exact in float, balanced ranges, and only
where a channel's scale cannot reach the logits."""

from __future__ import annotations

import numpy as np

from model.equalize import equalizable_pairs, equalize
from model.graph import build_graph
from model.quantize import float_forward
from model.spec import spec_from_dict

TINY = {"name": "t", "variant": "custom", "weights": "random", "classes": 10,
        "input": {"height": 35, "width": 35}, "n_fire": 2, "conv1": {"filters": 8},
        "pool_after": ["conv1"]}


def _random_weights(nodes, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for n in nodes:
        if n.kind == "conv":
            k, cin, cout = n.kernel, n.in_shape[2], n.out_shape[2]
            # channels with very different ranges, as real networks have
            scale = np.exp(rng.normal(0, 1.5, cout)).astype(np.float32)
            out[n.name] = ((rng.normal(0, 0.2, (k, k, cin, cout)) * scale).astype(np.float32),
                           rng.normal(0, 0.1, cout).astype(np.float32))
    return out


def test_pairs_follow_pools_and_concats_and_stop_before_the_logits():
    nodes = build_graph(spec_from_dict(TINY))
    pairs = equalizable_pairs(nodes)
    assert pairs["conv1"] == [("fire2_squeeze1x1", 0)]           # through the max-pool
    assert sorted(pairs["fire2_squeeze1x1"]) == [("fire2_expand1x1", 0),
                                                 ("fire2_expand3x3", 0)]
    e1 = next(n for n in nodes if n.name == "fire2_expand1x1").out_shape[2]
    assert pairs["fire2_expand1x1"] == [("fire3_squeeze1x1", 0)]  # first half of the concat
    assert pairs["fire2_expand3x3"] == [("fire3_squeeze1x1", e1)]  # second half
    assert "conv10" not in pairs                                  # feeds the pool -> logits


def test_float_network_is_unchanged_and_ranges_are_balanced():
    nodes = build_graph(spec_from_dict(TINY))
    weights = _random_weights(nodes)
    eq = equalize(nodes, weights, sweeps=1)
    frame = np.random.default_rng(1).integers(0, 256, (35, 35, 3)).astype(np.float32)
    a, b = (float_forward(nodes, w, frame) for w in (weights, eq))
    gap = nodes[-1].name
    np.testing.assert_allclose(b[gap], a[gap], rtol=1e-4, atol=1e-5)
    # conv1 -> fire2_squeeze1x1: conv1's channel ranges move towards the consumer's
    # (equal right after that step; the next pair rescales the squeeze's outputs)

    def spread(ws):
        r1 = np.abs(ws["conv1"][0]).reshape(-1, 8).max(axis=0)
        r2 = np.abs(ws["fire2_squeeze1x1"][0]).max(axis=(0, 1, 3))
        return float(np.std(np.log(r1 / r2))), float(r1.max() / r1.min())

    (mismatch_before, range_before), (mismatch_after, range_after) = map(
        spread, (weights, eq))
    assert mismatch_after < 0.5 * mismatch_before
    assert range_after < range_before
    assert weights["conv1"][0] is not eq["conv1"][0]   # new arrays, the input untouched
