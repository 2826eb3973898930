"""Tests for model.compress: pruning, weight sharing, relative indices, Huffman, sizes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model import compress as mc
from model.paths import REPO


def _weights(seed: int = 0) -> mc.FloatWeights:
    rng = np.random.default_rng(seed)
    shapes = {"a": (3, 3, 4, 8), "b": (1, 1, 8, 16), "c": (1, 1, 16, 10)}
    scales = {"a": 1.0, "b": 0.3, "c": 0.05}  # different scales: global != per layer
    return {k: ((rng.normal(0, scales[k], s)).astype(np.float32),
                rng.normal(0, 1, s[-1]).astype(np.float32)) for k, s in shapes.items()}


# -- pruning ---------------------------------------------------------------------------

@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.63, 0.9])
def test_global_prune_exact_count_and_largest_kept(sparsity):
    w = _weights()
    pruned, masks = mc.prune(w, sparsity)
    n = sum(k.size for k, _ in w.values())
    zeros = sum(int((p == 0).sum()) for p, _ in pruned.values())
    assert abs(zeros - sparsity * n) <= 1
    assert mc.sparsity_of(masks) == pytest.approx(zeros / n)
    kept = np.concatenate([np.abs(w[k][0][m]) for k, m in masks.items()])
    gone = np.concatenate([np.abs(w[k][0][~m]) for k, m in masks.items()])
    if gone.size and kept.size:
        assert kept.min() >= gone.max()
    for k in w:  # biases untouched, kept weights unchanged
        assert np.array_equal(pruned[k][1], w[k][1])
        assert np.array_equal(pruned[k][0][masks[k]], w[k][0][masks[k]])


def test_per_layer_prune_exact_in_every_layer():
    w = _weights()
    _, masks = mc.prune(w, 0.63, per_layer=True)
    for k, m in masks.items():
        assert abs(int((~m).sum()) - 0.63 * m.size) <= 1
        assert np.abs(w[k][0][m]).min() >= np.abs(w[k][0][~m]).max()
    _, g = mc.prune(w, 0.63)
    assert g["c"].mean() < masks["c"].mean()  # the small-scale layer loses more globally


def test_prune_keeps_earlier_masks_and_apply_masks_rezeros():
    w = _weights()
    big = {k: np.abs(x) < np.abs(x).max() for k, (x, _) in w.items()}  # prune each maximum
    _, masks = mc.prune(w, 0.5, masks=big)
    for k in w:
        assert not masks[k][~big[k]].any()
    assert abs(mc.sparsity_of(masks) - 0.5) <= 1 / sum(m.size for m in masks.values())
    stepped = {k: (x + 1.0, b) for k, (x, b) in w.items()}  # a training step moves everything
    again = mc.apply_masks(stepped, masks)
    for k in w:
        assert np.all(again[k][0][~masks[k]] == 0)
        assert again[k][0].dtype == np.float32


# -- weight sharing ----------------------------------------------------------------------

def test_sharing_codebook_size_zeros_and_error():
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.1, (3, 3, 16, 32)).astype(np.float32)
    _, masks = mc.prune({"x": (w, np.zeros(32))}, 0.5)
    m = masks["x"]
    errors = []
    for bits in (2, 4, 6):
        for reserve in (False, True):
            sh = mc.share_weights(w, bits, m, reserve_zero=reserve)
            r = sh.reconstruct(m)
            assert sh.codebook.dtype == np.float32 and sh.codebook.size == 2**bits
            assert sh.idx.dtype == np.uint8
            assert np.all(r[~m] == 0)
            assert np.unique(r[m]).size <= 2**bits - int(reserve)
            if reserve:
                assert sh.zero_code == 0 and sh.codebook[0] == 0 and np.all(sh.idx[m] > 0)
        errors.append(float(np.mean((r[m] - w[m]) ** 2)))
    assert errors[0] > errors[1] > errors[2]
    assert mc.share_weights(w, 9, m).idx.dtype == np.uint16


def test_sharing_with_few_distinct_values_is_exact():
    w = np.array([0.5, -1.0, 0.5, 2.0, 0.0]).reshape(1, 1, 5, 1)
    m = w != 0
    sh = mc.share_weights(w, 2, m, reserve_zero=True)
    assert np.array_equal(sh.reconstruct(m), w.astype(np.float32))


# -- relative indices and Huffman ------------------------------------------------------

def test_relative_index_fillers_hand_made():
    mask = np.zeros(40, dtype=bool)
    mask[[0, 3, 20, 39]] = True  # runs of 0, 2, 16 and 18 zeros
    ri = mc.relative_index(mask)
    assert ri.gaps.tolist() == [0, 2, 15, 0, 15, 2]
    assert ri.filler.tolist() == [False, False, True, False, True, False]
    assert (ri.entries, ri.fillers) == (6, 2)
    edge = np.zeros(64, dtype=bool)
    edge[[15, 48]] = True  # 15 zeros fit one gap; 32 zeros need two fillers
    assert mc.relative_index(edge).gaps.tolist() == [15, 15, 15, 0]
    assert mc.relative_index(np.zeros(50, dtype=bool)).entries == 0  # trailing zeros free


def test_relative_index_round_trip():
    mask = np.random.default_rng(2).random(5000) < 0.1
    ri = mc.relative_index(mask)
    pos, got = -1, np.zeros_like(mask)
    for gap, filler in zip(ri.gaps, ri.filler, strict=True):
        pos += int(gap) + 1
        got[pos] = not filler
    assert np.array_equal(got, mask)
    assert ri.gaps.max() <= 15


def test_huffman_lengths_known_and_kraft():
    lengths = mc.huffman_code_lengths([8, 4, 2, 2])
    assert lengths.tolist() == [1, 2, 3, 3]
    assert mc.huffman_bits(np.repeat([0, 1, 2, 3], [8, 4, 2, 2]), 4) == 28 < 2 * 16
    counts = np.random.default_rng(3).integers(0, 1000, 200)
    lengths = mc.huffman_code_lengths(counts)
    assert np.sum(2.0 ** -lengths[counts > 0]) == pytest.approx(1.0)
    assert np.all(lengths[counts == 0] == 0)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    assert entropy <= float((p * lengths[counts > 0]).sum()) < entropy + 1
    assert mc.huffman_code_lengths([0, 5, 0]).tolist() == [0, 1, 0]


# -- the size account ------------------------------------------------------------------

def test_size_account_two_layers_by_hand():
    wa = np.array([[1.0, -2.0], [3.0, -4.0]], np.float32).reshape(1, 1, 2, 2)
    wb = np.zeros((1, 1, 20, 1), np.float32)
    wb[0, 0, 0, 0], wb[0, 0, 19, 0] = 5.0, 7.0
    weights = {"a": (wa, np.zeros(2, np.float32)), "b": (wb, np.zeros(1, np.float32))}
    masks = {k: w != 0 for k, (w, _) in weights.items()}
    shared = {2: mc.share_all(weights, masks, 2)}
    acc = mc.size_account(weights, masks, shared)
    # a: 4 weights, all kept, no filler; b: 20 weights, 2 kept, 18 zeros -> one filler.
    assert [(x.kept, x.fillers) for x in acc] == [(4, 0), (2, 1)]
    want = {
        "dense32": (4 * 32 + 2 * 32, 20 * 32 + 32),
        "dense8": (4 * 8 + 2 * 32, 20 * 8 + 32),
        "sparse32": (4 * 36 + 64, 3 * 36 + 32),
        "sparse8": (4 * 12 + 64, 3 * 12 + 32),
        "shared2": (4 * 6 + 4 * 32 + 64, 3 * 6 + 4 * 32 + 32),
        # a: k-means centres -4, -0.5, 3 -> codes counted 1, 2, 1 -> 6 bits; gaps all 0 ->
        # 4 bits; b: codes filler, 5, 7 -> 5 bits; gaps 0, 15, 2 -> 5 bits; tables
        # (4 + 16) * 8 bits; codebook 4 * 32; biases.
        "huffman2": (6 + 4 + 160 + 128 + 64, 5 + 5 + 160 + 128 + 32),
    }
    for scheme, (a, b) in want.items():
        assert (acc[0].bits[scheme], acc[1].bits[scheme]) == (a, b), scheme
        assert mc.total_bits(acc, scheme) == a + b
    assert sorted(shared[2]["a"].codebook.tolist()) == [-4.0, -0.5, 0.0, 3.0]


def test_fillers_need_a_zero_code():
    wb = np.zeros((1, 1, 20, 1), np.float32)
    wb[0, 0, 19, 0] = 1.0
    m = wb != 0
    with pytest.raises(ValueError, match="filler entries need a zero codebook entry"):
        mc.layer_account("b", wb, np.zeros(1), m, {2: mc.share_weights(wb, 2, m)})


# -- the command line --------------------------------------------------------------------

@pytest.mark.slow  # CI time: runs in make test-all
def test_cli_prints_compressed_line(weights_cache_dir):
    sqz = Path(sys.executable).parent / "sqz"
    cmd = [str(sqz)] if sqz.exists() else [sys.executable, "-m", "hls.cli"]
    # one hardware row (4-bit) in the default suite: each row prepares the shared v1.1
    res = subprocess.run([*cmd, "compress", "--frames", "2", "--hw-bits", "4"], cwd=REPO,
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    last = res.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"compressed: (\d+\.\d\d) MB \(from (\d+\.\d) MB at 32-bit\) "
                     r"\[recipe: 63% pruned by magnitude, one global threshold, no retraining; "
                     r"8-bit k-means indices and 4-bit relative indices, both Huffman-coded; "
                     r"32-bit codebooks and biases; with 6-bit indices (\d+\.\d\d) MB, "
                     r"4-bit indices (\d+\.\d\d) MB\]", last)
    assert m, last
    assert m.group(2) == "4.9" and 0.1 < float(m.group(1)) < 1.0
    assert float(m.group(1)) > float(m.group(3)) > float(m.group(4))
    assert "WITHOUT retraining" in res.stdout
    # the per-layer sharing error table: every conv, conv10 with its 512,000 weights
    assert "== weight sharing error per layer" in res.stdout
    assert re.search(r"\n  conv10 +512,000 +\d+ +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d\n",
                     res.stdout), res.stdout
    # the hardware rows: index ROMs take fewer BRAM18 than 8-bit weights at 6 and 4 bits
    rows = re.findall(r"  (\d)-bit indices: weight ROMs ([\d,]+) bytes, (\d+) BRAM18 \((\d+) "
                      r"with 8-bit weights: (\d+) saved\)", res.stdout)
    assert [r[0] for r in rows] == ["4"], res.stdout
    for bits, rom, bram, dense, saved in rows:
        assert int(rom.replace(",", "")) == 1_231_552 * int(bits) // 8
        assert int(bram) + int(saved) == int(dense) and int(saved) > 0


def test_compress_weights_refuses_to_empty_a_layer():
    w = {"small": (np.full((1, 1, 2, 2), 1e-3, np.float32), np.zeros(2, np.float32)),
         "big": (np.arange(1, 9, dtype=np.float32).reshape(1, 1, 2, 4), np.zeros(4, np.float32))}
    with pytest.raises(ValueError, match="global pruning to 40% removes every weight of "
                                         "small.*prune per layer instead"):
        mc.compress_weights(w, 0.4)
    _, masks = mc.compress_weights(w, 0.4, per_layer=True)
    assert masks["small"].sum() == 2 and masks["big"].sum() == 5


def test_sharing_errors_lossless_and_lossy_kernels():
    """A kernel whose 8-bit integers take 20 distinct non-zero values loses nothing to 5-bit
    indices (31 non-zero entries): ratio exactly 1; 2-bit indices lose, and the table says
    how many distinct integers there are."""
    from model.quantize import weight_format

    rng = np.random.default_rng(3)
    levels = np.array(sorted(rng.choice(np.arange(-120, 121), 20, replace=False)))
    levels = levels[levels != 0]
    ints = rng.choice(levels, size=(3, 3, 8, 16))
    ints.flat[0], ints.flat[1] = 127, -127   # pin the grid: max |w| = 127/128 -> frac 7
    levels = np.union1d(levels, [-127, 127])
    w = (ints + rng.uniform(-0.3, 0.3, ints.shape)) / 128.0
    w = w.astype(np.float32)
    assert weight_format(w, 8).frac == 7
    (row,) = mc.sharing_errors({"k": (w, np.zeros(16, np.float32))}, bits=(2, 5, 6))
    assert (row.name, row.weights, row.distinct) == ("k", w.size, levels.size)
    assert row.ratio[5] == 1.0 and row.ratio[6] == 1.0
    assert row.ratio[2] > 10
    last = mc.format_sharing_errors([row]).splitlines()[-1]
    assert last.split() == ["k", f"{w.size:,d}", str(levels.size), f"{row.ratio[2]:.2f}",
                            "1.00", "1.00"]
