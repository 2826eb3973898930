"""The AXI top of a generated network: the core behind a 64-bit AXI4-Stream pair (what an
AXI DMA's MM2S and S2MM channels speak) and an AXI4-Lite register slave.

``generate_axi_top`` renders ``firmware/rtl/sqz_axi_top.v.j2`` to ``<out_dir>/<core
top>_axi.v``: module ``<core top>_axi``, the generic shell ``firmware/rtl/sqz_axi_shell.v``
(byte framing with TKEEP, a byte gearbox into the core, the score serialiser, the
registers) around the core top ``generate_rtl`` wrote. ``REGISTERS`` is the register map's
one Python copy: the top passes every offset to the shell as a parameter, so the Verilog
and the driver read the same numbers. ``shell_cost`` runs Yosys on the shell alone (the
core a black box) for a config.

Stream formats (the issue #12 contract): input bytes are the frame's pixels row-major,
``pix_bytes`` per pixel, byte k in ``tdata[8*(k%8) +: 8]`` of beat k//8 counting kept bytes;
output is ``classes`` scores per frame, each in a ``field_bits``-bit little-endian field
(sign-extended when the scores are signed), class 0 lowest, TLAST on the last beat, TKEEP
marking the valid bytes of a partial last beat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hls.plan.prepare import Prepared
from hls.rtl.passes import RtlDesign
from model.errors import InputError
from model.locks import hold
from model.paths import RTL_DIR

TEMPLATE = "sqz_axi_top.v.j2"
SHELL = "sqz_axi_shell"

# 32-bit registers, byte offsets (AXI4-Lite, 12-bit address)
REGISTERS: dict[str, int] = {
    "ID": 0x00,              # R: ID_VALUE
    "VERSION": 0x04,         # R: VERSION_VALUE
    "CONTROL": 0x08,         # W: bit0 SOFT_RESET; reads 0
    "STATUS": 0x0C,          # R, W1C: STATUS_BITS
    "FRAMES_IN": 0x10,       # R: frames received with the right length
    "FRAMES_OUT": 0x14,      # R: frames whose last output beat was sent
    "FRAMES_DROPPED": 0x18,  # R: short + long frames (scores not sent)
    "LAST_LATENCY": 0x1C,    # R: cycles, first input beat -> last output beat (last sent)
    "LAST_INTERVAL": 0x20,   # R: cycles between the last output beats of the last two sent
    "FRAME_BYTES": 0x24,     # R: input bytes per frame
    "OUT_BYTES": 0x28,       # R: output bytes per frame
    "OUT_FORMAT": 0x2C,      # R: [15:0] classes, [23:16] field, [30:24] score bits, [31] signed
    "CYCLES": 0x30,          # R: free-running cycle counter (low 32 bits)
}
ID_VALUE = 0x53515A4E        # "SQZN"
VERSION_VALUE = 0x00010000   # major 1, minor 0
CONTROL_SOFT_RESET = 1 << 0
# STATUS bits; ERR_SHORT and ERR_LONG are sticky and cleared by writing 1 to them
STATUS_BITS: dict[str, int] = {"ERR_SHORT": 0, "ERR_LONG": 1, "IN_FRAME": 2, "PADDING": 3,
                               "OUT_FRAME": 4, "RESETTING": 5}
SOFT_RESET_CYCLES = 16
# Frames the shell tracks from first input beat to last core output beat. The core holds
# about latency / interval frames at once (tiny: 23,772 / 15,684 cycles); 16 leaves room,
# so the limit never throttles it, at 16 x 33 bits of FIFO.
FLIGHT = 16
BYTES_PER_BEAT = 8
FIELD_CHOICES = (8, 16, 32)
# Verilog identifiers that reach the template (module names)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
LITE_PORTS = ("awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
              "bresp", "bvalid", "bready", "araddr", "arprot", "arvalid", "arready", "rdata",
              "rresp", "rvalid", "rready")


def field_bits(score_bits: int) -> int:
    """The narrowest output field (8, 16 or 32 bits) that holds a ``score_bits`` score."""
    for f in FIELD_CHOICES:
        if score_bits <= f:
            return f
    raise InputError(f"class scores of {score_bits} bits do not fit a 32-bit output field")


def out_format_word(classes: int, field: int, score_bits: int, signed: bool) -> int:
    """The OUT_FORMAT register value."""
    return (int(signed) << 31) | (score_bits << 24) | (field << 16) | classes


def check_identifier(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise InputError(f"{what} {name!r} is not a plain Verilog identifier "
                         "([A-Za-z_][A-Za-z0-9_]*, at most 128 characters)")
    return name


def axi_module_name(core_top: str) -> str:
    return check_identifier(f"{check_identifier(core_top, 'core top')}_axi", "AXI top")


@dataclass(frozen=True)
class AxiTop:
    """The rendered AXI top and the stream formats the board side needs."""

    module: str              # <core top>_axi
    path: Path               # the rendered Verilog
    core: str                # the core top's module name
    sources: list[Path]      # library modules, core top, shell, this top (in that order)
    frame_bytes: int         # input bytes per frame (H * W * C)
    pix_bytes: int           # bytes per pixel (C), one core input beat
    out_bytes: int           # output bytes per frame (classes * field_bits / 8)
    field_bits: int
    score_bits: int
    score_signed: bool
    classes: int
    core_lanes: int          # scores per core output beat
    in_bytes_per_beat: int = BYTES_PER_BEAT
    out_bytes_per_beat: int = BYTES_PER_BEAT

    @property
    def out_format(self) -> int:
        return out_format_word(self.classes, self.field_bits, self.score_bits,
                               self.score_signed)

    @property
    def in_beats(self) -> int:
        """64-bit beats of a frame sent with every byte kept."""
        return -(-self.frame_bytes // self.in_bytes_per_beat)

    @property
    def out_beats(self) -> int:
        return -(-self.out_bytes // self.out_bytes_per_beat)


def _formats(design: RtlDesign, prep: Prepared) -> dict:
    """Frame and score geometry of the core, checked against the plan."""
    s_in, s_out = design.streams[design.in_stream], design.streams[design.out_stream]
    last = prep.nodes[-1]
    fmt = prep.plan.layers[last.name].out_fmt
    classes = last.out_shape[2]
    if s_in.bits != 8:
        raise InputError(f"{design.top}: the input stream carries {s_in.bits}-bit elements; "
                         "the AXI shell feeds bytes")
    if s_out.bits != fmt.width or s_out.channels != classes or classes % s_out.lanes:
        raise InputError(f"{design.top}: output stream ({s_out.lanes} x {s_out.bits} bits, "
                         f"{s_out.channels} channels) does not match {classes} scores of "
                         f"{fmt.width} bits")
    return {"frame_bytes": s_in.pixels * s_in.lanes, "pix_bytes": s_in.lanes,
            "classes": classes, "core_lanes": s_out.lanes, "score_bits": fmt.width,
            "score_signed": bool(fmt.signed), "field_bits": field_bits(fmt.width)}


def _hex(value: int, bits: int) -> str:
    return f"{bits}'h{value:0{-(-bits // 4)}X}"


def shell_parameters(axi: AxiTop) -> dict[str, str]:
    """The shell's parameters as Verilog literals: formats, constants and register map."""
    params = {
        "FRAME_BYTES": str(axi.frame_bytes), "PIX_BYTES": str(axi.pix_bytes),
        "CLASSES": str(axi.classes), "CORE_LANES": str(axi.core_lanes),
        "SCORE_BITS": str(axi.score_bits), "SCORE_SIGNED": str(int(axi.score_signed)),
        "FIELD_BITS": str(axi.field_bits), "FLIGHT": str(FLIGHT),
        "SOFT_RESET_CYCLES": str(SOFT_RESET_CYCLES),
        "ID_VALUE": _hex(ID_VALUE, 32), "VERSION_VALUE": _hex(VERSION_VALUE, 32),
    }
    for name, offset in REGISTERS.items():
        params[f"ADDR_{name}"] = _hex(offset, 12)
    return params


def render_axi_top(axi: AxiTop, source: str = "") -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(RTL_DIR)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    check_identifier(axi.module, "AXI top")
    check_identifier(axi.core, "core top")
    return env.get_template(TEMPLATE).render(
        module=axi.module, core=axi.core, source=re.sub(r"[^\x20-\x7e]", "?", source),
        shell=shell_parameters(axi), lite_ports=LITE_PORTS, frame_bytes=axi.frame_bytes,
        pix_bytes=axi.pix_bytes, classes=axi.classes, score_bits=axi.score_bits,
        score_signed=axi.score_signed, field_bits=axi.field_bits, out_bytes=axi.out_bytes,
        core_lanes=axi.core_lanes)


def generate_axi_top(design: RtlDesign, prep: Prepared, out_dir: Path,
                     core_path: Path | None = None, core_module: str | None = None,
                     core_lanes: int | None = None,
                     core_sources: list[Path] | None = None) -> AxiTop:
    """Write ``<out_dir>/<core top>_axi.v`` around the core ``design`` (whose Verilog is
    ``core_path``, by default ``<out_dir>/<core top>.v`` as ``generate_rtl`` wrote it).

    Another core with the open core's ports (the vendor adapter of ``hls/rtl/vendor.py``):
    ``core_module`` names it, ``core_lanes`` is its scores per output beat (the adapter:
    all classes in one beat), ``core_sources`` its Verilog files in order (they replace
    the open core's library modules and ``core_path``). The module stays
    ``<design top>_axi`` and ``design`` still gives the stream geometry."""
    out_dir = hold(out_dir)   # one run at a time writes this folder (model.locks)
    module = axi_module_name(design.top)
    core = check_identifier(core_module or design.top, "core top")
    if core_sources is not None:
        lib = [Path(s) for s in core_sources]
        missing = [str(s) for s in lib if not s.is_file()]
        if not lib or missing:
            raise InputError(f"core {core}: Verilog source(s) missing: "
                             + (", ".join(missing) or "none given"))
    else:
        core_path = Path(core_path) if core_path else out_dir / f"{design.top}.v"
        if not core_path.is_file():
            raise InputError(f"no core top {core_path} (generate the RTL first: "
                             "hls.rtl.generate.generate_rtl)")
        lib = [*design.sources(), core_path]
    f = _formats(design, prep)
    if core_lanes is not None:
        if not 0 < core_lanes <= f["classes"] or f["classes"] % core_lanes:
            raise InputError(f"core {core}: {core_lanes} scores per beat do not divide "
                             f"{f['classes']} classes")
        f["core_lanes"] = int(core_lanes)
    path = out_dir / f"{module}.v"
    axi = AxiTop(module=module, path=path, core=core,
                 sources=[*lib, RTL_DIR / f"{SHELL}.v", path],
                 out_bytes=f["classes"] * f["field_bits"] // 8, **f)
    path.write_text(render_axi_top(axi, source=f"{prep.spec.name} ({core})"))
    return axi


# ------------------------------------------------------------------------- cost (Yosys)

def blackbox_core(core: str, in_bits: int, out_bits: int) -> str:
    """A black-box module with the core's ports (``in_bits`` / ``out_bits`` wide beats):
    Yosys then counts the shell alone."""
    return (f"(* blackbox *)\nmodule {check_identifier(core, 'core top')} (\n"
            "    input wire clk, input wire rst,\n"
            f"    input wire [{int(in_bits) - 1}:0] s_axis_tdata,\n"
            "    input wire s_axis_tlast, input wire s_axis_tvalid, output wire s_axis_tready,\n"
            f"    output wire [{int(out_bits) - 1}:0] m_axis_tdata,\n"
            "    output wire m_axis_tlast, output wire m_axis_tvalid, input wire m_axis_tready\n"
            ");\nendmodule\n")


def synthesize_shell(axi: AxiTop, part: str, work_dir: Path, log=print):
    """Yosys ``synth_xilinx`` of the AXI top with the core a black box: the shell's LUT,
    FF, block RAM and DSP (``hls.rtl.yosys.Resources``)."""
    from hls.rtl.yosys import synthesize

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    stub = work_dir / f"{axi.core}_blackbox.v"
    stub.write_text(blackbox_core(axi.core, axi.pix_bytes * 8, axi.core_lanes * axi.score_bits))
    top = work_dir / f"{axi.module}.v"
    if top.resolve() != axi.path.resolve():
        top.write_text(axi.path.read_text())
    return synthesize([stub, RTL_DIR / f"{SHELL}.v", top], axi.module, part, work_dir, log=log)


def shell_cost(config: Path, work_dir: Path | None = None, log=print):
    """The shell's resources for a config (``python -m hls.rtl.axi configs/x.yaml``): the
    plan and the core's block graph (no ROM files), the AXI top rendered into
    ``work_dir`` (default ``build/axi_cost/<spec>``) with a black-box core, then Yosys."""
    from hls.plan.prepare import prepare
    from hls.rtl.passes import build_design
    from model import paths
    from model.spec import load_spec

    spec = load_spec(Path(config))
    prep = prepare(spec, log=log)
    work_dir = Path(work_dir) if work_dir else paths.build_path("axi_cost", spec.name)
    work_dir.mkdir(parents=True, exist_ok=True)
    top = paths.top_module_name(spec)
    design = build_design(top, prep.nodes, prep.plan, prep.folding,
                          prep.fifo, work_dir / "mem")
    s_in, s_out = design.streams[design.in_stream], design.streams[design.out_stream]
    stub = work_dir / f"{top}.v"   # stands for the core file generate_rtl would write
    stub.write_text(blackbox_core(top, s_in.width, s_out.width))
    axi = generate_axi_top(design, prep, work_dir, core_path=stub)
    return axi, synthesize_shell(axi, spec.target.part, work_dir / "yosys", log=log)


if __name__ == "__main__":
    import sys

    from hls.plan.parts import part_info
    from model.spec import load_spec

    for cfg in sys.argv[1:] or ["configs/squeezenet_v1_1.yaml"]:
        axi, res = shell_cost(Path(cfg))
        print(f"{axi.module}: shell FRAME_BYTES={axi.frame_bytes} CLASSES={axi.classes} "
              f"CORE_LANES={axi.core_lanes} SCORE_BITS={axi.score_bits} "
              f"FIELD_BITS={axi.field_bits}")
        print(res.format(part_info(load_spec(Path(cfg)).target.part)))
