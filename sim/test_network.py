"""The generated SqueezeNet top against the golden model, frame after frame.

The pytest functions generate the small specs' RTL and run the cocotb bench
``sim.network_bench`` on it through ``sim.network``; the full v1.1 network runs with
``sqz sim-full`` (``make sim-full``).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def tiny_rtl():
    from model.paths import REPO
    from model.spec import load_spec
    from sim.network import prepare_network

    spec = load_spec(REPO / "configs" / "tiny.yaml")
    _prep, design, vectors = prepare_network(spec)
    return spec, design, vectors


def test_tiny_network_rtl_bit_exact(tiny_rtl):
    from sim.network import run_network

    spec, design, vectors = tiny_rtl
    fig = run_network(spec, design, vectors, testcase="test_frames", stalls=True)
    print(f"\nrtl: {fig['frames']} frames, {fig['compared']} outputs compared, "
          f"{fig['mismatches']} mismatches (random stalls and backpressure), "
          f"first-frame latency {fig['first_frame_latency_cycles']} cycles")
    assert fig["mismatches"] == 0 and fig["compared"] > 0


def test_tiny_network_rtl_reset_mid_frame(tiny_rtl):
    from sim.network import run_network

    spec, design, vectors = tiny_rtl
    run_network(spec, design, vectors, testcase="test_reset_mid_frame")


@pytest.mark.slow  # CI time: runs in make test-all
def test_tiny_shared_network_rtl_bit_exact():
    """configs/tiny_shared.yaml (pruned 50%, 4-bit shared weights): every MVU reads 4-bit
    indices and a codebook file, and the class scores equal the golden model's."""
    import re

    from model.paths import REPO
    from model.spec import load_spec
    from sim.network import prepare_network, run_network

    spec = load_spec(REPO / "configs" / "tiny_shared.yaml")
    prep, design, vectors = prepare_network(spec, frames=4)
    convs = [n.name for n in prep.nodes if n.kind == "conv"]
    text = (design_dir := vectors.parent / f"{design.top}.v").read_text()
    assert len(re.findall(r"\.SHARE_BITS\(4\)", text)) == len(convs), design_dir
    for name in convs:  # index ROMs 4 bits per lane, 16-entry codebooks
        f = prep.folding[name]
        rom = (vectors.parent / "mem" / f"{name}_w.hex").read_text().split()
        cb = (vectors.parent / "mem" / f"{name}_cb.hex").read_text().split()
        assert len(rom) == f.reuse_factor and len(rom[0]) == f.pe * f.simd * 4 // 4
        assert len(cb) == 16
    fig = run_network(spec, design, vectors, testcase="test_frames", stalls=True)
    print(f"\nrtl (shared weights): {fig['frames']} frames, {fig['compared']} outputs "
          f"compared, {fig['mismatches']} mismatches (random stalls and backpressure)")
    assert fig["frames"] == 4
    assert fig["mismatches"] == 0 and fig["compared"] > 0
