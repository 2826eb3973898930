"""Folding, FIFO depths, memory budget, mean folding and the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from hls.plan.folding import (
    choose_folding,
    fold_options,
    hls_reuse_factor,
    lanes_compatible,
    valid_reuse_factors,
)
from hls.plan.memory import bram18_blocks, memory_report
from hls.plan.parts import part_info
from hls.plan.prepare import prepare
from hls.plan.streams import fifo_plan
from model.builder import CAFFE_BGR_MEAN, float_weights, fold_mean_into_bias
from model.errors import DoesNotFitError
from model.graph import build_graph
from model.paths import REPO
from model.quantize import float_forward
from model.spec import load_spec, spec_from_dict

SQZ = [sys.executable, "-m", "hls.cli"]


@pytest.mark.parametrize("n_in, n_out", [(27, 64), (64, 16), (144, 64), (512, 1000), (9, 7)])
def test_valid_reuse_factors_match_hls4ml(n_in, n_out):
    from hls4ml.backends import get_backend

    assert valid_reuse_factors(n_in, n_out) == get_backend("Vivado").get_valid_reuse_factors(
        n_in, n_out)


@pytest.mark.parametrize("target", [1_500_000, 300_000, 100_000])
def test_folding_meets_the_target_cheapest_first(target):
    nodes = build_graph(spec_from_dict({"weights": "random"}))
    fold = choose_folding(nodes, target)
    bottleneck = max(f.cycles for f in fold.values())
    if bottleneck > target:  # unreachable: the slowest block is as fast as it can be
        slow = max(fold.values(), key=lambda f: f.cycles)
        assert slow.cycles == min(g.cycles for g in fold_options(nodes)[slow.name])
    for n in nodes:
        if n.kind != "conv":
            continue
        f = fold[n.name]
        assert f.multipliers * f.reuse_factor == n.n_in * n.out_shape[2]
        assert n.out_shape[2] % f.pe == 0 and n.in_shape[2] % f.simd == 0
        assert f.dsps == (f.multipliers // 2 if f.pe % 2 == 0 else f.multipliers)
        # no cheaper folding of this block meets the same bottleneck
        meets = [g for g in fold_options(nodes)[n.name] if g.cycles <= max(target, bottleneck)]
        assert f.dsps == min(g.dsps for g in meets)
        # hls4ml gets the valid reuse factor nearest to the RTL's
        rf = hls_reuse_factor(f)
        valid = valid_reuse_factors(n.n_in, n.out_shape[2])
        assert rf in valid
        assert abs(rf - f.reuse_factor) == min(abs(v - f.reuse_factor) for v in valid)
    assert lanes_compatible(nodes, fold)


def test_fifo_depth_covers_the_3x3_branch_latency():
    nodes = build_graph(spec_from_dict({"weights": "random"}))
    plan = fifo_plan(nodes, choose_folding(nodes, 300_000))
    # fire2 at 56x56: the 3x3 branch emits its first pixel after 2 padded rows (58 px) + 3 px,
    # the 1x1 branch after 1 px; the difference plus 10 pixels of slack is buffered on the
    # 1x1 side, after the fork of the squeeze output.
    assert plan.branch("fire2_squeeze1x1", "fire2_expand1x1").pixels == 2 * 58 + 3 - 1 + 10
    assert plan.branch("fire2_squeeze1x1", "fire2_expand3x3") is None
    assert plan.branch("fire9_squeeze1x1", "fire9_expand1x1").pixels == 2 * 16 + 3 - 1 + 10
    # fire2_expand3x3 emits all 64 channels in one beat: at least four beats = four pixels
    assert plan.output("fire2_expand3x3").pixels == 4


def test_bram18_packing():
    assert bram18_blocks(512, 36) == 1
    assert bram18_blocks(513, 36) == 2
    assert bram18_blocks(2048, 9) == 1
    assert bram18_blocks(16, 256) == 8          # wide and shallow: width-bound
    assert bram18_blocks(4608, 256) == 72       # fire8_expand3x3 at RF 4608
    with pytest.raises(ValueError, match="unknown FPGA part 'xc9999'"):
        part_info("xc9999")


def test_v11_memory_budget_and_refusal_on_a_small_part():
    spec = spec_from_dict({"weights": "random"})
    nodes = build_graph(spec)
    from model.builder import random_weights
    from model.quantize import calibrate

    weights = random_weights(nodes, 0)
    frame = np.random.default_rng(0).integers(0, 256, (227, 227, 3), dtype=np.uint8)
    plan = calibrate(nodes, weights, [frame], spec)
    fold = choose_folding(nodes, 1_500_000)
    rep = memory_report(nodes, plan, fold, fifo_plan(nodes, fold), "xczu9eg-ffvb1156-2-e")
    assert rep.weight_bytes == 1_231_552            # 8-bit weights of v1.1
    assert rep.fits() == []
    small = memory_report(nodes, plan, fold, fifo_plan(nodes, fold), "xc7z020clg400-1")
    problems = small.fits()
    assert problems and "BRAM: needs" in problems[0] and "xc7z020 has 280" in problems[0]


def test_prepare_refuses_a_network_that_does_not_fit():
    """v1.1's 1.2 MB of weights cannot live in a Zynq-7020's 280 BRAM18 (630 KB): refused
    from the graph before the weights are even made (1,231,552 bytes x 8 bits against
    280 x 18 Kib)."""
    spec = spec_from_dict({"weights": "random", "target": {"part": "xc7z020clg400-1"}})
    with pytest.raises(DoesNotFitError, match=r"its weights alone need 9,852,416 bits, the "
                                              r"part's block RAM holds 5,160,960 \(280 BRAM18"):
        prepare(spec)


def test_mean_fold_gives_the_same_logits(weights_cache_dir):
    """Raw pixels + folded bias == (pixels - mean) + original bias, for the real weights."""
    spec = load_spec(REPO / "configs" / "squeezenet_v1_1.yaml")
    nodes = build_graph(spec)
    folded = float_weights(spec, nodes, weights_cache_dir)
    from model.weights import fetch_squeezenet_v11

    raw = fetch_squeezenet_v11(weights_cache_dir)
    original = dict(folded)
    original["conv1"] = (raw["conv1"][0], raw["conv1"][1])
    frame = np.random.default_rng(3).integers(0, 256, (227, 227, 3)).astype(np.float32)
    a = float_forward(nodes, folded, frame)["gap"]
    b = float_forward(nodes, original, frame - CAFFE_BGR_MEAN.astype(np.float32))["gap"]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert np.argmax(a) == np.argmax(b)
    w, bias = raw["conv1"]
    assert np.allclose(fold_mean_into_bias(w, bias, np.zeros(3)), bias)


def run_cli(*args, env=None):
    return subprocess.run([*SQZ, *args], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_info_prints_the_contract_lines():
    r = run_cli("info", "--config", "configs/squeezenet_v1_1.yaml")
    assert r.returncode == 0, r.stderr
    assert "parameters: 1235496" in r.stdout.splitlines()
    assert "macs: 387747520" in r.stdout.splitlines()
    assert "weight_bytes: 1231552" in r.stdout.splitlines()
    r0 = run_cli("info", "--config", "configs/squeezenet_v1_0.yaml")
    assert "parameters: 1248424" in r0.stdout.splitlines()


def test_cli_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("variant: v1.1\nsqueeze: 3\n")
    r = run_cli("info", "--config", str(bad))
    assert r.returncode == 2
    assert "unknown key(s) 'squeeze'" in r.stderr


def test_synth_without_vendor_tool_fails_at_once_naming_the_tools(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    r = run_cli("synth", "--config", "configs/tiny.yaml", env=env)
    assert r.returncode != 0
    for tool in ("vitis_hls", "vitis-run", "vivado_hls"):
        assert tool in r.stderr


def test_folding_spends_the_dsp_budget_on_the_bottleneck():
    from hls.plan.folding import fold_to_budget

    nodes = build_graph(spec_from_dict({"weights": "random"}))
    folding = fold_to_budget(nodes, 2520)
    bottleneck = max(f.cycles for f in folding.values())
    assert sum(f.dsps for f in folding.values()) <= 2520
    # conv1 (3 channels: one kernel tap of 3 pixels per beat) is the floor: 113 x 113 x 9
    assert bottleneck == 113 * 113 * 9
    # with fewer DSP slices it is slower, never over budget
    half = fold_to_budget(nodes, 1260)
    assert sum(f.dsps for f in half.values()) <= 1260
    assert max(f.cycles for f in half.values()) > bottleneck
    # a cap stops the spending: the cheapest folding that meets it
    capped = fold_to_budget(nodes, 2520, cap=300_000)
    assert max(f.cycles for f in capped.values()) <= 300_000
    assert sum(f.dsps for f in capped.values()) < sum(f.dsps for f in folding.values())
    with pytest.raises(DoesNotFitError, match="the budget is 10 DSP"):
        fold_to_budget(nodes, 10)


def test_packing_halves_the_dsps_of_even_pe():
    from hls.plan.folding import fold_to_budget

    nodes = build_graph(spec_from_dict({"weights": "random"}))
    packed = fold_to_budget(nodes, 2520)
    plain = fold_to_budget(nodes, 2520, packing=False)
    assert all(f.packed == (f.pe % 2 == 0) for f in packed.values())
    assert not any(f.packed for f in plain.values())
    assert max(f.cycles for f in plain.values()) > max(f.cycles for f in packed.values())


def test_no_stream_is_slower_than_the_bottleneck():
    """A concat passes its stream at the widest input's lanes: at the narrowest (2 lanes for
    fire2's 128 channels) it would need 64 beats a pixel, 200,704 cycles, and be the
    pipeline's real bottleneck (measured in RTL before this rule)."""
    from hls.plan.folding import fold_to_budget, join_lanes, stream_cycles

    assert join_lanes([2, 64], [64, 64]) == 64
    assert join_lanes([16, 64], [48, 64]) == 16      # 64 does not divide 48
    nodes = build_graph(spec_from_dict({"weights": "random"}))
    folding = fold_to_budget(nodes, 2520)
    bottleneck = max(f.cycles for f in folding.values())
    assert max(stream_cycles(nodes, folding).values()) <= bottleneck
