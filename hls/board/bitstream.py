"""``make bitstream``: the Vivado project around the AXI-wrapped network, its scripts, and
Vivado's utilisation and timing figures.

Written under ``build/board/<board>/``:

- ``create_project.tcl``: the project (the board's part and board files), the Verilog of the
  wrapped network (``<core top>_axi``, module reference ``sqz``), the block design: the
  Zynq UltraScale+ PS ``zynq_ultra_ps_e_0`` with the board preset, ``pl_clk0`` at the spec's
  clock, M_AXI_HPM0_FPD and S_AXI_HP0_FPD on; the AXI DMA ``dma`` in simple mode (no
  scatter-gather, 26-bit length register: one transfer holds a frame) with MM2S / S2MM
  stream widths equal to the wrapper's; MM2S -> ``sqz/s_axis``, ``sqz/m_axis`` -> S2MM; a
  SmartConnect from HPM0 to the AXI-Lite slaves (``dma/S_AXI_LITE``, ``sqz/s_axi_ctrl``),
  another from the DMA's memory masters to HP0; a ``proc_sys_reset`` on ``pl_resetn0``;
  the address map (``assign_bd_address``), validation and the HDL wrapper.
- ``build.tcl``: synthesis, implementation and bitstream (``launch_runs`` / ``wait_on_run``),
  ``utilization.rpt`` and ``timing_summary.rpt``, and the copies PYNQ loads: ``<board>.bit``
  with ``<board>.hwh`` of the same stem, plus ``<board>.xsa`` for Vitis / PetaLinux.
- ``run.tcl``: sources both (``vivado -mode batch -source run.tcl``).
- ``deploy.json``: what the board driver needs beside the bitstream (frame and output
  bytes, score fields, register map, logit format, cell names).

Every value that goes into the Tcl (part, board part, module and cell names, paths, the
clock) is checked against a strict pattern first and inserted brace-quoted, so no value
can end a word or substitute anything. The interrupts of the DMA are not connected: the
driver polls the DMA's status registers.

Part: the board fixes it. A spec planned for another part is re-planned for the board's
(``model.spec.with_target``: the folding is redone within the board part's DSP slices and
block RAM, and ``prepare``'s fit check refuses a design that cannot fit); an explicit
``--part`` that differs from the board's is refused, naming both.

The core inside the wrapper (``--core``, Makefile ``CORE``):

- ``open`` (default): the open RTL core ``generate_rtl`` writes. Where ``make synth``
  exported hls4ml IP, the project's IP catalog also holds it (``ip_repo_paths``), unwired.
- ``hls4ml``: the Verilog ``make synth`` exported for the spec (the first of
  ``build/hls/<spec>_<backend>/*_prj/solution1/{impl,syn}/verilog``, the spec's backend
  first; none: an error naming where it looked, exit 2, nothing written). Its top
  ``squeezenet`` goes behind the stream adapter ``<core top>_hls4ml`` of
  ``hls/rtl/vendor.py`` (one pixel per input beat, all class scores in one output beat,
  TLAST counted), and the AXI top (same module ``<core top>_axi``, same ports, so the
  block design is unchanged) instantiates the adapter with CORE_LANES = classes. The Tcl
  adds the exported ``.v`` files, the adapter, the shell and the top, and every other
  non-``.tcl`` file of that folder as a memory file (the ROM contents the exported RTL
  reads with ``$readmemh``); ``.tcl`` files there (Xilinx IP such as floating-point
  cores) are named in a warning and not sourced. ``deploy.json`` records ``"core"``.

What is checked here: the scripts under ``tclsh`` with stub Vivado commands
(``tests/test_bitstream.py``), for the open core against the real wrapper and for the
hls4ml core against a Vitis-style stand-in (``sim/vendor_mock.py``), and the adapter in
simulation against the same stand-ins (``sim/test_vendor_rtl.py``). Not done: no script
has been run in Vivado, no vendor-exported RTL has been through this flow, and the
hls4ml core's timing, resources and scores on a board are unmeasured.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path

from hls.board import boards as B
from hls.board.boards import Board
from model import paths
from model.errors import InputError, InputNotFound, ToolFailed, ToolNotFound
from model.files import tail_text
from model.locks import hold
from model.spec import NetworkSpec, check_clock_mhz, with_target

# ---------------------------------------------------------------- names the Tcl uses

# The wrapped top (notes/axi_contract.md): its clock, reset and the three AXI interfaces
# a module reference infers from the X_INTERFACE_PARAMETER on aclk.
WRAPPER_CLOCK = "aclk"
WRAPPER_RESET = "aresetn"
WRAPPER_STREAM_IN = "s_axis"
WRAPPER_STREAM_OUT = "m_axis"
WRAPPER_CTRL = "s_axi_ctrl"
WRAPPER_INTERFACES = (WRAPPER_STREAM_IN, WRAPPER_STREAM_OUT, WRAPPER_CTRL)


def _axis(prefix: str, slave: bool, width: int) -> dict[str, tuple[str, int]]:
    fwd, back = ("input", "output") if slave else ("output", "input")
    return {f"{prefix}_tdata": (fwd, width), f"{prefix}_tkeep": (fwd, width // 8),
            f"{prefix}_tlast": (fwd, 1), f"{prefix}_tvalid": (fwd, 1),
            f"{prefix}_tready": (back, 1)}


# The contract's ports of ``<core top>_axi`` (name -> direction, bits), the one copy in
# this package: tests compare it with the rendered Verilog.
WRAPPER_PORTS: dict[str, tuple[str, int]] = {
    WRAPPER_CLOCK: ("input", 1), WRAPPER_RESET: ("input", 1),
    **_axis(WRAPPER_STREAM_IN, True, 64), **_axis(WRAPPER_STREAM_OUT, False, 64),
    **{f"{WRAPPER_CTRL}_{n}": (d, w) for n, d, w in (
        ("awaddr", "input", 12), ("awprot", "input", 3), ("awvalid", "input", 1),
        ("awready", "output", 1), ("wdata", "input", 32), ("wstrb", "input", 4),
        ("wvalid", "input", 1), ("wready", "output", 1), ("bresp", "output", 2),
        ("bvalid", "output", 1), ("bready", "input", 1), ("araddr", "input", 12),
        ("arprot", "input", 3), ("arvalid", "input", 1), ("arready", "output", 1),
        ("rdata", "output", 32), ("rresp", "output", 2), ("rvalid", "output", 1),
        ("rready", "input", 1))},
}

# Block design cells (the driver finds ``sqz`` and ``dma`` by these names).
CELL_CORE = "sqz"
CELL_DMA = "dma"
CELL_RESET = "rst_pl"
CELL_CTRL_BUS = "ctrl_smc"
CELL_MEM_BUS = "mem_smc"
BD_NAME = "sqz_bd"
DMA_VLNV = "xilinx.com:ip:axi_dma"
SMARTCONNECT_VLNV = "xilinx.com:ip:smartconnect"
RESET_VLNV = "xilinx.com:ip:proc_sys_reset"
DMA_LENGTH_BITS = 26       # c_sg_length_width: transfers up to 2**26 - 1 bytes
DMA_BURST = 64             # beats per AXI burst on the memory side
DMA_ADDR_BITS = 64         # the whole PS DDR (both DDR_LOW and DDR_HIGH) reachable
DEFAULT_JOBS = 4
CORES = ("open", "hls4ml")   # the core inside the wrapper: open RTL, or make synth's export

# ---------------------------------------------------------------- value checks

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
VLNV = re.compile(r"[a-z0-9.]{1,32}:[a-z_]{1,16}:[a-z0-9_]{1,64}")
# Characters allowed in a path written into the Tcl: none that Tcl substitutes ($ [ \),
# groups ({ } ") or splits a list on (white space), none a glob pattern reads.
PATH_CHARS = re.compile(r"[A-Za-z0-9_./+,@%=~-]+")


def check_ident(where: str, value: object) -> str:
    if not isinstance(value, str) or not IDENT.fullmatch(value):
        raise InputError(f"{where}: {value!r} is not allowed in the Vivado scripts; a name is "
                         "a letter or '_', then letters, digits or '_'")
    return value


def check_tcl_path(where: str, path: str | Path) -> Path:
    """An absolute path that goes into the Tcl as one brace-quoted word."""
    p = Path(path)
    text = str(p)
    if not p.is_absolute():
        raise InputError(f"{where}: {text!r} must be an absolute path")
    if not PATH_CHARS.fullmatch(text) or "/../" in text + "/":
        bad = "".join(sorted({c for c in text if not PATH_CHARS.fullmatch(c)}))
        raise InputError(f"{where}: the path {text!r} holds {bad or '..'!r}, which the Vivado "
                         "scripts cannot take; use a checkout path of letters, digits and "
                         "_ . / + , @ % = ~ - only")
    return p


def _brace(value: object) -> str:
    """``value`` as one brace-quoted Tcl word (already checked by a pattern above)."""
    text = str(value)
    if any(c in text for c in "{}\\\n\r") or not text:
        raise InputError(f"{text!r} cannot be brace-quoted in Tcl")
    return "{" + text + "}"


def _mhz(value: float) -> str:
    """The clock in MHz as a plain decimal number (model.spec.CLOCK_MHZ range)."""
    return f"{check_clock_mhz('target.clock_mhz', value):.3f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------- the wrapped network


@dataclass(frozen=True)
class Wrapper:
    """What the board project needs to know of the wrapped top ``<core top>_axi``:
    its module name, every Verilog source in order and the stream geometry (from
    ``hls.rtl.axi.AxiTop``; tests build one by hand)."""

    module: str
    sources: tuple[Path, ...]
    spec_name: str
    core_top: str
    frame_bytes: int
    out_bytes: int
    field_bits: int
    score_bits: int
    score_signed: bool
    classes: int
    in_bytes_per_beat: int = 8
    out_bytes_per_beat: int = 8
    frame_shape: tuple[int, ...] = ()                 # height, width, channels
    logit_format: dict = field(default_factory=dict)  # the scores as fixed point
    registers: object = ()                            # hls.rtl.axi.REGISTERS
    core: str = "open"                                # CORES: the core inside the wrapper
    data_files: tuple[Path, ...] = ()                 # memory init files of the core

    @classmethod
    def from_axi_top(cls, top, spec_name: str, core_top: str, frame_shape=(),
                     logit_format: dict | None = None, registers: object = (),
                     core: str = "open", data_files=()) -> Wrapper:
        """From ``hls.rtl.axi.generate_axi_top``'s result (read by attribute name)."""
        return cls(module=top.module, sources=tuple(Path(s) for s in top.sources),
                   spec_name=spec_name, core_top=core_top, frame_bytes=int(top.frame_bytes),
                   out_bytes=int(top.out_bytes), field_bits=int(top.field_bits),
                   score_bits=int(top.score_bits), score_signed=bool(top.score_signed),
                   classes=int(top.classes), in_bytes_per_beat=int(top.in_bytes_per_beat),
                   out_bytes_per_beat=int(top.out_bytes_per_beat),
                   frame_shape=tuple(int(v) for v in frame_shape),
                   logit_format=dict(logit_format or {}), registers=registers, core=core,
                   data_files=tuple(Path(d) for d in data_files))

    def check(self) -> None:
        """Refuse names, paths and widths the block design cannot take."""
        check_ident("wrapper module", self.module)
        check_ident("core top", self.core_top)
        check_ident("spec name", self.spec_name)
        if self.core not in CORES:
            raise InputError(f"core {self.core!r}: one of {', '.join(CORES)}")
        for d in self.data_files:
            check_tcl_path("memory file", d)
            if not Path(d).is_file():
                raise InputNotFound(f"memory file not found: {d}")
        if not self.sources:
            raise InputError(f"{self.module}: no Verilog sources")
        for s in self.sources:
            check_tcl_path("Verilog source", s)
            if not Path(s).is_file():
                raise InputNotFound(f"Verilog source not found: {s}")
        if not any(re.search(rf"^\s*module\s+{self.module}\b", Path(s).read_text(
                errors="replace"), re.M) for s in self.sources):
            raise InputError(f"no source declares module {self.module}: "
                             + ", ".join(str(s) for s in self.sources))
        for what, n in (("input", self.in_bytes_per_beat), ("output", self.out_bytes_per_beat)):
            if n not in (4, 8, 16, 32, 64, 128):
                raise InputError(f"{self.module}: {what} stream of {n} bytes per beat; the "
                                 "AXI DMA takes 4, 8, 16, 32, 64 or 128")
        limit = 2**DMA_LENGTH_BITS - 1
        for what, n in (("frame", self.frame_bytes), ("output", self.out_bytes)):
            if not 0 < n <= limit:
                raise InputError(f"{self.module}: {what} of {n} bytes; one DMA transfer "
                                 f"holds 1..{limit:,d} bytes")

    def deploy(self) -> dict:
        return {"spec": self.spec_name, "core": self.core, "core_top": self.core_top,
                "module": self.module,
                "frame_shape": list(self.frame_shape), "frame_bytes": self.frame_bytes,
                "out_bytes": self.out_bytes, "in_bytes_per_beat": self.in_bytes_per_beat,
                "out_bytes_per_beat": self.out_bytes_per_beat, "field_bits": self.field_bits,
                "score_bits": self.score_bits, "score_signed": self.score_signed,
                "classes": self.classes, "logit_format": _jsonable(self.logit_format),
                "registers": _jsonable(self.registers)}


def _jsonable(obj):
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "value") and hasattr(obj, "name"):   # an Enum
        return _jsonable(obj.value)
    return str(obj)


# ---------------------------------------------------------------- part and folders


def board_dir(board: Board) -> Path:
    """``build/board/<board>``, kept inside the build folder."""
    return paths.build_path("board", board.name)


def board_spec(spec: NetworkSpec, board: Board, part_flag: str | None = None,
               log=print) -> NetworkSpec:
    """The spec for ``board``'s part: an explicit ``--part`` must be the board's; a spec
    written for another part is re-planned for the board's (prepare's fit check then
    refuses a design the board cannot hold)."""
    if part_flag is not None and part_flag.lower() != board.part.lower():
        raise InputError(f"--part {part_flag} is not the part of board {board.name} "
                         f"({board.part}); leave --part out: the board sets the part")
    if spec.target.part.lower() != board.part.lower():
        log(f"part: {spec.name} is written for {spec.target.part}, board {board.name} "
            f"carries {board.part}: planned for {board.part}")
        spec = with_target(spec, part=board.part)
    return spec


def hls4ml_ip(project: Path) -> Path | None:
    """The IP ``make synth`` exported for the hls4ml project folder ``project``
    (``<ProjectName>_prj/solution1/impl/ip``), or None."""
    ip = Path(project) / f"{paths.HLS_PROJECT_NAME}_prj" / "solution1" / "impl" / "ip"
    return ip if ip.is_dir() else None


def hls4ml_verilog_dirs(spec: NetworkSpec) -> list[tuple[Path, str]]:
    """Where ``make synth`` leaves the exported Verilog of ``spec``'s hls4ml project, as
    (project folder, glob) in the order searched: the spec's backend first, ``impl``
    before ``syn`` (the globs of ``sim/test_vendor_rtl.py``'s ``exported_verilog``)."""
    backends = [spec.target.backend.lower()]
    backends += [b for b in ("vitis", "vivado") if b not in backends]
    return [(paths.build_path("hls", f"{spec.name}_{b}"), f"*_prj/solution1/{stage}/verilog")
            for b in backends for stage in ("impl", "syn")]


def find_hls4ml_verilog(spec: NetworkSpec) -> Path:
    """The first folder of :func:`hls4ml_verilog_dirs` holding ``*.v`` files (one export
    only: the impl and syn copies define the same modules), else :class:`InputNotFound`
    naming where it looked."""
    looked = hls4ml_verilog_dirs(spec)
    for project, pattern in looked:
        for folder in sorted(project.glob(pattern)):
            if folder.is_dir() and any(folder.glob("*.v")):
                return folder
    raise InputNotFound(
        f"--core hls4ml: no Verilog exported by make synth for {spec.name}; looked in "
        + ", ".join(f"{p}/{g}/*.v" for p, g in looked) + f"; run `make synth CONFIG=<the config of "
        f"{spec.name}>` where Vitis HLS or Vivado HLS is installed, or use --core open")


def hls4ml_files(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(Verilog, memory files, Tcl) of an exported verilog folder. The HLS tools write
    ROM contents next to the Verilog (``<rom>.dat``, read by ``$readmemh("./<rom>.dat")``)
    and, for Xilinx IP the RTL instantiates (floating point cores), ``<ip>_ip.tcl``; every
    file that is neither ``.v`` nor ``.tcl`` is taken as a memory file."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    return ([p for p in files if p.suffix == ".v"],
            [p for p in files if p.suffix not in (".v", ".tcl")],
            [p for p in files if p.suffix == ".tcl"])


def wrap_network(spec: NetworkSpec, out_dir: Path, log=print, core: str = "open",
                 hls4ml_dir: Path | None = None) -> Wrapper:
    """Prepare the spec, write its core and the AXI wrapper under ``out_dir/rtl`` (one copy
    per board, so another board's run does not change this project's sources).

    ``core="open"``: the open RTL core (``generate_rtl``). ``core="hls4ml"``: the Verilog
    ``make synth`` exported (``hls4ml_dir``, default :func:`find_hls4ml_verilog`) behind
    the stream adapter ``<core top>_hls4ml`` (``hls/rtl/vendor.py``: one pixel per input
    beat, all class scores in one output beat); the wrapper module keeps its name."""
    from hls.plan.prepare import prepare
    from hls.rtl.axi import REGISTERS, generate_axi_top  # the wrapper (issue #12, part A)

    if core not in CORES:
        raise InputError(f"--core {core!r}: one of {', '.join(CORES)}")
    if core == "hls4ml" and hls4ml_dir is None:
        hls4ml_dir = find_hls4ml_verilog(spec)   # before any work
    prep = prepare(spec, log=log)
    top = paths.top_module_name(spec)
    rtl = Path(out_dir) / "rtl"
    fmt = prep.plan.layers[prep.nodes[-1].name].out_fmt
    data: list[Path] = []
    if core == "open":
        from hls.rtl.generate import generate_rtl

        design = generate_rtl(top, prep.nodes, prep.plan, prep.folding, rtl,
                              source=f"{spec.name} ({spec.variant})",
                              description=f"{spec.height}x{spec.width}x{spec.channels} -> "
                                          f"{spec.classes} classes")
        axi = generate_axi_top(design, prep, rtl)
        core_top = top
    else:
        from hls.rtl.passes import build_design
        from hls.rtl.vendor import write_adapter
        from model.locks import hold as hold_dir

        verilog, data, tcl = hls4ml_files(hls4ml_dir)
        if tcl:
            log(f"warning: {hls4ml_dir} holds Tcl the project does not source (Xilinx IP the "
                f"exported RTL may instantiate): {', '.join(p.name for p in tcl)}")
        rtl = hold_dir(rtl)
        # the open core's stream geometry only (no Verilog, no ROM files of it)
        design = build_design(top, prep.nodes, prep.plan, prep.folding,
                              prep.fifo, rtl / "mem")
        core_top = f"{top}_hls4ml"
        adapter = write_adapter(verilog, paths.HLS_PROJECT_NAME, core_top, rtl,
                                spec.channels, 8, spec.classes, fmt.width)
        axi = generate_axi_top(design, prep, rtl, core_module=core_top,
                               core_lanes=spec.classes, core_sources=[*verilog, adapter])
    logit = {"width": fmt.width, "integer": fmt.integer, "frac": fmt.frac,
             "signed": fmt.signed, "ap": fmt.ap()}
    return Wrapper.from_axi_top(axi, spec.name, core_top,
                                (spec.height, spec.width, spec.channels), logit, REGISTERS,
                                core=core, data_files=data)


# ---------------------------------------------------------------- the scripts


@dataclass(frozen=True)
class BoardScripts:
    board: Board
    out_dir: Path
    project_dir: Path
    project_name: str
    create: Path
    build: Path
    run: Path
    deploy: Path
    bit: Path
    hwh: Path
    xsa: Path
    utilization: Path
    timing: Path
    log: Path

    @property
    def scripts(self) -> list[Path]:
        return [self.create, self.build, self.run]


def _scripts(board: Board, out: Path) -> BoardScripts:
    name = f"sqz_{board.name}"
    return BoardScripts(board, out, out / "vivado", name, out / "create_project.tcl",
                        out / "build.tcl", out / "run.tcl", out / "deploy.json",
                        out / f"{board.name}.bit", out / f"{board.name}.hwh",
                        out / f"{board.name}.xsa", out / "utilization.rpt",
                        out / "timing_summary.rpt", out / "vivado.log")


def _dict(pairs: list[tuple[str, object]]) -> str:
    body = "".join(f"    CONFIG.{k} {_brace(v)} \\\n" for k, v in pairs)
    return f"[list \\\n{body}]"


def _cell(name: str) -> str:
    return f"[get_bd_cells {_brace(name)}]"


def _ipin(cell: str, pin: str) -> str:
    return f"[get_bd_intf_pins {_brace(cell + '/' + pin)}]"


def _pin(cell: str, pin: str) -> str:
    return f"[get_bd_pins {_brace(cell + '/' + pin)}]"


def create_project_tcl(s: BoardScripts, w: Wrapper, clock_mhz: float,
                       ip_repo: Path | None = None) -> str:
    b, ps = s.board, B.PS_CELL
    stream_in, stream_out = 8 * w.in_bytes_per_beat, 8 * w.out_bytes_per_beat
    mem_bits = max(32, stream_in, stream_out)
    hp_bits = min(128, mem_bits)
    mhz = _mhz(clock_mhz)
    sources = "".join(f"    {_brace(p)} \\\n" for p in w.sources)
    lines = [
        f"# Generated by `sqz bitstream` (hls/board/bitstream.py) for {b.title}:",
        f"# {w.spec_name}, core {w.core_top}, wrapped as {w.module}; pl_clk0 at {mhz} MHz.",
        "# Rewritten by every `make bitstream`; run it with run.tcl.",
        "",
        f"create_project {_brace(s.project_name)} {_brace(s.project_dir)} "
        f"-part {_brace(b.part)} -force",
        "# the board files: this version, else the newest installed one of the board",
        f"set board_part [get_board_parts -quiet {_brace(b.board_part)}]",
        "if {[llength $board_part] == 0} {",
        "    set board_part [get_board_parts -quiet -latest_file_version "
        f"{_brace(b.board_part_any_version)}]",
        "}",
        "if {[llength $board_part] == 0} {",
        f"    error {_brace(f'the board files of {b.name} ({b.board_part_any_version}) are not installed: install them from the XHub board store of Vivado and run again')}",  # noqa: E501
        "}",
        "set_property board_part [lindex $board_part 0] [current_project]",
        "set_property target_language Verilog [current_project]",
    ]
    if ip_repo is not None:
        lines += [
            "# the hls4ml core exported by `make synth`, in the IP catalog as the alternative",
            "# core (not wired: the block design uses the open RTL core)",
            f"set_property ip_repo_paths [list {_brace(ip_repo)}] [current_project]",
            "update_ip_catalog",
        ]
    lines += [
        "",
        "# the wrapped network: library modules, core top, AXI shell, wrapper top"
        if w.core == "open" else
        "# the wrapped network: the hls4ml RTL make synth exported, its stream adapter,",
        *([] if w.core == "open" else ["# the AXI shell, the wrapper top"]),
        f"add_files -norecurse [list \\\n{sources}]",
    ]
    if w.data_files:
        data = "".join(f"    {_brace(p)} \\\n" for p in w.data_files)
        lines += [
            "# memory contents of the hls4ml core: the exported RTL reads them with",
            "# $readmemh(\"./<name>.dat\"); synthesis finds them as project files",
            f"add_files -norecurse [list \\\n{data}]",
        ]
    lines += [
        "update_compile_order -fileset sources_1",
        "",
        f"create_bd_design {_brace(BD_NAME)}",
        "",
        "# Zynq UltraScale+ PS: board preset, HPM0 FPD (control), HP0 FPD (DMA memory),",
        "# pl_clk0 at the spec's clock, one fabric reset",
        f"create_bd_cell -type ip -vlnv {_brace(B.PS_VLNV)} {_brace(ps)}",
        f"apply_bd_automation -rule {_brace(B.PS_RULE)} -config {{apply_board_preset 1}} "
        f"{_cell(ps)}",
        "set_property -dict " + _dict(
            [(B.PS_CONFIG_MASTER, 1)] + [(k, 0) for k in B.PS_CONFIG_OFF]
            + [(B.PS_CONFIG_HP, 1), (B.PS_CONFIG_HP_WIDTH, hp_bits), (B.PS_CONFIG_PL0, 1),
               (B.PS_CONFIG_FABRIC_RESET, 1), (B.PS_CONFIG_PL0_MHZ, mhz)]) + f" {_cell(ps)}",
        "",
        "# the network behind its AXI wrapper (module reference)",
        f"create_bd_cell -type module -reference {_brace(w.module)} {_brace(CELL_CORE)}",
        "",
        "# AXI DMA, simple mode: MM2S feeds the frame, S2MM takes the scores",
        f"create_bd_cell -type ip -vlnv {_brace(DMA_VLNV)} {_brace(CELL_DMA)}",
        "set_property -dict " + _dict([
            ("c_include_sg", 0), ("c_sg_length_width", DMA_LENGTH_BITS),
            ("c_addr_width", DMA_ADDR_BITS),
            ("c_m_axi_mm2s_data_width", mem_bits), ("c_m_axis_mm2s_tdata_width", stream_in),
            ("c_mm2s_burst_size", DMA_BURST), ("c_m_axi_s2mm_data_width", mem_bits),
            ("c_s_axis_s2mm_tdata_width", stream_out), ("c_s2mm_burst_size", DMA_BURST),
        ]) + f" {_cell(CELL_DMA)}",
        "",
        "# interconnect: HPM0 -> AXI-Lite of the DMA and the wrapper; DMA masters -> HP0",
        f"create_bd_cell -type ip -vlnv {_brace(SMARTCONNECT_VLNV)} {_brace(CELL_CTRL_BUS)}",
        "set_property -dict " + _dict([("NUM_SI", 1), ("NUM_MI", 2)])
        + f" {_cell(CELL_CTRL_BUS)}",
        f"create_bd_cell -type ip -vlnv {_brace(SMARTCONNECT_VLNV)} {_brace(CELL_MEM_BUS)}",
        "set_property -dict " + _dict([("NUM_SI", 2), ("NUM_MI", 1)])
        + f" {_cell(CELL_MEM_BUS)}",
        f"create_bd_cell -type ip -vlnv {_brace(RESET_VLNV)} {_brace(CELL_RESET)}",
        "",
    ]
    intf = [((CELL_DMA, "M_AXIS_MM2S"), (CELL_CORE, WRAPPER_STREAM_IN)),
            ((CELL_CORE, WRAPPER_STREAM_OUT), (CELL_DMA, "S_AXIS_S2MM")),
            ((ps, B.PS_MASTER), (CELL_CTRL_BUS, "S00_AXI")),
            ((CELL_CTRL_BUS, "M00_AXI"), (CELL_DMA, "S_AXI_LITE")),
            ((CELL_CTRL_BUS, "M01_AXI"), (CELL_CORE, WRAPPER_CTRL)),
            ((CELL_DMA, "M_AXI_MM2S"), (CELL_MEM_BUS, "S00_AXI")),
            ((CELL_DMA, "M_AXI_S2MM"), (CELL_MEM_BUS, "S01_AXI")),
            ((CELL_MEM_BUS, "M00_AXI"), (ps, B.PS_HP))]
    lines += [f"connect_bd_intf_net {_ipin(*a)} {_ipin(*z)}" for a, z in intf]
    clocked = [(ps, B.PS_MASTER_CLOCK), (ps, B.PS_HP_CLOCK), (CELL_CORE, WRAPPER_CLOCK),
               (CELL_DMA, "s_axi_lite_aclk"), (CELL_DMA, "m_axi_mm2s_aclk"),
               (CELL_DMA, "m_axi_s2mm_aclk"), (CELL_CTRL_BUS, "aclk"), (CELL_MEM_BUS, "aclk"),
               (CELL_RESET, "slowest_sync_clk")]
    lines += [
        "",
        "# one clock (pl_clk0) and its synchronised resets",
        "connect_bd_net " + " ".join(_pin(*p) for p in [(ps, B.PS_CLOCK)] + clocked),
        f"connect_bd_net {_pin(ps, B.PS_RESET)} {_pin(CELL_RESET, 'ext_reset_in')}",
        f"connect_bd_net {_pin(CELL_RESET, 'peripheral_aresetn')} "
        f"{_pin(CELL_CORE, WRAPPER_RESET)} {_pin(CELL_DMA, 'axi_resetn')}",
        f"connect_bd_net {_pin(CELL_RESET, 'interconnect_aresetn')} "
        f"{_pin(CELL_CTRL_BUS, 'aresetn')} {_pin(CELL_MEM_BUS, 'aresetn')}",
        "",
        "# address map, checks, HDL wrapper as the project top",
        "assign_bd_address",
        "validate_bd_design",
        "save_bd_design",
        f"set bd_file [get_files {_brace(BD_NAME + '.bd')}]",
        "generate_target all $bd_file",
        "add_files -norecurse [make_wrapper -files $bd_file -top]",
        f"set_property top {_brace(BD_NAME + '_wrapper')} [current_fileset]",
        "update_compile_order -fileset sources_1",
        "",
    ]
    return "\n".join(lines)


def build_tcl(s: BoardScripts, jobs: int = DEFAULT_JOBS) -> str:
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= 64:
        raise InputError(f"jobs: an integer 1..64, got {jobs!r}")
    xpr = s.project_dir / f"{s.project_name}.xpr"
    runs = s.project_dir / f"{s.project_name}.runs"

    def run(name: str, extra: str, what: str) -> list[str]:
        return [f"launch_runs {name}{extra} -jobs {jobs}",
                f"wait_on_run {name}",
                f"if {{[get_property PROGRESS [get_runs {name}]] ne {{100%}}}} {{",
                f"    error {_brace(f'{what} failed: see {runs}/{name}/runme.log')}",
                "}"]

    lines = [
        f"# Generated by `sqz bitstream` for {s.board.title}: synthesis, implementation,",
        "# bitstream, reports, and the .bit / .hwh pair PYNQ loads.",
        "",
        "if {[llength [get_projects -quiet]] == 0} {",
        f"    open_project {_brace(xpr)}",
        "}",
        *run("synth_1", "", "synthesis"),
        *run("impl_1", " -to_step write_bitstream", "implementation"),
        "open_run impl_1",
        f"report_utilization -file {_brace(s.utilization)}",
        f"report_timing_summary -max_paths 10 -file {_brace(s.timing)}",
        "set bit [glob -nocomplain -directory [get_property DIRECTORY [get_runs impl_1]] *.bit]",
        "if {[llength $bit] != 1} {",
        f"    error {_brace(f'expected one .bit file in {runs}/impl_1')}",
        "}",
        f"file copy -force [lindex $bit 0] {_brace(s.bit)}",
        "# the hardware handoff: <project>.gen/... (Vivado 2020.2 on), <project>.srcs/... before",
        f"set hwh [lsort [glob -nocomplain -directory {_brace(s.project_dir)} -join * "
        f"sources_1 bd {BD_NAME} hw_handoff {BD_NAME}.hwh]]",
        "if {[llength $hwh] == 0} {",
        f"    error {_brace(f'no {BD_NAME}.hwh under {s.project_dir}')}",
        "}",
        f"file copy -force [lindex $hwh 0] {_brace(s.hwh)}",
        f"write_hw_platform -fixed -include_bit -force -file {_brace(s.xsa)}",
        f"puts {_brace(f'sqz: wrote {s.bit} and {s.hwh}')}",
        "",
    ]
    return "\n".join(lines)


def write_board_project(board: Board, wrapper: Wrapper, clock_mhz: float,
                        out_dir: Path | None = None, ip_repo: Path | None = None,
                        jobs: int = DEFAULT_JOBS) -> BoardScripts:
    """Check every value, then write the scripts and ``deploy.json`` to ``out_dir``
    (default ``build/board/<board>``, which must lie inside the build folder)."""
    board = B.board_info(board.name) if isinstance(board, Board) else B.board_info(board)
    out = paths.build_path(out_dir) if out_dir is not None else board_dir(board)
    check_tcl_path("output folder", out)
    wrapper.check()
    if ip_repo is not None:
        check_tcl_path("hls4ml IP folder", ip_repo)
    s = _scripts(board, out)
    texts = {s.create: create_project_tcl(s, wrapper, clock_mhz, ip_repo),
             s.build: build_tcl(s, jobs),
             s.run: (f"# `vivado -mode batch -source {s.run}`\n"
                     f"source {_brace(s.create)}\nsource {_brace(s.build)}\n")}
    deploy = {"board": board.name, "part": board.part, "board_part": board.board_part,
              "clock_mhz": float(_mhz(clock_mhz)),
              "cells": {"core": CELL_CORE, "dma": CELL_DMA, "ps": B.PS_CELL},
              "bitstream": s.bit.name, "hwh": s.hwh.name, **wrapper.deploy()}
    hold(out)   # one run at a time writes this board's folder (model.locks)
    for path, text in texts.items():
        path.write_text(text)
    s.deploy.write_text(json.dumps(deploy, indent=2) + "\n")
    return s


# ---------------------------------------------------------------- running Vivado


def find_vivado(s: BoardScripts) -> str:
    """``vivado`` on PATH, else :class:`ToolNotFound` in one line naming it and the scripts."""
    found = shutil.which("vivado")
    if found:
        return found
    raise ToolNotFound(
        f"no Vivado on PATH: looked for vivado. The project scripts are written "
        f"({s.create.name}, {s.build.name}, {s.run.name}, {s.deploy.name} in {s.out_dir}); "
        "source <Xilinx install>/Vivado/<version>/settings64.sh and run `make bitstream "
        f"BOARD={s.board.name}` again, or `vivado -mode batch -source {s.run}`")


UTILIZATION_ROWS = {"LUT": ("CLB LUTs", "Slice LUTs"),
                    "FF": ("CLB Registers", "Slice Registers"),
                    "BRAM": ("Block RAM Tile",),
                    "URAM": ("URAM",),
                    "DSP": ("DSPs",)}


@dataclass(frozen=True)
class Usage:
    used: float
    available: float
    percent: float


def parse_utilization(text: str) -> dict[str, Usage]:
    """LUT, FF, BRAM (36 Kb tiles), URAM and DSP of a ``report_utilization`` report: the
    first table row of each (``| CLB LUTs | used | fixed | [prohibited |] available |
    util% |``)."""
    out: dict[str, Usage] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not line.lstrip().startswith("|"):
            continue
        label = cells[0].rstrip("*").strip()
        for key, names in UTILIZATION_ROWS.items():
            if key in out or label not in names:
                continue
            try:
                nums = [float(c.lstrip("<")) for c in cells[1:]]
            except ValueError:
                continue
            out[key] = Usage(nums[0], nums[-2], nums[-1])
    return out


def parse_timing_summary(text: str) -> dict[str, float]:
    """WNS, TNS, WHS, THS (ns) of the ``Design Timing Summary`` of
    ``report_timing_summary``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "WNS(ns)" not in line:
            continue
        heads = re.split(r"\s{2,}", line.strip())
        for row in lines[i + 1:i + 4]:
            vals = row.split()
            if len(vals) == len(heads) and all(re.fullmatch(r"-?\d+(\.\d+)?", v) or v == "NA"
                                               for v in vals):
                got = dict(zip(heads, vals, strict=True))
                return {k.replace("(ns)", ""): float(v) for k, v in got.items()
                        if k.endswith("(ns)") and k[:3] in ("WNS", "TNS", "WHS", "THS")
                        and v != "NA"}
    raise InputError("no Design Timing Summary (WNS) in the timing report")


@dataclass
class VivadoResult:
    scripts: BoardScripts
    utilization: dict[str, Usage]
    timing: dict[str, float]
    seconds: float

    @property
    def timing_met(self) -> bool:
        return self.timing.get("WNS", -1.0) >= 0 and self.timing.get("WHS", 0.0) >= 0

    def format(self) -> str:
        s = self.scripts
        lines = [f"Vivado on {s.board.name} ({s.board.part}): {self.seconds / 60:.0f} min; "
                 f"reports {s.utilization}, {s.timing}"]
        for key in ("LUT", "FF", "BRAM", "URAM", "DSP"):
            u = self.utilization.get(key)
            if u is not None:
                lines.append(f"  {key:<5} {u.used:>12,g} / {u.available:>10,g} "
                             f"({u.percent:.1f}%)")
        t = self.timing
        lines.append(f"  timing: WNS {t.get('WNS', math.nan):.3f} ns, TNS "
                     f"{t.get('TNS', math.nan):.3f} ns, WHS {t.get('WHS', math.nan):.3f} ns: "
                     + ("met" if self.timing_met else "NOT met"))
        lines.append(f"bitstream: {s.bit} with {s.hwh} (PYNQ: Overlay of the .bit), "
                     f"{s.xsa}, {s.deploy}")
        return "\n".join(lines)



def run_vivado(vivado: str, s: BoardScripts, log=print) -> VivadoResult:
    """``vivado -mode batch -source run.tcl`` in the board folder; its log in
    ``vivado.log``; then the reports, read."""
    argv = [vivado, "-mode", "batch", "-nojournal", "-log", str(s.log), "-source", str(s.run)]
    console = s.out_dir / "vivado.out"
    for stale in (s.bit, s.hwh, s.utilization, s.timing):
        stale.unlink(missing_ok=True)
    log(f"== Vivado: {' '.join(argv)} (log {s.log}; hours for the full network)")
    t0 = time.perf_counter()
    with open(console, "w") as out:
        proc = subprocess.Popen(argv, cwd=s.out_dir, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait()
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
            raise
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise ToolFailed(f"vivado failed with exit status {rc} after {seconds:.0f} s; last "
                         f"lines of {s.log}:\n"
                         + tail_text(s.log if s.log.is_file() else console, 30))
    missing = [p for p in (s.bit, s.hwh, s.utilization, s.timing) if not p.is_file()]
    if missing:
        raise ToolFailed(f"vivado exited 0 but did not write {', '.join(map(str, missing))}; "
                         f"see {s.log}")
    return VivadoResult(s, parse_utilization(s.utilization.read_text(errors="replace")),
                        parse_timing_summary(s.timing.read_text(errors="replace")), seconds)
