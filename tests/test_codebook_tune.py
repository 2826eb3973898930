"""Codebook fine-tuning (model.codebook_tune, compression.tune_epochs) on the tiny shared
network: the tuned design keeps every index and pruned zero, stays on its grids (so the
golden model, hls4ml and the RTL take it unchanged), moves the hardware's class
distribution towards the float model's on the frames it trains on, and is deterministic
and cached."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from model.paths import REPO
from model.spec import SpecError, load_spec, spec_from_dict

SHARED = REPO / "configs" / "tiny_shared.yaml"
EPOCHS = 4


def _with_tuning(spec, epochs=EPOCHS):
    return dataclasses.replace(spec, compression=dataclasses.replace(
        spec.compression, tune_epochs=epochs))


def _kl_to_float(prep, frames) -> float:
    """Mean KL(softmax(float logits) || softmax(hardware logits)) over ``frames``, the
    hardware's logits from the golden model's integers."""
    from model.quantize import float_forward, run_golden

    last = prep.nodes[-1].name
    lsb = prep.plan.layers[last].out_fmt.lsb
    kls = []
    for f in frames:
        ref = float_forward(prep.nodes, prep.reference, f)[last].astype(np.float64)
        hw = run_golden(prep.nodes, prep.plan, f)[last].astype(np.float64) * lsb
        lp = ref - ref.max() - np.log(np.exp(ref - ref.max()).sum())
        lq = hw - hw.max() - np.log(np.exp(hw - hw.max()).sum())
        kls.append(float((np.exp(lp) * (lp - lq)).sum()))
    return float(np.mean(kls))


@pytest.fixture(scope="module")
def pair():
    from hls.plan.prepare import prepare

    spec = load_spec(SHARED)
    lines: list[str] = []
    plain = prepare(spec, log=lambda *a: None, demo=False)
    tuned = prepare(_with_tuning(spec), log=lines.append, demo=False)
    return plain, tuned, lines


def test_tune_options_are_validated():
    base = {"name": "t", "variant": "custom", "weights": "random", "classes": 10,
            "input": {"height": 35, "width": 35}, "n_fire": 2, "conv1": {"filters": 8},
            "pool_after": ["conv1"]}
    c = spec_from_dict({**base, "compression": {"share_bits": 4, "tune_epochs": 3}}).compression
    assert (c.tune_epochs, c.tune_lr) == (3, 0.1)
    bad = [({"sparsity": 0.5, "tune_epochs": 2}, "tune_epochs: codebook fine-tuning tunes the "
                                                 "shared codebooks; it needs share_bits"),
           ({"share_bits": 4, "tune_epochs": -1}, r"tune_epochs: must be 0..200, got -1"),
           ({"share_bits": 4, "tune_epochs": 201}, r"tune_epochs: must be 0..200"),
           ({"share_bits": 4, "tune_epochs": 2.5}, "tune_epochs: expected int"),
           ({"share_bits": 4, "tune_lr": 0.0}, r"tune_lr: must lie in \(0, 10\]"),
           ({"share_bits": 4, "tune_lr": float("nan")}, r"tune_lr: must lie in \(0, 10\]"),
           ({"share_bits": 4, "tune_lr": "fast"}, "tune_lr: expected float")]
    for section, message in bad:
        with pytest.raises(SpecError, match=message):
            spec_from_dict({**base, "compression": section})


def test_training_frames_are_the_frames_their_mirrors_and_seeded_blends():
    from model.codebook_tune import training_frames

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(3)]
    x = training_frames(frames, seed=1, mix=2)
    assert x.shape == (3 * 4, 6, 5, 3) and x.dtype == np.uint8
    for i, f in enumerate(frames):
        assert np.array_equal(x[i], f) and np.array_equal(x[3 + i], f[:, ::-1])
    for blend in x[6:]:   # between two of the frames (or mirrors), pixel by pixel
        lo = np.min(x[:6], axis=0).astype(int)
        hi = np.max(x[:6], axis=0).astype(int)
        assert np.all(blend >= lo) and np.all(blend <= hi)
    assert np.array_equal(training_frames(frames, seed=1, mix=2), x)
    assert not np.array_equal(training_frames(frames, seed=2, mix=2)[6:], x[6:])


def test_tuning_keeps_indices_zeros_and_grids(pair):
    plain, tuned, lines = pair
    assert any("codebooks and biases of" in line and f"{EPOCHS} epochs" in line
               for line in lines) or any("codebook fine-tuning reused" in line for line in lines)
    assert any("codebooks fine-tuned" in line for line in lines)
    moved = 0
    for name, lq in tuned.plan.layers.items():
        if lq.kind != "conv":
            continue
        before = plain.plan.layers[name]
        assert lq.w_fmt == before.w_fmt and lq.shared
        assert np.array_equal(lq.w_codebook[lq.w_idx], lq.w_q), name
        # pruned (and other zero) weights stay zero
        assert not np.any(lq.w_q[before.w_q == 0]), name
        # weights that shared a value still share one: the old value determines the new
        old, new = before.w_q.ravel(), lq.w_q.ravel()
        for v in np.unique(old):
            assert np.unique(new[old == v]).size == 1, (name, v)
        moved += int(np.count_nonzero(old != new))
    assert moved > 0, "no weight moved: the tuning did nothing"


def test_tuning_brings_the_hardware_closer_to_float_on_its_frames(pair):
    from hls.plan.prepare import calibration_frames

    plain, tuned, _ = pair
    frames = [f.pixels for f in calibration_frames(plain.spec, log=lambda *a: None)[0]]
    before, after = _kl_to_float(plain, frames), _kl_to_float(tuned, frames)
    print(f"\ntiny_shared KL(float || hardware) on {len(frames)} calibration frames: "
          f"{before:.5f} untuned, {after:.5f} after {EPOCHS} epochs of codebook tuning")
    assert after < 0.9 * before


def test_tuning_is_deterministic_and_cached(build_tmp):
    from hls.plan.prepare import calibration_frames
    from model import paths
    from model.builder import float_weights
    from model.codebook_tune import tune_codebooks
    from model.compress import compress_weights
    from model.graph import build_graph
    from model.quantize import activation_format, activation_levels, output_bits, weight_format

    spec = load_spec(SHARED)
    nodes = build_graph(spec)
    weights = float_weights(spec, nodes, paths.BUILD / "weights")
    frames = [f.pixels for f in calibration_frames(spec, log=lambda *a: None)[0]][:8]
    student, _masks = compress_weights(weights, 0.5, True, 4)
    formats = {k: weight_format(w[w != 0], 8) for k, (w, _) in student.items()}
    levels = activation_levels(nodes, weights, frames, spec)
    acts = {k: activation_format(levels[k], b) for k, b in output_bits(nodes, spec).items()}

    def run(cache, log):
        return tune_codebooks(nodes, weights, student, formats, acts, frames, 2, 0.1, 0,
                              cache=cache, log=log)

    lines: list[str] = []
    first = run(build_tmp, lines.append)
    assert "fine-tuned on 48 frames from 8 calibration frames" in lines[-1]
    again = run(None, None)            # recomputed: the same numbers
    cached = run(build_tmp, lines.append)
    assert "reused from" in lines[-1]
    for k in first:
        for a, b, c in zip(first[k], again[k], cached[k], strict=True):
            assert np.array_equal(a, b) and np.array_equal(a, c), k
    (f,) = build_tmp.glob("*.npz")
    f.write_bytes(f.read_bytes()[:64])    # damaged: recomputed
    run(build_tmp, lines.append)
    assert "fine-tuned on" in lines[-1]
