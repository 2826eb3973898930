"""Drive the vendor HLS tool on an hls4ml-written project and read its C-synthesis report.

hls4ml writes a project directory (``build_prj.tcl``, ``project.tcl``,
``hls4ml_config.yml``, ``firmware/``, ...). This module runs Vitis HLS or Vivado HLS on
that ``build_prj.tcl`` the same way hls4ml 1.3.0's own ``build()`` does, keeps the tool's
output in ``<project_dir>/synth.log`` and parses
``<project_dir>/<ProjectName>_prj/solution1/syn/report/<top>_csynth.xml``.

How the build options reach ``build_prj.tcl`` (read from hls4ml 1.3.0's sources):

* Vivado backend (``templates/vivado/build_prj.tcl``): the script scans ``$::argv`` with
  ``regexp "$o=+(\\w+)"`` for each option; ``VivadoBackend.build()`` runs
  ``vivado_hls -f build_prj.tcl "reset=.. csim=.. synth=.. cosim=.. validation=..
  export=.. vsynth=.. fifo_opt=.."`` -- all options in ONE argument. (They must stay in
  one argument, in this order: the pattern for ``synth`` also matches ``vsynth=``, so
  with one argument per option a later ``vsynth=0`` would overwrite ``synth``.)
* Vitis backend (``templates/vitis/build_prj.tcl``): the script does not read ``argv``;
  it sources ``build_opt.tcl`` (``array set opt {...}``), which ``VitisBackend.build()``
  rewrites before running ``vitis-run --tcl build_prj.tcl --mode hls``.

We do both where they apply: ``build_opt.tcl`` is rewritten when the script sources it,
and the option string is passed as the script argument to ``vitis_hls``/``vivado_hls``.

Nothing here fakes a tool: without ``vitis_hls``/``vitis-run``/``vivado_hls`` on PATH,
:func:`run_synthesis` raises :class:`ToolNotFoundError` before doing anything else.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from model.errors import InputError, InputNotFound, ToolFailed, ToolNotFound
from model.files import tail_text
from model.spec import BACKENDS

__all__ = [
    "BACKENDS",
    "SynthSummary",
    "ToolNotFoundError",
    "find_csynth_report",
    "find_hls_tool",
    "format_summary",
    "parse_csynth_report",
    "read_project_name",
    "run_synthesis",
]


# Tools looked for, per backend, in order of preference.
_TOOLS = {
    "Vitis": ("vitis_hls", "vitis-run"),
    "Vivado": ("vivado_hls",),
}
_ALL_TOOLS = ("vitis_hls", "vitis-run", "vivado_hls")

# Order matters for the Vivado-style argv parsing (see module docstring): synth before vsynth.
_OPTION_ORDER = ("reset", "csim", "synth", "cosim", "validation", "export", "vsynth", "fifo_opt")

RESOURCE_KEYS = ("BRAM_18K", "DSP", "FF", "LUT", "URAM")

LOG_NAME = "synth.log"
CONFIG_NAME = "hls4ml_config.yml"


class ToolNotFoundError(ToolNotFound, RuntimeError):
    """No suitable vendor HLS executable on PATH."""


# --------------------------------------------------------------------------------------
# Finding the tool
# --------------------------------------------------------------------------------------


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise InputError(
            f"unknown HLS backend {backend!r}: allowed values are "
            + ", ".join(repr(b) for b in BACKENDS)
        )
    return backend


def find_hls_tool(backend: str) -> tuple[str, list[str]]:
    """Find the vendor HLS executable for ``backend`` ('Vivado' or 'Vitis') on PATH.

    Returns ``(tool_name, argv_prefix)``; append the Tcl script path to ``argv_prefix`` to
    run a script:

    * ``vitis_hls``  -> ``[<path>/vitis_hls, "-f"]``
    * ``vitis-run``  -> ``[<path>/vitis-run, "--mode", "hls", "--tcl"]`` (Vitis 2024.2+
      unified command line, what hls4ml 1.3.0's ``VitisBackend.build()`` uses)
    * ``vivado_hls`` -> ``[<path>/vivado_hls, "-f"]``

    Raises ``ValueError`` for an unknown backend and :class:`ToolNotFoundError` when no
    tool for the backend is on PATH.
    """
    _check_backend(backend)
    for tool in _TOOLS[backend]:
        path = shutil.which(tool)
        if path:
            if tool == "vitis-run":
                return tool, [path, "--mode", "hls", "--tcl"]
            return tool, [path, "-f"]

    present = [t for t in _ALL_TOOLS if shutil.which(t)]
    fix = (
        "Source the settings64.sh of your AMD Vitis or Vivado installation first, e.g. "
        "`source <Xilinx install>/Vitis_HLS/<version>/settings64.sh` (vitis_hls, 2020.2-2023.2), "
        "`source <Xilinx install>/Vitis/<version>/settings64.sh` (vitis-run, 2024.2+) "
        "or `source <Xilinx install>/Vivado/<version>/settings64.sh` (Vivado HLS <= 2020.1)."
    )
    if not present:
        raise ToolNotFoundError(
            "no vendor HLS tool on PATH: looked for " + ", ".join(_ALL_TOOLS) + ". "
            "Backend 'Vitis' runs vitis_hls or vitis-run, backend 'Vivado' runs vivado_hls. "
            + fix
        )
    other = "Vitis" if backend == "Vivado" else "Vivado"
    raise ToolNotFoundError(
        f"no HLS tool for backend {backend!r} on PATH: looked for "
        + ", ".join(_TOOLS[backend])
        + f"; found {', '.join(present)}, which belongs to backend {other!r} "
        f"(write the project with backend={other!r} or put the {backend} tool on PATH). "
        + fix
    )


# --------------------------------------------------------------------------------------
# Project layout
# --------------------------------------------------------------------------------------


def _tolerant_yaml_loader():
    import yaml

    class _Loader(yaml.SafeLoader):
        """SafeLoader that turns tags it does not know (hls4ml writes ``!keras_model``,
        yaml.dump may write ``!!python/...``) into plain values instead of failing."""

    def _any_tag(loader, tag_suffix, node):
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_mapping(node, deep=True)

    _Loader.add_multi_constructor("", _any_tag)
    return yaml, _Loader


def _read_config(project_dir: Path) -> dict:
    yaml, loader = _tolerant_yaml_loader()
    cfg_path = project_dir / CONFIG_NAME
    with open(cfg_path, encoding="utf-8") as f:
        cfg = yaml.load(f, Loader=loader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(cfg, dict):
        raise InputError(f"{cfg_path}: expected a mapping, got {type(cfg).__name__}")
    return cfg


def read_project_name(project_dir: Path) -> str:
    """``ProjectName`` from ``<project_dir>/hls4ml_config.yml`` (hls4ml's default is
    'myproject'); falls back to ``set project_name "..."`` in ``project.tcl``."""
    project_dir = Path(project_dir)
    name = None
    if (project_dir / CONFIG_NAME).is_file():
        name = _read_config(project_dir).get("ProjectName")
    if not name and (project_dir / "project.tcl").is_file():
        m = re.search(
            r'set\s+project_name\s+"([^"]+)"', (project_dir / "project.tcl").read_text()
        )
        name = m.group(1) if m else None
    if not name:
        raise InputError(
            f"{project_dir}: no ProjectName in {CONFIG_NAME} and no project_name in project.tcl"
        )
    return str(name)


def _report_dir(project_dir: Path, project_name: str) -> Path:
    return project_dir / f"{project_name}_prj" / "solution1" / "syn" / "report"


def find_csynth_report(project_dir: Path) -> Path:
    """Locate ``<project_dir>/<ProjectName>_prj/solution1/syn/report/<top>_csynth.xml``.

    ``<top>`` is ``ProjectName`` (``ProjectName_axi`` for hls4ml's VivadoAccelerator
    wrapper, as hls4ml's own report parser does). Raises ``FileNotFoundError`` naming
    the path(s) tried.
    """
    project_dir = Path(project_dir)
    name = read_project_name(project_dir)
    rdir = _report_dir(project_dir, name)
    candidates = [rdir / f"{name}_csynth.xml", rdir / f"{name}_axi_csynth.xml"]
    for c in candidates:
        if c.is_file():
            return c
    there = sorted(p.name for p in rdir.glob("*.xml")) if rdir.is_dir() else []
    raise InputNotFound(
        "no C-synthesis report: looked for "
        + " and ".join(str(c) for c in candidates)
        + (f" (that folder holds: {', '.join(there)})" if there else "")
    )


def _check_project_dir(project_dir: Path) -> None:
    if not project_dir.is_dir():
        raise InputNotFound(
            f"HLS project directory {project_dir} does not exist "
            "(write it first with hls4ml: hls_model.write())"
        )
    missing = [
        n for n in ("build_prj.tcl", "project.tcl", CONFIG_NAME) if not (project_dir / n).is_file()
    ]
    if missing:
        raise InputNotFound(
            f"{project_dir} is not an hls4ml-written HLS project: missing "
            + ", ".join(missing)
            + " (hls4ml's writer creates build_prj.tcl, project.tcl and hls4ml_config.yml)"
        )


# --------------------------------------------------------------------------------------
# Running the tool
# --------------------------------------------------------------------------------------


def _tcl_option_string(opts: dict[str, bool]) -> str:
    return " ".join(f"{k}={int(bool(opts[k]))}" for k in _OPTION_ORDER)


def _build_opt_tcl(opts: dict[str, bool]) -> str:
    # Same layout as hls4ml 1.3.0 VitisBackend.build() / templates/vitis/build_opt.tcl.
    body = "".join(f"    {k:<10} {int(bool(opts[k]))}\n" for k in _OPTION_ORDER)
    return "array set opt {\n" + body + "}\n"



def run_synthesis(
    project_dir: Path,
    backend: str,
    csim: bool = False,
    synth: bool = True,
    cosim: bool = False,
    export: bool = True,
    log: Callable[[str], None] = print,
    *,
    reset: bool = False,
    validation: bool = False,
    vsynth: bool = False,
    fifo_opt: bool = False,
    echo: bool = False,
    timeout_s: float | None = None,
) -> SynthSummary | None:
    """Run the vendor HLS tool on hls4ml's ``build_prj.tcl`` in ``project_dir``.

    The tool is looked up first (a missing tool fails at once, before anything is written).
    The tool's stdout+stderr go to ``<project_dir>/synth.log`` line by line (also to
    ``log`` when ``echo``). A non-zero exit raises ``RuntimeError`` with the log's tail.
    When ``synth`` is true the fresh ``<top>_csynth.xml`` is parsed and returned; when
    it is false ``None`` is returned (no report is produced by this run).
    """
    tool, argv_prefix = find_hls_tool(backend)  # first: fail fast without a tool

    project_dir = Path(project_dir).resolve()
    _check_project_dir(project_dir)
    script = project_dir / "build_prj.tcl"
    script_text = script.read_text(encoding="utf-8", errors="replace")
    uses_build_opt = re.search(r"source\s+.*build_opt\.tcl", script_text) is not None
    uses_argv = "::argv" in script_text

    opts = {
        "reset": reset,
        "csim": csim,
        "synth": synth,
        "cosim": cosim,
        "validation": validation,
        "export": export,
        "vsynth": vsynth,
        "fifo_opt": fifo_opt,
    }
    opt_string = _tcl_option_string(opts)

    if tool == "vitis-run" and uses_argv and not uses_build_opt:
        raise ToolNotFoundError(
            f"{script} takes its options on the command line (hls4ml Vivado-backend "
            "layout), which `vitis-run --mode hls --tcl` cannot pass; write the project "
            "with backend='Vitis' (it reads build_opt.tcl) or put vitis_hls on PATH"
        )
    if not uses_build_opt and not uses_argv:
        log(f"warning: {script.name} reads neither build_opt.tcl nor argv; options may be ignored")

    if uses_build_opt:
        (project_dir / "build_opt.tcl").write_text(_build_opt_tcl(opts), encoding="utf-8")

    argv = argv_prefix + ["build_prj.tcl"]
    if tool != "vitis-run":
        argv.append(opt_string)

    log_path = project_dir / LOG_NAME
    log(f"[synth] {tool} in {project_dir}: {opt_string}")
    log(f"[synth] output -> {log_path}")

    started = time.time()
    timed_out = threading.Event()
    with open(log_path, "w", encoding="utf-8") as logf:
        logf.write(f"# command: {' '.join(argv)}\n# cwd: {project_dir}\n")
        logf.flush()
        proc = subprocess.Popen(
            argv,
            cwd=project_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # own process group: the tool spawns children
        )

        def _kill_group() -> None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass

        def _on_timeout() -> None:
            timed_out.set()
            _kill_group()

        timer = threading.Timer(timeout_s, _on_timeout) if timeout_s else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                logf.write(line)
                logf.flush()
                if echo:
                    log(line.rstrip("\n"))
            rc = proc.wait()
        except BaseException:
            _kill_group()
            proc.wait()
            raise
        finally:
            if timer:
                timer.cancel()

    elapsed = time.time() - started
    if timed_out.is_set():
        raise ToolFailed(
            f"{tool} timed out after {timeout_s:.0f} s; last lines of {log_path}:\n"
            + tail_text(log_path)
        )
    if rc != 0:
        raise ToolFailed(
            f"{tool} failed with exit status {rc} after {elapsed:.0f} s; "
            f"last lines of {log_path}:\n" + tail_text(log_path)
        )
    log(f"[synth] {tool} finished in {elapsed:.0f} s")

    if not synth:
        return None
    try:
        report = find_csynth_report(project_dir)
    except FileNotFoundError as e:
        raise ToolFailed(
            f"{tool} exited 0 but wrote no C-synthesis report: {e}; "
            f"last lines of {log_path}:\n" + tail_text(log_path)
        ) from None
    # Refuse a report left over from an earlier run (2 s slack for coarse mtimes).
    if report.stat().st_mtime < started - 2.0:
        raise ToolFailed(
            f"{report} is older than this run: {tool} did not rewrite it; see {log_path}"
        )
    summary = parse_csynth_report(report)
    log(format_summary(summary))
    return summary


# --------------------------------------------------------------------------------------
# Report parsing
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthSummary:
    """What one ``<top>_csynth.xml`` says (HLS *estimates*, not post-route results).

    Latencies and intervals are in clock cycles and are ``None`` where the report says
    ``undef`` (e.g. loops with unknown trip counts). ``resources``/``available`` use the
    keys BRAM_18K, DSP, FF, LUT, URAM (Vivado HLS's ``DSP48E`` is stored as ``DSP``;
    ``dsp_element`` keeps the report's own element name).
    """

    top: str | None
    part: str | None
    target_clock_ns: float | None
    estimated_clock_ns: float | None
    best_latency: int | None
    worst_latency: int | None
    interval_min: int | None
    interval_max: int | None
    resources: dict[str, int] = field(default_factory=dict)
    available: dict[str, int] = field(default_factory=dict)
    clock_uncertainty_ns: float | None = None
    tool_version: str | None = None
    dsp_element: str | None = None
    report_path: str | None = None

    @property
    def bram_18k(self) -> int | None:
        return self.resources.get("BRAM_18K")

    @property
    def dsp(self) -> int | None:
        return self.resources.get("DSP")

    @property
    def ff(self) -> int | None:
        return self.resources.get("FF")

    @property
    def lut(self) -> int | None:
        return self.resources.get("LUT")

    @property
    def uram(self) -> int | None:
        return self.resources.get("URAM")

    def utilization(self, key: str) -> float | None:
        """Used / available for ``key`` (0..1), None when either is unknown or 0 available."""
        used, avail = self.resources.get(key), self.available.get(key)
        if used is None or not avail:
            return None
        return used / avail

    def worst_latency_ns(self) -> float | None:
        """Worst-case latency at the target clock (as the report's RealTimeLatency)."""
        if self.worst_latency is None or self.target_clock_ns is None:
            return None
        return self.worst_latency * self.target_clock_ns

    def to_dict(self) -> dict:
        return asdict(self)


def _text(root: ET.Element, path: str) -> str | None:
    node = root.find(path)
    if node is None or node.text is None:
        return None
    t = node.text.strip()
    return t or None


def _as_int(value: str | None) -> int | None:
    """Cycle counts / resource counts; 'undef' (and anything non-numeric) -> None."""
    if value is None or value.lower() in ("undef", "-", "n/a", "na"):
        return None
    try:
        return int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            return None
        return int(f) if f.is_integer() else None


def _as_float(value: str | None) -> float | None:
    if value is None or value.lower() in ("undef", "-", "n/a", "na"):
        return None
    m = re.match(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", value)
    return float(m.group(0)) if m else None


def _resources(node: ET.Element | None) -> tuple[dict[str, int], str | None]:
    out: dict[str, int] = {}
    dsp_element = None
    if node is None:
        return out, None
    for child in node:
        tag = child.tag
        if tag in ("DSP48E", "DSP"):
            dsp_element = tag
            tag = "DSP"
        val = _as_int(child.text.strip() if child.text else None)
        if val is not None:
            out[tag] = val
    return out, dsp_element


def parse_csynth_report(xml_path: Path) -> SynthSummary:
    """Parse a Vivado HLS / Vitis HLS ``<top>_csynth.xml``.

    Element paths (the same ones hls4ml 1.3.0's ``report/vivado_report.py`` reads):

    * ``UserAssignments/{TopModelName, Part, TargetClockPeriod, ClockUncertainty}``
    * ``PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod``
    * ``PerformanceEstimates/SummaryOfOverallLatency/{Best-caseLatency, Worst-caseLatency,
      Interval-min, Interval-max}`` (cycles, or ``undef``)
    * ``AreaEstimates/Resources/*`` and ``AreaEstimates/AvailableResources/*``
      (BRAM_18K, DSP48E [Vivado HLS] or DSP [Vitis HLS], FF, LUT, URAM)
    * ``ReportVersion/Version``
    """
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise InputError(f"{xml_path}: not a readable XML report ({e})") from None

    perf = root.find("./PerformanceEstimates")
    area = root.find("./AreaEstimates")
    if perf is None or area is None:
        raise InputError(
            f"{xml_path}: not a csynth report (no PerformanceEstimates/AreaEstimates under "
            f"<{root.tag}>)"
        )
    used, dsp_used = _resources(area.find("./Resources"))
    avail, dsp_avail = _resources(area.find("./AvailableResources"))

    lat = "./SummaryOfOverallLatency/"
    return SynthSummary(
        top=_text(root, "./UserAssignments/TopModelName"),
        part=_text(root, "./UserAssignments/Part"),
        target_clock_ns=_as_float(_text(root, "./UserAssignments/TargetClockPeriod")),
        estimated_clock_ns=_as_float(
            _text(perf, "./SummaryOfTimingAnalysis/EstimatedClockPeriod")
        ),
        best_latency=_as_int(_text(perf, lat + "Best-caseLatency")),
        worst_latency=_as_int(_text(perf, lat + "Worst-caseLatency")),
        interval_min=_as_int(_text(perf, lat + "Interval-min")),
        interval_max=_as_int(_text(perf, lat + "Interval-max")),
        resources=used,
        available=avail,
        clock_uncertainty_ns=_as_float(_text(root, "./UserAssignments/ClockUncertainty")),
        tool_version=_text(root, "./ReportVersion/Version"),
        dsp_element=dsp_used or dsp_avail,
        report_path=str(xml_path),
    )


def _fmt_cycles(v: int | None) -> str:
    return "undef" if v is None else f"{v:,}"


def _fmt_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"


def format_summary(s: SynthSummary) -> str:
    """Compact, human-readable table of a :class:`SynthSummary`."""
    ver = f" {s.tool_version}" if s.tool_version else ""
    lines = [f"C-synthesis estimate (HLS report{ver}): top {s.top or '?'} on {s.part or '?'}"]
    tgt = f"{s.target_clock_ns:.3f} ns" if s.target_clock_ns is not None else "?"
    est = f"{s.estimated_clock_ns:.3f} ns" if s.estimated_clock_ns is not None else "?"
    clk = f"  clock     target {tgt}, estimated {est}"
    if s.target_clock_ns and s.estimated_clock_ns and s.estimated_clock_ns > s.target_clock_ns:
        clk += "  (MISSES target)"
    lines.append(clk)
    lat = (
        f"  latency   best {_fmt_cycles(s.best_latency)}, "
        f"worst {_fmt_cycles(s.worst_latency)} cycles"
    )
    wns = s.worst_latency_ns()
    if wns is not None:
        lat += f" (worst {_fmt_time(wns)} at target clock)"
    lines.append(lat)
    lines.append(
        f"  interval  min {_fmt_cycles(s.interval_min)}, max {_fmt_cycles(s.interval_max)} cycles"
    )
    lines.append(f"  {'resource':<9} {'used':>10} {'available':>10} {'util':>7}")
    for key in RESOURCE_KEYS:
        if key not in s.resources and key not in s.available:
            continue
        label = key if key != "DSP" or not s.dsp_element else s.dsp_element
        used = s.resources.get(key)
        avail = s.available.get(key)
        u = s.utilization(key)
        lines.append(
            f"  {label:<9} {('?' if used is None else f'{used:,}'):>10} "
            f"{('?' if avail is None else f'{avail:,}'):>10} "
            f"{('-' if u is None else f'{100 * u:.1f}%'):>7}"
        )
    return "\n".join(lines)
