"""Whole-network RTL on unusual but valid shapes, checked against the golden model.

A 7x7 input with a max-pool after conv1 leaves a 1x1 map for the Fire modules, conv10
and the global average pool: the pool's accumulator must still be wider than its 8-bit
input (``sqz_gap`` refuses ``ACC_BITS <= 8``), which the generator once got wrong.
"""

from __future__ import annotations

import pytest

from model.spec import spec_from_dict

pytestmark = pytest.mark.rtl

GAP_1X1 = {
    "name": "gap1x1", "variant": "custom", "input": {"height": 7, "width": 7, "channels": 3},
    "classes": 4, "weights": "random", "seed": 5, "n_fire": 2,
    "conv1": {"filters": 8, "kernel": 3, "stride": 2}, "pool_after": ["conv1"],
    "metaparameters": {"base_e": 8, "incr_e": 8, "pct3x3": 0.5, "freq": 2, "SR": 0.25},
    "target": {"part": "xczu9eg-ffvb1156-2-e", "clock_mhz": 200, "backend": "Vitis",
               "target_cycles_per_frame": 2000},
}


@pytest.mark.slow  # CI time: runs in make test-all
def test_global_pool_of_a_1x1_map_is_bit_exact():
    from sim.network import prepare_network, run_network

    spec = spec_from_dict(GAP_1X1)
    prep, design, vectors = prepare_network(spec, frames=3)
    assert prep.nodes[-1].in_shape[:2] == (1, 1)
    gap = next(i for i in design.instances if i.module == "sqz_gap")
    assert gap.params["ACC_BITS"] > 8
    fig = run_network(spec, design, vectors, testcase="test_frames")
    print(f"gap1x1: {fig.get('frames')} frames, {fig.get('compared')} outputs compared, "
          f"{fig.get('mismatches')} mismatches")
    assert fig.get("frames") == 3
    assert fig["compared"] == 3 * 4
    assert fig["mismatches"] == 0
