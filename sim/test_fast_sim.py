"""The fast whole-network simulation (``sim.fast``, ``sqz sim-full``): the C++-driven
Verilator model of the small networks against the golden model, with and without random
stalls, against the cocotb bench's cycle figures, and its FIFO occupancy statistics."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.rtl

CONFIGS = {"tiny": None, "tiny_shared": 4}   # config -> frames (None: every photo)


@pytest.fixture(scope="module", params=list(CONFIGS))
def network(request):
    from model.paths import REPO
    from model.spec import load_spec
    from sim.network import prepare_network, rtl_dir

    spec = load_spec(REPO / "configs" / f"{request.param}.yaml")
    _prep, design, vectors = prepare_network(spec, frames=CONFIGS[request.param])
    sources = design.sources() + [rtl_dir(spec) / f"{design.top}.v"]
    return spec, design, sources, vectors


def _fast(network, stalls: bool, **kw) -> dict:
    from sim import fast

    spec, design, sources, vectors = network
    return fast.run(design.top, sources, vectors, spec.name, stalls=stalls, **kw)


def _fifo_instances(design) -> set[str]:
    """Every sqz_fifo of the design: the top's, and the output FIFO inside each MVU
    (instance ``ofifo`` in firmware/rtl/sqz_mvu.v)."""
    return ({i.name for i in design.instances if i.module == "sqz_fifo"}
            | {f"{i.name}.ofifo" for i in design.instances if i.module == "sqz_mvu"})


@pytest.fixture(scope="module")
def plain(network):
    return _fast(network, stalls=False)


def test_fast_bit_exact(network, plain):
    spec, design, _sources, _vectors = network
    assert plain["mismatches"] == 0
    assert plain["compared"] == plain["frames"] * spec.classes > 0
    assert plain["cycles_per_frame"] > 0 and plain["cycles_per_s"] > 0
    assert {s.instance for s in plain["fifos"]} == _fifo_instances(design)
    assert len(plain["fifos"]) == len(_fifo_instances(design))
    for s in plain["fifos"]:
        assert 1 <= s.peak <= s.words, s


def test_fast_bit_exact_with_stalls(network, plain, capsys):
    spec, design, _sources, _vectors = network
    fig = _fast(network, stalls=True)
    # progress from the driver, one stderr line per finished frame (not a terminal here)
    err = capsys.readouterr().err
    assert f"sim-full: {fig['frames']}/{fig['frames']} frames" in err, err
    assert fig["mismatches"] == 0
    assert fig["compared"] == fig["frames"] * spec.classes
    # Input idles and output backpressure can only slow the pipeline down.
    assert fig["total_cycles"] > plain["total_cycles"]
    assert {s.instance for s in fig["fifos"]} == _fifo_instances(design)


@pytest.mark.slow  # CI time: runs in make test-all
def test_fast_cycles_match_cocotb(network, plain):
    """The same cycles per frame and first-frame latency as the cocotb bench (on tiny:
    the cocotb bench of tiny_shared runs in sim/test_network.py)."""
    from sim.network import run_network

    spec, design, _sources, vectors = network
    if spec.name != "tiny":
        pytest.skip("the cocotb comparison needs one network: tiny")
    fig = run_network(spec, design, vectors, testcase="test_frames", stalls=False)
    assert fig["mismatches"] == 0
    assert plain["cycles_per_frame"] == fig["cycles_per_frame"]
    assert plain["first_frame_latency_cycles"] == fig["first_frame_latency_cycles"]


def test_fast_watchdog_names_the_cycle(network):
    """No output within the watchdog's cycles stops the run with a clear message (here the
    first frame's latency is longer than the watchdog)."""
    from sim.fast import SimError

    with pytest.raises(SimError, match=r"watchdog: no output beat for 100 cycles, stopped "
                                       r"at cycle \d+"):
        _fast(network, stalls=False, watchdog=100)


def test_undersized_fifo_deadlock_names_the_fifo(network, tmp_path):
    """The plan's branch FIFO after a fork (fork -> expand1x1) shrunk to 2 words: the
    expand1x1 side fills up while expand3x3 still gathers its first window rows, the fork
    stalls both, and nothing reaches the concat. The run stops at the watchdog and names
    the full FIFOs, the shrunk one among them, instead of timing out silently."""
    import re

    from sim import fast
    from sim.fast import SimError
    from sim.network import rtl_dir

    spec, design, sources, vectors = network
    if spec.name != "tiny":
        pytest.skip("the deadlock check needs one network: tiny (a Verilator build each)")
    top_file = rtl_dir(spec) / f"{design.top}.v"
    text = top_file.read_text()
    victim = "fifo_fire2_expand1x1_in"
    small, n = re.subn(r"\.DEPTH\(\d+\)\n\) " + victim + r" \(", f".DEPTH(2)\n) {victim} (",
                       text)
    assert n == 1, f"{victim} not found in {top_file}"
    shrunk = tmp_path / top_file.name
    shrunk.write_text(small)
    with pytest.raises(SimError) as info:
        fast.run(design.top, [s for s in sources if s != top_file] + [shrunk], vectors,
                 f"{spec.name}_undersized", watchdog=20_000)
    message = str(info.value)
    assert "watchdog: no output beat for 20000 cycles" in message
    assert "FIFOs full when it stopped" in message and f"{victim} (depth 2, 3 words)" in message


def test_build_reused(network, plain):
    """A second run with unchanged sources does not rebuild; this process holds the build
    folder's lock (model.locks) from the first run on."""
    from model import locks
    from sim.fast import fast_dir
    from sim.network import rtl_dir

    fig = _fast(network, stalls=False)
    assert fig["build_s"] == 0.0
    assert fig["total_cycles"] == plain["total_cycles"]
    spec = network[0]
    assert {fast_dir(spec.name), rtl_dir(spec)} <= set(locks.held())


@pytest.mark.parametrize("define", [[], ["-DSQZ_FIFO_STATS"]], ids=["plain", "stats"])
def test_fifo_lint_clean_with_stats(define):
    from sim.runner import RTL, ensure_simulator

    ensure_simulator("verilator")
    for params in ([], ["-GDEPTH=1000", "-GDATA_WIDTH=3"]):
        run = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "sqz_fifo",
                              *define, *params, str(RTL / "sqz_fifo.v")],
                             capture_output=True, text=True, check=False, timeout=120)
        out = run.stdout + run.stderr
        assert "%Warning" not in out and "%Error" not in out, out


def test_fifo_report_sizes():
    """Peak 10 of a 64-word RAM needs 16 words; a 1024-deep 36-bit FIFO at peak 50 gives
    back 960 words and the 3 BRAM18 of a 1024x37 RAM (64 words fit LUTRAM)."""
    from sim.fast import FifoStat, fifo_report, parse_fifo_stats

    text = ("SQZ_FIFO_STATS TOP.sqz_t.fifo_a depth=64 width=8 words=65 peak=10 full_cycles=0 "
            "now=0\n"
            "SQZ_FIFO_STATS TOP.sqz_t.mvu_b.ofifo depth=1000 width=36 words=1025 peak=50 "
            "full_cycles=0 now=3\n"
            "SQZ_FIFO_STATS TOP.sqz_t.fifo_c depth=4 width=8 words=5 peak=5 full_cycles=7 "
            "now=5\n")
    stats = parse_fifo_stats(text, "sqz_t")
    assert [s.instance for s in stats] == ["fifo_a", "mvu_b.ofifo", "fifo_c"]
    assert stats[0] == FifoStat("fifo_a", 64, 8, 65, 10, 0, 0)
    assert [s.full_now for s in stats] == [False, False, True]
    assert stats[0].ram_depth(10) == 16 and stats[1].ram_depth(50) == 64
    rep = fifo_report(stats, 3, 1200, ("conv9", 1000))
    assert "oversized (peak fits half the RAM or less): 2 of 3 FIFOs, 1,008 words" in rep
    assert "mvu_b.ofifo: depth 1000, peak 50: 960 words x 37 bits, 3 BRAM18" in rep
    assert "peak above the planned depth + 1 (only the power-of-two rounding held it): 0 of" in rep
    assert "ran full (stalled their producer): 1 of 3 FIFOs\n  fifo_c: depth 4, 7 cycles" in rep
    assert "200 cycles/frame above the slowest layer (conv9, 1,000)" in rep
    assert "none cost throughput" in fifo_report(stats, 3, 1000, ("conv9", 1000))


def test_fast_mixed_index_widths_bit_exact():
    """Per-layer index widths (compression.layer_bits) in one RTL network: tiny_shared with
    its 1x1 expands unshared (8-bit weight ROMs) and conv10 on 3-bit indices."""
    import re
    from dataclasses import replace

    from model.paths import REPO
    from model.spec import load_spec
    from sim import fast
    from sim.network import prepare_network, rtl_dir

    spec = load_spec(REPO / "configs" / "tiny_shared.yaml")
    spec = replace(spec, name="tiny_mixed", compression=replace(
        spec.compression, layer_bits=(("fire*_expand1x1", 0), ("conv10", 3))))
    prep, design, vectors = prepare_network(spec, frames=3)
    text = (rtl_dir(spec) / f"{design.top}.v").read_text()
    convs = [n.name for n in prep.nodes if n.kind == "conv"]
    assert len(re.findall(r"\.SHARE_BITS\(4\)", text)) == len(convs) - 5
    assert len(re.findall(r"\.SHARE_BITS\(3\)", text)) == 1
    fig = fast.run(design.top, design.sources() + [rtl_dir(spec) / f"{design.top}.v"],
                   vectors, spec.name, stalls=True)
    print(f"\ntiny_mixed rtl: {fig['frames']} frames, {fig['compared']} outputs compared, "
          f"{fig['mismatches']} mismatches")
    assert fig["frames"] == 3 and fig["compared"] == 3 * spec.classes
    assert fig["mismatches"] == 0
