"""The self-contained bit-exact testbench written into the hls4ml project.

The tiny project is built once (prepare -> build_project, 3 frames); its rendered
``<PROJECT_NAME>_test.cpp`` is compiled with g++ against the project's firmware and hls4ml's
bundled ap_types, as the vendor C simulation would compile it, and run on the golden
``tb_data``. Then the expected values are corrupted to show the check can fail.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np
import pytest

from hls.hls4ml_backend.convert import PROJECT_NAME
from hls.hls4ml_backend.csim import build_project
from hls.hls4ml_backend.testbench import (
    INPUT_DAT,
    OUTPUT_DAT,
    compile_and_run_testbench,
    exact_decimal,
    grid_values,
    parse_summary,
    run_testbench,
)
from hls.plan.prepare import prepare
from model.fixed import FixedFormat
from model.paths import REPO
from model.spec import load_spec

TINY = REPO / "configs" / "tiny.yaml"
N_FRAMES = 3


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    """(Prepared, project dir): the tiny project written by build_project, 3 frames."""
    prep = prepare(load_spec(TINY), log=lambda *a: None)
    prep.frames = prep.frames[:N_FRAMES]
    out = tmp_path_factory.mktemp("hls") / "tiny_vitis"
    # compile_=False: the testbench needs the written sources, not hls4ml's Python library.
    build_project(prep, backend="Vitis", out_dir=out, compile_=False, log=lambda *a: None)
    return prep, out


@pytest.fixture(scope="module")
def tiny_tb(tiny_project):
    """(Prepared, project dir, (rc, stdout) of the first g++ build and testbench run)."""
    prep, out = tiny_project
    return prep, out, compile_and_run_testbench(out)


@contextlib.contextmanager
def edited(path: Path, edit):
    """Temporarily replace a tb_data file's text by ``edit(text)``."""
    original = path.read_text()
    try:
        path.write_text(edit(original))
        yield
    finally:
        path.write_text(original)


def _out_fmt(prep) -> FixedFormat:
    return prep.plan.layers[prep.nodes[-1].name].out_fmt


def test_project_holds_the_testbench_and_golden_data(tiny_project):
    prep, out = tiny_project
    tcl = (out / "build_prj.tcl").read_text()
    assert "add_files -tb ${project_name}_test.cpp" in tcl
    assert "add_files -tb tb_data" in tcl
    tb = (out / f"{PROJECT_NAME}_test.cpp").read_text()
    assert "Bit-exact testbench" in tb and "${" not in tb
    assert f"{PROJECT_NAME}(input_stream, output_stream);" in tb
    assert "bool trace_enabled = false;" in tb
    inputs = (out / INPUT_DAT).read_text().splitlines()
    outputs = (out / OUTPUT_DAT).read_text().splitlines()
    assert len(inputs) == len(outputs) == N_FRAMES
    for fr, line in zip(prep.frames, inputs, strict=True):
        assert np.array_equal(np.array(line.split(), dtype=np.int64), fr.pixels.ravel())
    fmt = _out_fmt(prep)
    for line in outputs:
        vals = np.array([float(v) for v in line.split()])
        assert vals.size == prep.spec.classes
        fmt.from_real_exact(vals)  # every expectation is on the output grid


@pytest.mark.csim
def test_gxx_testbench_is_bit_exact(tiny_tb):
    _, _, (rc, stdout) = tiny_tb
    print("\n" + stdout.strip().splitlines()[-1])
    frames, compared, mismatches = parse_summary(stdout)
    assert stdout.strip().splitlines()[-1].startswith("tb: ")
    assert (frames, mismatches) == (N_FRAMES, 0), stdout
    assert compared == N_FRAMES * 10 > 0
    assert rc == 0, stdout


@pytest.mark.csim
def test_gxx_testbench_catches_one_lsb(tiny_tb):
    """One expected logit moved by one LSB of the output format: exactly 1 mismatch."""
    prep, out, _ = tiny_tb
    fmt = _out_fmt(prep)

    def bump(text):
        lines = text.splitlines()
        vals = lines[1].split()
        q = int(fmt.from_real_exact(np.array([float(vals[3])]))[0])
        q = q + 1 if q < fmt.qmax else q - 1
        vals[3] = grid_values(np.array([q]), fmt, "corrupted")[0]
        lines[1] = " ".join(vals)
        return "\n".join(lines) + "\n"

    with edited(out / OUTPUT_DAT, bump):
        rc, stdout = run_testbench(out)
    assert parse_summary(stdout) == (N_FRAMES, N_FRAMES * 10, 1), stdout
    assert re.search(r"^tb: frame 1: output 3: C sim", stdout, re.MULTILINE), stdout
    assert rc != 0


@pytest.mark.csim
def test_gxx_testbench_rejects_off_grid_short_and_missing_data(tiny_tb):
    prep, out, _ = tiny_tb
    half_lsb = _out_fmt(prep).lsb / 2

    def off_grid(text):
        vals = text.splitlines()
        first = vals[0].split()
        first[0] = exact_decimal(float(first[0]) + half_lsb)
        return "\n".join([" ".join(first)] + vals[1:]) + "\n"

    with edited(out / OUTPUT_DAT, off_grid):
        rc, stdout = run_testbench(out)
    assert rc != 0 and "is not on the output_t grid" in stdout, stdout
    with edited(out / OUTPUT_DAT, lambda t: "\n".join(t.splitlines()[:-1]) + "\n"):
        rc, stdout = run_testbench(out)
    assert rc != 0 and "fewer lines" in stdout, stdout
    with edited(out / INPUT_DAT, lambda t: t.split("\n", 1)[0].rsplit(" ", 1)[0] + "\n"):
        rc, stdout = run_testbench(out)
    assert rc != 0 and "input line has" in stdout, stdout
    moved = out / "tb_data" / "moved.dat"
    (out / INPUT_DAT).rename(moved)
    try:
        rc, stdout = run_testbench(out)
    finally:
        moved.rename(out / INPUT_DAT)
    assert rc != 0 and "cannot open" in stdout, stdout
    assert parse_summary(stdout)[1] == 0


def test_exact_decimals():
    fmt = FixedFormat(16, 0, signed=False)
    assert grid_values(np.array([0, 1, 65535]), fmt, "x") == [
        "0", "0.0000152587890625", "0.9999847412109375"]
    assert exact_decimal(-2.5) == "-2.5" and exact_decimal(-0.0) == "0"
    with pytest.raises(ValueError):
        grid_values(np.array([65536]), fmt, "x")
