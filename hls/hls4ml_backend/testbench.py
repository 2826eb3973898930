"""A self-contained bit-exact testbench for the written hls4ml project.

hls4ml's ``build_prj.tcl`` adds ``<project>_test.cpp`` and ``tb_data/`` as testbench files
(``add_files -tb``); its generated testbench only prints the C simulation's outputs. Here
``tb_data`` gets the golden model's frames and output logits, and ``<project>_test.cpp`` is
replaced by ``firmware/tb_bitexact.cpp`` (rendered with ``string.Template``), which compares
every output element exactly with the golden value in the output's fixed-point type. So the
vendor tool's C simulation (``csim=1``) repeats the bit-exact check without Python.

``compile_and_run_testbench`` checks the same testbench without vendor tools: g++ against
the project's firmware and hls4ml's bundled ``ap_types`` headers, as ``build_lib.sh`` does.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from string import Template

import numpy as np

from model.errors import ToolFailed, ToolNotFound
from model.fixed import FixedFormat
from model.graph import Node
from model.paths import FIRMWARE
from model.quantize import QuantPlan, run_golden

TEMPLATE = FIRMWARE / "tb_bitexact.cpp"
INPUT_DAT = "tb_data/tb_input_features.dat"
OUTPUT_DAT = "tb_data/tb_output_predictions.dat"
BUILD_SUBDIR = "tb_build"


def exact_decimal(value: float) -> str:
    """The exact decimal expansion of a double (no exponent, no rounding)."""
    text = format(Decimal(float(value)), "f")
    return "0" if text in ("-0", "0") else text


def grid_values(q: np.ndarray, fmt: FixedFormat, what: str) -> list[str]:
    """Integers ``q`` of ``fmt`` -> exact decimals of their real values, flattened (C order)."""
    if fmt.width > 53:
        raise ValueError(f"{what}: {fmt.ap()} values do not all fit a double exactly")
    q = np.asarray(q, dtype=np.int64).ravel()
    if q.size and (q.min() < fmt.qmin or q.max() > fmt.qmax):
        raise ValueError(f"{what}: integers outside the {fmt.ap()} range")
    real = fmt.to_real(q)
    if not np.array_equal(fmt.from_real_exact(real, what), q):  # exact by construction
        raise AssertionError(f"{what}: real values do not round-trip to the integers")
    return [exact_decimal(v) for v in real]


def _frame_pixels(frame) -> np.ndarray:
    pixels = getattr(frame, "pixels", frame)
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 raw pixels (H, W, C), got {pixels.dtype}")
    return pixels


def write_tb_data(project_dir: Path, frames: Sequence, golden_outputs: Sequence[np.ndarray],
                  plan: QuantPlan, nodes: list[Node]) -> tuple[Path, Path]:
    """Write hls4ml's ``tb_data/tb_input_features.dat`` and ``tb_output_predictions.dat``.

    ``frames``: ``Frame`` objects or uint8 (H, W, C) arrays; each becomes one line of its raw
    pixel values in H, W, C row-major order (the order the top function reads its stream;
    the C simulation receives the pixel values themselves, as
    ``hls.hls4ml_backend.csim.trace_frame`` does).
    ``golden_outputs``: the golden model's integers of the last node, one array per frame;
    each becomes one line of the exact decimals of their real values in its output format.
    """
    project_dir = Path(project_dir)
    if len(frames) != len(golden_outputs):
        raise ValueError(f"{len(frames)} frames but {len(golden_outputs)} golden outputs")
    if not frames:
        raise ValueError("no frames to write")
    out_fmt = plan.layers[nodes[-1].name].out_fmt
    in_lines, out_lines = [], []
    size_in = size_out = None
    for i, (frame, gold) in enumerate(zip(frames, golden_outputs, strict=True)):
        pixels = _frame_pixels(frame).astype(np.int64).ravel()  # H, W, C row-major
        gold = np.asarray(gold)
        if size_in is None:
            size_in, size_out = pixels.size, gold.size
        if (pixels.size, gold.size) != (size_in, size_out):
            raise ValueError(f"frame {i}: {pixels.size} inputs / {gold.size} outputs, "
                             f"frame 0 had {size_in} / {size_out}")
        in_lines.append(" ".join(str(int(p)) for p in pixels))
        out_lines.append(" ".join(grid_values(gold, out_fmt, f"frame {i} golden output")))
    tb = project_dir / "tb_data"
    tb.mkdir(parents=True, exist_ok=True)
    inp, outp = project_dir / INPUT_DAT, project_dir / OUTPUT_DAT
    inp.write_text("\n".join(in_lines) + "\n", encoding="ascii")
    outp.write_text("\n".join(out_lines) + "\n", encoding="ascii")
    return inp, outp


def render_testbench(project_dir: Path, hls_model) -> Path:
    """Replace hls4ml's ``<project>_test.cpp`` by the rendered ``firmware/tb_bitexact.cpp``."""
    project = hls_model.config.get_project_name()
    inputs = hls_model.get_input_variables()
    outputs = hls_model.get_output_variables()
    if len(inputs) != 1 or len(outputs) != 1:
        raise RuntimeError(f"the testbench handles one input and one output, the model has "
                           f"{len(inputs)} and {len(outputs)}")
    brams = [v for v in hls_model.get_weight_variables() if v.storage.lower() == "bram"]
    if brams:
        raise RuntimeError("weights stored as top-level BRAM ports are not supported by the "
                           f"testbench: {[v.name for v in brams]}")
    if hls_model.config.get_config_value("IOType") != "io_stream":
        raise RuntimeError("the testbench is written for io_stream projects")
    text = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        project=project,
        input_t=inputs[0].type.name,
        input_size=inputs[0].size(),
        output_t=outputs[0].type.name,
        output_size=outputs[0].size(),
    )
    path = Path(project_dir) / f"{project}_test.cpp"
    path.write_text(text, encoding="utf-8")
    return path


def write_testbench(project_dir: Path, hls_model, frames: Sequence, nodes: list[Node],
                    plan: QuantPlan) -> Path:
    """Golden outputs of ``frames`` -> tb_data, plus the bit-exact ``<project>_test.cpp``."""
    golden = [run_golden(nodes, plan, _frame_pixels(f))[nodes[-1].name] for f in frames]
    write_tb_data(project_dir, frames, golden, plan, nodes)
    return render_testbench(project_dir, hls_model)


def project_name(project_dir: Path) -> str:
    """The project name from hls4ml's ``build_lib.sh`` (``PROJECT=...``)."""
    for line in (Path(project_dir) / "build_lib.sh").read_text().splitlines():
        if line.startswith("PROJECT="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError(f"no PROJECT= line in {project_dir}/build_lib.sh")


def gxx_command(project_dir: Path, project: str | None = None) -> list[str]:
    """The g++ command line (run in ``project_dir``) that builds the testbench binary.

    The flags of hls4ml's ``build_lib.sh`` (``-O3``, ``-Ifirmware/ap_types/``, an absolute
    ``WEIGHTS_DIR``) with ``-std=c++11`` (build_prj.tcl compiles with ``-std=c++0x``), and
    the two translation units the vendor C simulation compiles.
    """
    project_dir = Path(project_dir).resolve()
    project = project or project_name(project_dir)
    weights = project_dir / "firmware" / "weights"
    return ["g++", "-O3", "-std=c++11", "-Ifirmware/ap_types/",
            f'-DWEIGHTS_DIR="{weights}"',
            f"firmware/{project}.cpp", f"{project}_test.cpp",
            "-o", f"{BUILD_SUBDIR}/tb_bitexact"]


def require_gxx() -> None:
    """Raise :class:`ToolNotFound` unless g++ (hls4ml's C simulation and the testbench
    compiler) is on PATH."""
    if shutil.which("g++") is None:
        raise ToolNotFound("g++ is not on PATH: the hls4ml C simulation and the project's "
                           "testbench are compiled with it (apt-get install g++)")


def build_testbench(project_dir: Path, timeout: float = 900) -> Path:
    """Compile ``<project_dir>/tb_build/tb_bitexact`` with ``gxx_command``; the binary's path.

    Raises ``ToolFailed`` (a ``RuntimeError``) with the compiler output if the build fails.
    """
    require_gxx()
    project_dir = Path(project_dir).resolve()
    (project_dir / BUILD_SUBDIR).mkdir(exist_ok=True)
    cmd = gxx_command(project_dir)
    build = subprocess.run(cmd, cwd=project_dir, capture_output=True, text=True, check=False,
                           timeout=timeout)
    if build.returncode != 0:
        raise ToolFailed(f"testbench build failed (in {project_dir}: {shlex.join(cmd)}):\n"
                         f"{build.stdout}{build.stderr}")
    return project_dir / BUILD_SUBDIR / "tb_bitexact"


def run_testbench(project_dir: Path, timeout: float = 900,
                  max_frames: int | None = None) -> tuple[int, str]:
    """Run the built testbench in ``project_dir`` (it reads ``tb_data/`` relative to it).

    ``max_frames`` limits the check to the first frames of ``tb_data`` (all by default).
    """
    project_dir = Path(project_dir).resolve()
    argv = [str(project_dir / BUILD_SUBDIR / "tb_bitexact")]
    if max_frames is not None:
        argv.append(str(max_frames))
    run = subprocess.run(argv, cwd=project_dir,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         check=False, timeout=timeout)
    return run.returncode, run.stdout


def compile_and_run_testbench(project_dir: Path, timeout: float = 900,
                              max_frames: int | None = None) -> tuple[int, str]:
    """Build ``<project_dir>/tb_build/tb_bitexact`` with g++ and run it in ``project_dir``.

    Returns (return code, stdout with stderr merged) of the testbench run.
    """
    build_testbench(project_dir, timeout)
    return run_testbench(project_dir, timeout, max_frames)


TB_SUMMARY = re.compile(r"^tb: (\d+) frames, (\d+) outputs compared, (\d+) mismatches$",
                        re.MULTILINE)


def parse_summary(stdout: str) -> tuple[int, int, int]:
    """(frames, outputs compared, mismatches) from the testbench's last ``tb:`` line."""
    found = TB_SUMMARY.findall(stdout)
    if not found:
        raise ValueError(f"no 'tb: F frames, N outputs compared, M mismatches' line in:\n"
                         f"{stdout}")
    return tuple(int(v) for v in found[-1])
