"""Weight sharing carried to hardware: the spec section, the plan's codebooks, the hls4ml
project with index ROMs (C simulation and the project's g++ testbench), the BRAM account.

The RTL side (sqz_mvu SHARE_BITS, the generated top on configs/tiny_shared.yaml) is
checked in sim/test_sqz_mvu.py, sim/test_network.py and sim/test_rtl_synth.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from hls.hls4ml_backend.csim import build_project, run_csim
from hls.hls4ml_backend.sharing import codebook_indices
from hls.hls4ml_backend.testbench import compile_and_run_testbench, parse_summary, run_testbench
from hls.plan.prepare import prepare
from model.fixed import FixedFormat
from model.paths import REPO
from model.quantize import LayerQuant, attach_codebook
from model.spec import SpecError, load_spec, spec_from_dict

SHARED = REPO / "configs" / "tiny_shared.yaml"
TINY = {"name": "t", "variant": "custom", "weights": "random", "classes": 10,
        "input": {"height": 35, "width": 35}, "n_fire": 2, "conv1": {"filters": 8},
        "pool_after": ["conv1"]}


def test_compression_section_is_validated():
    assert not spec_from_dict(TINY).compression.active
    c = spec_from_dict({**TINY, "compression": {"sparsity": 0.6, "share_bits": 4}}).compression
    assert (c.sparsity, c.per_layer, c.share_bits, c.active) == (0.6, False, 4, True)
    assert c.codebook_weighting == "none"
    c = spec_from_dict({**TINY, "compression": {"share_bits": 6,
                                                "codebook_weighting": "hessian"}}).compression
    assert c.codebook_weighting == "hessian"
    bad = [({"share_bits": 8}, "share_bits: 0 .no sharing. or 2..7"),
           ({"share_bits": 1}, "share_bits"),
           ({"sparsity": 1.0}, r"sparsity: must lie in \[0, 1\)"),
           ({"sparsity": -0.1}, "sparsity"),
           ({"share_bits": 4.0}, "share_bits: expected int"),
           ({"bits": 4}, "compression: unknown key.*'bits'.*allowed: codebook_weighting, "
                         "layer_bits, per_layer, share_bits, sparsity, tune_epochs, tune_lr"),
           ({"share_bits": 4, "codebook_weighting": "fisher"},
            "codebook_weighting: 'fisher' is not allowed; allowed: none, hessian"),
           ({"share_bits": 4, "codebook_weighting": True}, "codebook_weighting: expected str"),
           ({"sparsity": 0.5, "codebook_weighting": "hessian"},
            "codebook_weighting: 'hessian' weights the shared codebooks; it needs share_bits")]
    for section, message in bad:
        with pytest.raises(SpecError, match=message):
            spec_from_dict({**TINY, "compression": section})


def test_layer_bits_section_is_validated():
    """compression.layer_bits: per-layer exceptions to share_bits (0 = not shared)."""
    c = spec_from_dict({**TINY, "compression": {
        "share_bits": 6, "layer_bits": {"fire*_expand1x1": 0, "conv10": 4}}}).compression
    assert c.layer_bits == (("fire*_expand1x1", 0), ("conv10", 4))
    assert c.describe_bits() == "6-bit shared (fire*_expand1x1 unshared 8-bit, conv10 4-bit shared)"
    convs = ["conv1", "fire2_squeeze1x1", "fire2_expand1x1", "fire2_expand3x3",
             "fire3_expand1x1", "conv10"]
    assert c.bits_by_layer(convs) == {"conv1": 6, "fire2_squeeze1x1": 6,
                                      "fire2_expand1x1": 0, "fire2_expand3x3": 6,
                                      "fire3_expand1x1": 0, "conv10": 4}
    assert spec_from_dict({**TINY, "compression": {"share_bits": 5}}).compression \
        .bits_by_layer(convs) == dict.fromkeys(convs, 5)
    with pytest.raises(SpecError, match=r"'fire9\*' names no conv layer; the convs are conv1, "):
        spec_from_dict({**TINY, "compression": {"share_bits": 6, "layer_bits": {
            "fire9*": 0}}}).compression.bits_by_layer(convs)
    with pytest.raises(SpecError, match="fire2_squeeze1x1 matches both 'fire\\*' and '\\*1x1'"):
        spec_from_dict({**TINY, "compression": {"share_bits": 6, "layer_bits": {
            "fire*": 0, "*1x1": 4}}}).compression.bits_by_layer(convs)
    bad = [({"share_bits": 6, "layer_bits": {"conv1": 8}},
            r"layer_bits.conv1: 0 \(not shared\) or 2..7 index bits, got 8"),
           ({"share_bits": 6, "layer_bits": {"conv1": 1}}, "got 1"),
           ({"share_bits": 6, "layer_bits": {"conv1": True}}, "got True"),
           ({"share_bits": 6, "layer_bits": {"conv1": "0"}}, "got '0'"),
           ({"share_bits": 6, "layer_bits": {"conv1; rm -rf /": 0}},
            "'conv1; rm -rf /' is not a conv-name pattern"),
           ({"share_bits": 6, "layer_bits": {"../x": 0}}, "is not a conv-name pattern"),
           ({"share_bits": 6, "layer_bits": ["conv1"]}, "expected a mapping of conv-name"),
           ({"layer_bits": {"conv1": 0}}, "layer_bits: per-layer exceptions to share_bits; "
                                          "it needs share_bits")]
    for section, message in bad:
        with pytest.raises(SpecError, match=message):
            spec_from_dict({**TINY, "compression": section})


def test_index_bits_per_weight_of_a_mixed_spec():
    c = spec_from_dict({**TINY, "compression": {
        "share_bits": 6, "layer_bits": {"*_expand1x1": 0, "conv10": 4}}}).compression
    sizes = {"conv1": 100, "f2_expand1x1": 50, "f2_expand3x3": 250, "conv10": 600}
    assert c.index_bits_per_weight(sizes) == (100 * 6 + 50 * 8 + 250 * 6 + 600 * 4) / 1000
    assert spec_from_dict(TINY).compression.index_bits_per_weight(sizes) == 8
    # the shipped shared v1.1: fire sizes of PAPER.md's v1.1 (input, squeeze, expand each)
    fires = [(64, 16, 64), (128, 16, 64), (128, 32, 128), (256, 32, 128), (256, 48, 192),
             (384, 48, 192), (384, 64, 256), (512, 64, 256)]
    sizes = {"conv1": 3 * 3 * 3 * 64, "conv10": 512 * 1000}
    for n, (cin, sq, ex) in enumerate(fires, start=2):
        sizes |= {f"fire{n}_squeeze1x1": cin * sq, f"fire{n}_expand1x1": sq * ex,
                  f"fire{n}_expand3x3": 9 * sq * ex}
    shipped = load_spec(REPO / "configs" / "squeezenet_v1_1_shared.yaml").compression
    unshared = sum(sizes[f"fire{n}_expand1x1"] for n in range(2, 10))
    want = (8 * unshared + 5 * sizes["fire8_expand3x3"]
            + 6 * (sum(sizes.values()) - unshared - sizes["fire8_expand3x3"])) / sum(sizes.values())
    assert shipped.index_bits_per_weight(sizes) == pytest.approx(want)
    assert round(want, 2) == 5.98   # the figure README and the config's comment state


def test_attach_codebook_reproduces_weights_and_refuses_too_many_values():
    w = np.array([[-3, 0, 5], [5, 5, -3]])
    lq = LayerQuant("c", "conv", FixedFormat(8, 0, signed=False), w_q=w)
    attach_codebook(lq, 2)
    assert lq.share_bits == 2 and lq.w_codebook.tolist() == [-3, 0, 5, 0]
    assert np.array_equal(lq.w_codebook[lq.w_idx], w)
    lq = LayerQuant("c", "conv", FixedFormat(8, 0, signed=False), w_q=np.arange(5))
    with pytest.raises(ValueError, match="c: 5 distinct 8-bit weights do not fit a 2-bit"):
        attach_codebook(lq, 2)


def test_codebook_indices_first_match_and_unknown_values():
    cb = np.array([-7, 0, 9, 0])
    assert codebook_indices(np.array([[9, 0], [-7, 9]]), cb).tolist() == [[2, 1], [0, 2]]
    with pytest.raises(ValueError, match=r"weights \[4\] are not in the codebook"):
        codebook_indices(np.array([4, 9]), cb)


def test_optimal_integer_clusters_match_brute_force():
    import itertools

    from model.compress import optimal_integer_clusters

    rng = np.random.default_rng(0)
    for _ in range(150):
        n = int(rng.integers(2, 9))
        v = np.sort(rng.choice(np.arange(-20, 21), n, replace=False))
        c = rng.integers(1, 50, n)
        k = int(rng.integers(1, n + 1))
        centres, labels = optimal_integer_clusters(v, c, k)
        assert len(centres) <= k and np.all(np.diff(centres) > 0)
        assert np.all(np.diff(labels) >= 0)          # contiguous runs
        cost = int((c * (v - centres[labels]) ** 2).sum())
        best = min(
            sum(int((c[a:e] * (v[a:e] - np.rint((c[a:e] * v[a:e]).sum() / c[a:e].sum()))
                     ** 2).sum()) for a, e in zip((0, *cuts), (*cuts, n), strict=True))
            for cuts in itertools.combinations(range(1, n), k - 1))
        assert cost == best, (v, c, k)
    # few values: kept exactly
    assert optimal_integer_clusters(np.array([-3, 2]), np.array([1, 1]), 5)[0].tolist() == [-3, 2]


def test_share_on_grid_codebook_is_on_the_grid_with_zero_for_pruned():
    from model.compress import share_on_grid
    from model.quantize import weight_format

    rng = np.random.default_rng(1)
    w = (rng.standard_normal((3, 3, 8, 16)) * 0.1).astype(np.float32)
    mask = rng.random(w.shape) > 0.5
    sh = share_on_grid(w, 4, mask)
    fmt = weight_format(w[mask], 8)
    codes = sh.codebook / fmt.lsb
    assert np.array_equal(codes, np.rint(codes)) and sh.codebook[0] == 0
    assert sh.codebook.size == 16 and np.all(sh.idx[~mask] == 0)
    shared_w = sh.reconstruct(mask)
    assert np.unique(shared_w).size <= 16
    # quantizing the shared kernel changes nothing: the plan sees exactly these weights
    assert np.array_equal(fmt.quantize(shared_w) * fmt.lsb, shared_w)
    # close to the 8-bit weights: within the spread of one cluster
    q = fmt.quantize(w) * mask
    assert np.abs(fmt.quantize(shared_w) - q).mean() < 2.0


def test_share_on_grid_importance_weights_the_clustering():
    from model.compress import share_on_grid
    from model.quantize import weight_format

    rng = np.random.default_rng(2)
    w = (rng.standard_normal((3, 3, 8, 16)) * 0.1).astype(np.float32)
    mask = rng.random(w.shape) > 0.3
    plain = share_on_grid(w, 3, mask)
    # equal importances are plain counting
    same = share_on_grid(w, 3, mask, importance=np.full((3, 3, 8, 1), 2.5))
    assert np.array_equal(plain.codebook, same.codebook)
    assert np.array_equal(plain.idx, same.idx)
    # input channel 0 carries nearly all the input energy: its weights get closer centres
    imp = np.full((3, 3, 8, 1), 1e-3)
    imp[:, :, 0] = 1.0
    heavy = share_on_grid(w, 3, mask, importance=imp)
    fmt = weight_format(w[mask], 8)
    codes = heavy.codebook / fmt.lsb
    assert np.array_equal(codes, np.rint(codes)) and heavy.codebook[0] == 0   # on the grid
    assert np.all(heavy.idx[~mask] == 0)
    q = fmt.to_real(fmt.quantize(w)) * mask

    def err(sh, sel):
        return float(((sh.reconstruct(mask) - q)[sel] ** 2).sum())

    ch0 = np.zeros(w.shape, bool)
    ch0[:, :, 0] = True
    assert err(heavy, ch0) < err(plain, ch0)
    weighted = (imp * (heavy.reconstruct(mask) - q) ** 2).sum()
    assert weighted < (imp * (plain.reconstruct(mask) - q) ** 2).sum()
    with pytest.raises(Exception, match="non-negative"):
        share_on_grid(w, 3, mask, importance=-imp)


def test_input_hessian_diagonals_are_the_second_moments_of_the_im2col_rows():
    from model.compress import input_hessian_diagonals
    from model.golden import im2col
    from model.graph import Node

    node = Node("c", "conv", ("frame",), (5, 5, 2), (5, 5, 3), kernel=3, pad=1, relu=True)
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    b = np.zeros(2, np.float32)
    frames = [rng.integers(0, 255, (5, 5, 3), dtype=np.uint8) for _ in range(2)]
    h = input_hessian_diagonals([node], {"c": (w, b)}, frames)["c"]
    cols = np.concatenate([im2col(f.astype(np.float32), 3, 1, 1)[0] for f in frames])
    assert h.shape == (3, 3, 3, 1)
    assert np.allclose(h.ravel(), (cols.astype(np.float64) ** 2).mean(axis=0))
    assert h[0, 0].sum() < h[1, 1].sum()   # the corner tap sees the zero padding


def test_hessian_weighted_codebooks_stay_on_the_grid():
    """A shared spec with Hessian-weighted codebooks prepares (``calibrate`` asserts every
    kernel on its grid) and its kernels are their codebooks."""
    import dataclasses

    spec = load_spec(SHARED)
    spec = dataclasses.replace(spec, compression=dataclasses.replace(
        spec.compression, codebook_weighting="hessian"))
    lines = []
    prep = prepare(spec, log=lines.append, demo=False)
    assert any("input Hessian diagonals" in line for line in lines)
    for name, lq in prep.plan.layers.items():
        if lq.kind == "conv":
            assert lq.shared and lq.w_codebook.size == 16
            assert np.array_equal(lq.w_codebook[lq.w_idx], lq.w_q), name


def test_bias_correction_cancels_the_mean_shift():
    """One 1x1 conv, inputs with a non-zero mean: the corrected bias restores the mean
    output of the uncompressed layer."""
    from model.compress import correct_biases
    from model.graph import Node
    from model.quantize import float_forward

    node = Node("c", "conv", ("frame",), (4, 4, 2), (4, 4, 3), kernel=1, relu=True)
    w = np.array([[[[0.5, -0.2], [0.3, 0.1], [-0.4, 0.25]]]], dtype=np.float32)
    b = np.array([0.1, 0.2], dtype=np.float32)
    shifted = {"c": (w + 0.05, b)}
    frames = [np.full((4, 4, 3), 10, dtype=np.uint8)]
    fixed = correct_biases([node], {"c": (w, b)}, shifted, frames)
    assert np.allclose(fixed["c"][1], b - 0.05 * 3 * 10)
    ref = float_forward([node], {"c": (w, b)}, frames[0])["c"]
    got = float_forward([node], fixed, frames[0])["c"]
    assert np.allclose(ref, got, atol=1e-5)


@pytest.fixture(scope="module")
def shared():
    return prepare(load_spec(SHARED), log=lambda *a: None)


def test_shared_plan_codebooks(shared):
    convs = [n for n in shared.nodes if n.kind == "conv"]
    for n in convs:
        lq = shared.plan.layers[n.name]
        assert lq.shared and lq.share_bits == 4 and lq.w_codebook.size == 16
        assert np.unique(lq.w_q).size <= 16
        assert np.array_equal(lq.w_codebook[lq.w_idx], lq.w_q)
        # pruned per layer to half zeros (rounding to 8 bits may zero a few more)
        assert 0.5 <= (lq.w_q == 0).mean() < 0.6, n.name
        assert np.unique(lq.w_q[lq.w_q != 0]).size >= 2, n.name
    # the bit-exact checks mean something only if no pruned layer is dead or constant
    from model.quantize import run_golden

    outs = [run_golden(shared.nodes, shared.plan, f.pixels) for f in shared.frames]
    for n in shared.nodes:
        for o in outs:
            assert np.count_nonzero(o[n.name]) > 0, f"{n.name} is all zeros on a photo"
    assert len({tuple(o["gap"]) for o in outs}) == len(outs), "photos give equal logits"


def test_memory_report_counts_indices_and_codebooks(shared):
    mem = shared.memory
    convs = {n.name: n for n in shared.nodes if n.kind == "conv"}
    w_rows = {r.layer: r for r in mem.rows if r.kind == "weights"}
    cb_rows = {r.layer: r for r in mem.rows if r.kind == "codebook"}
    assert set(w_rows) == set(cb_rows) == set(convs)
    for name, n in convs.items():
        rf = shared.folding[name].reuse_factor
        assert (w_rows[name].depth, w_rows[name].width) == (rf, n.weight_count // rf * 4)
        assert cb_rows[name].bits == 16 * 8 and cb_rows[name].where == "registers"
    assert mem.weight_bytes == sum(n.weight_count for n in convs.values()) // 2
    assert mem.dense_bram18 is not None and mem.dense_bram18 >= mem.bram18
    assert "weight sharing:" in mem.format(per_layer=False)


@pytest.fixture(scope="module")
def shared_project(shared, tmp_path_factory):
    out = tmp_path_factory.mktemp("hls") / "tiny_shared_vitis"
    _, hls_model = build_project(shared, backend="Vitis", out_dir=out, log=lambda *a: None)
    return out, hls_model


@pytest.mark.csim
def test_shared_project_stores_indices_and_codebooks(shared, shared_project):
    out, hls_model = shared_project
    convs = [n.name for n in shared.nodes if n.kind == "conv"]
    fw = out / "firmware"
    params = (fw / "parameters.h").read_text()
    products = re.findall(r"nnet::product::sqz_codebook<(codebook\d+_t), (cb\d+)>::mult", params)
    assert len(products) == len(convs)
    assert '#include "nnet_utils/nnet_sqz_shared.h"' in params
    assert (fw / "nnet_utils" / "nnet_sqz_shared.h").is_file()
    defines = (fw / "defines.h").read_text()
    for name in convs:
        layer = hls_model.graph[name]
        w, cb = layer.weights["weight"], layer.weights["codebook"]
        assert re.search(rf"typedef ap_uint<4> {w.type.name};", defines)
        idx = np.array((fw / "weights" / f"{w.name}.txt").read_text().split(", "), dtype=int)
        assert idx.min() >= 0 and idx.max() <= 15 and idx.size == w.data_length
        lq = shared.plan.layers[name]
        values = np.array((fw / "weights" / f"{cb.name}.txt").read_text().split(", "),
                          dtype=float)
        assert np.array_equal(lq.w_fmt.from_real_exact(values), lq.w_codebook)


@pytest.mark.csim
def test_shared_csim_every_layer_bit_exact(shared, shared_project):
    _, hls_model = shared_project
    res = run_csim(shared, hls_model)
    print(f"\ntiny_shared csim: {res.frames} frames, {res.compared} outputs compared, "
          f"{res.mismatches} mismatches")
    assert res.frames == len(shared.frames) >= 3
    assert res.compared > 0 and res.mismatches == 0, res.first_mismatch


@pytest.mark.csim
@pytest.mark.slow  # CI time: runs in make test-all
def test_shared_gxx_testbench_and_a_corrupted_codebook(shared, shared_project):
    """The project's own testbench is bit-exact; one codebook entry of conv10 moved by one
    LSB (read at run time from the weights directory) makes it fail."""
    out, hls_model = shared_project
    rc, stdout = compile_and_run_testbench(out, max_frames=3)
    print("\n" + stdout.strip().splitlines()[-1])
    assert parse_summary(stdout) == (3, 30, 0) and rc == 0, stdout
    cb = out / "firmware" / "weights" / f"{hls_model.graph['conv10'].weights['codebook'].name}.txt"
    original = cb.read_text()
    lq = shared.plan.layers["conv10"]
    used = np.bincount(lq.w_idx.ravel(), minlength=16)
    entry = int(np.argmax(used * (lq.w_codebook != 0)))  # the most used non-zero weight
    values = original.split(", ")
    values[entry] = repr(float(values[entry]) + lq.w_fmt.lsb)
    try:
        cb.write_text(", ".join(values))
        rc, stdout = run_testbench(out, max_frames=3)
    finally:
        cb.write_text(original)
    frames, compared, mismatches = parse_summary(stdout)
    assert (frames, compared) == (3, 30) and mismatches > 0 and rc != 0, stdout


# The Vivado-backend variant runs in make test-all (CI time); the Vitis one in the
# default suite.
@pytest.mark.slow
@pytest.mark.csim
def test_shared_csim_vivado_backend(shared, tmp_path):
    """The same rewrite works with hls4ml's Vivado backend templates."""
    _, hls_model = build_project(shared, backend="Vivado", out_dir=tmp_path / "vivado",
                                 log=lambda *a: None)
    res = run_csim(shared, hls_model, shared.frames[:2])
    assert res.frames == 2 and res.compared > 0 and res.mismatches == 0, res.first_mismatch
    params = (tmp_path / "vivado" / "firmware" / "parameters.h").read_text()
    convs = [n for n in shared.nodes if n.kind == "conv"]
    assert params.count("nnet::product::sqz_codebook<") == len(convs)


@pytest.fixture(scope="module")
def mixed():
    """tiny_shared with per-layer index widths: the 1x1 expands unshared, conv10 3-bit."""
    from dataclasses import replace

    spec = load_spec(SHARED)
    spec = replace(spec, name="tiny_mixed", compression=replace(
        spec.compression, layer_bits=(("fire*_expand1x1", 0), ("conv10", 3))))
    return prepare(spec, log=lambda *a: None)


def test_mixed_plan_shares_only_the_layers_asked(mixed):
    from dataclasses import replace

    spec = load_spec(SHARED)
    pruned_only = prepare(replace(spec, compression=replace(spec.compression, share_bits=0)),
                          log=lambda *a: None, demo=False)
    convs = [n.name for n in mixed.nodes if n.kind == "conv"]
    unshared = [c for c in convs if c.endswith("_expand1x1")]
    assert len(unshared) == 4
    for name in convs:
        lq = mixed.plan.layers[name]
        if name in unshared:
            assert not lq.shared and lq.w_codebook is None
            # pruned, then rounded to the nearest 8-bit value, not clustered: the weights
            # of the same spec without sharing
            assert np.array_equal(lq.w_q, pruned_only.plan.layers[name].w_q), name
        else:
            bits = 3 if name == "conv10" else 4
            assert lq.shared and lq.share_bits == bits and lq.w_codebook.size == 2**bits
            assert np.array_equal(lq.w_codebook[lq.w_idx], lq.w_q)
    rows = {(r.layer, r.kind) for r in mixed.memory.rows}
    assert all((c, "codebook") in rows for c in convs if c not in unshared)
    assert not any((c, "codebook") in rows for c in unshared)


@pytest.mark.csim
@pytest.mark.slow  # CI time: runs in make test-all (the mixed RTL check runs by default)
def test_mixed_csim_every_layer_bit_exact(mixed, tmp_path):
    out = tmp_path / "tiny_mixed_vitis"
    _, hls_model = build_project(mixed, backend="Vitis", out_dir=out, log=lambda *a: None)
    params = (out / "firmware" / "parameters.h").read_text()
    convs = [n for n in mixed.nodes if n.kind == "conv"]
    assert params.count("nnet::product::sqz_codebook<") == len(convs) - 4
    res = run_csim(mixed, hls_model, mixed.frames[:4])
    print(f"\ntiny_mixed csim: {res.frames} frames, {res.compared} outputs compared, "
          f"{res.mismatches} mismatches")
    assert res.frames == 4
    assert res.compared > 0 and res.mismatches == 0, res.first_mismatch
