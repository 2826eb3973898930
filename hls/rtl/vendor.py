"""Adapter between the RTL a vendor HLS tool exports for the hls4ml project and the open
RTL's stream ports, so one whole-network testbench checks both.

The hls4ml top (``squeezenet(hls::stream<input_t>&, hls::stream<result_t>&)`` with
``#pragma HLS INTERFACE axis``) comes out of the tools in one of two port styles:

- Vitis HLS aggregates the ``nnet::array`` element type: one AXI-Stream per argument,
  ``<arg>_TDATA`` (all elements packed, element 0 in the low bits, padded to whole bytes),
  ``<arg>_TVALID``, ``<arg>_TREADY``;
- Vivado HLS keeps one AXI-Stream per array element: ``<arg>_V_data_<i>_V_TDATA`` /
  ``_TVALID`` / ``_TREADY``.

Either way there is no TLAST, a block-level protocol (``ap_start`` ... ``ap_ctrl_hs`` or
``ap_ctrl_chain``) in which one call processes one frame, and a clock/reset pair
(``ap_clk``, ``ap_rst_n`` or ``ap_rst``). The adapter holds ``ap_start`` (and
``ap_continue``) high so calls follow each other, hands each input beat to every element
stream, gathers the output element streams into one beat of all class scores, and counts
output beats to make TLAST. Ports it does not know make it stop with their names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Port:
    name: str
    direction: str   # input / output / inout
    width: int


@dataclass
class Channel:
    """One AXI-Stream of the vendor top: data, valid and ready port names."""

    data: Port
    valid: str
    ready: str


@dataclass
class VendorInterface:
    module: str
    clock: str
    reset: str
    reset_active_low: bool
    inputs: list[Channel] = field(default_factory=list)    # one per element (or packed)
    outputs: list[Channel] = field(default_factory=list)
    start: list[str] = field(default_factory=list)         # ap_start, ap_continue
    ignored: list[Port] = field(default_factory=list)      # ap_done, ap_idle, ap_ready ...

    @property
    def ignored_outputs(self) -> list[str]:
        return [p.name for p in self.ignored]


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def parse_ports(text: str, module: str) -> list[Port]:
    """The ports of ``module`` in Verilog ``text`` (ANSI or non-ANSI declarations, numeric
    ranges as the HLS tools write them)."""
    text = _strip_comments(text)
    m = re.search(rf"\bmodule\s+{re.escape(module)}\b(.*?)\bendmodule\b", text, re.S)
    if not m:
        raise ValueError(f"module {module!r} not found")
    body = m.group(1)
    ports: dict[str, Port] = {}
    decl = re.compile(r"(input|output|inout)\b\s*(?:wire|reg|logic)?\s*(?:signed\b)?\s*"
                      r"(?:\[\s*(\d+)\s*:\s*(\d+)\s*\])?\s*([A-Za-z_][\w$]*)$")
    ident = re.compile(r"[A-Za-z_][\w$]*")
    current: tuple[str, int] | None = None   # the declaration a bare name continues
    for item, sep in re.findall(r"([^;,()]*)([;,()]|$)", body):
        item = " ".join(item.split())
        d = decl.fullmatch(item)
        if d:
            direction, hi, lo, name = d.groups()
            width = abs(int(hi) - int(lo)) + 1 if hi else 1
            current = (direction, width)
            ports[name] = Port(name, direction, width)
        elif current and ident.fullmatch(item):
            ports[item] = Port(item, *current)   # input a, b;
        elif item:
            current = None
        if sep in (";", "(", ")"):
            current = None
    if not ports:
        raise ValueError(f"module {module!r}: no port declarations found")
    return list(ports.values())


def find_interface(ports: list[Port], module: str) -> VendorInterface:
    """Recognise clock, reset, block control and the two stream arguments."""
    by_name = {p.name: p for p in ports}
    used: set[str] = set()

    def take(name: str) -> str:
        used.add(name)
        return name

    if "ap_clk" not in by_name:
        raise ValueError(f"{module}: no ap_clk port (ports: {', '.join(by_name)})")
    if "ap_rst_n" in by_name:
        reset, low = take("ap_rst_n"), True
    elif "ap_rst" in by_name:
        reset, low = take("ap_rst"), False
    else:
        raise ValueError(f"{module}: no ap_rst_n / ap_rst port (ports: {', '.join(by_name)})")
    iface = VendorInterface(module, take("ap_clk"), reset, low)
    for ctl in ("ap_start", "ap_continue"):
        if ctl in by_name:
            iface.start.append(take(ctl))
    streams: dict[str, list[tuple[int, Channel]]] = {}
    for p in ports:
        m = re.fullmatch(r"(.+?)(?:_V_data_(\d+)_V)?_TDATA", p.name)
        if not m:
            continue
        base = p.name[: -len("_TDATA")]
        valid, ready = f"{base}_TVALID", f"{base}_TREADY"
        if valid not in by_name or ready not in by_name:
            raise ValueError(f"{module}: {p.name} without {valid} / {ready}")
        streams.setdefault(m.group(1), []).append(
            (int(m.group(2) or 0), Channel(p, take(valid), take(ready))))
        take(p.name)
    for name, chans in streams.items():
        chans.sort(key=lambda c: c[0])
        if [i for i, _ in chans] != list(range(len(chans))):
            raise ValueError(f"{module}: stream {name} has element indices "
                             f"{[i for i, _ in chans]}, expected 0..{len(chans) - 1}")
        directions = {c.data.direction for _, c in chans}
        if directions == {"input"}:
            target = iface.inputs
        elif directions == {"output"}:
            target = iface.outputs
        else:
            raise ValueError(f"{module}: stream {name} mixes directions")
        if target:
            raise ValueError(f"{module}: more than one {directions.pop()} stream "
                             f"(the hls4ml top has one input and one output)")
        target.extend(c for _, c in chans)
    if not iface.inputs or not iface.outputs:
        raise ValueError(f"{module}: needs one input and one output AXI-Stream "
                         f"(<name>_TDATA/_TVALID/_TREADY); ports: {', '.join(by_name)}")
    rest = [p for p in ports if p.name not in used]
    unknown = [p.name for p in rest if p.direction != "output"]
    if unknown:
        raise ValueError(f"{module}: input port(s) the adapter does not know how to drive: "
                         f"{', '.join(unknown)}")
    iface.ignored = rest
    return iface


def adapter_verilog(iface: VendorInterface, wrapper: str, in_lanes: int, in_bits: int,
                    out_lanes: int, out_bits: int, beats_per_frame: int = 1) -> str:
    """A module ``wrapper`` with the open RTL's ports around the vendor top.

    Input beats carry ``in_lanes`` elements of ``in_bits`` (one pixel); output beats carry
    ``out_lanes`` elements of ``out_bits`` and ``beats_per_frame`` of them make a frame.
    """
    e_in, e_out = len(iface.inputs), len(iface.outputs)
    if e_in not in (1, in_lanes):
        raise ValueError(f"{iface.module}: {e_in} input element streams for {in_lanes} "
                         "elements per pixel")
    if e_out not in (1, out_lanes):
        raise ValueError(f"{iface.module}: {e_out} output element streams for {out_lanes} "
                         "elements per beat")
    per_in = in_lanes // e_in
    per_out = out_lanes // e_out
    for c in iface.inputs:
        if c.data.width < per_in * in_bits:
            raise ValueError(f"{c.data.name} is {c.data.width} bits, narrower than "
                             f"{per_in} x {in_bits}")
    for c in iface.outputs:
        if c.data.width < per_out * out_bits:
            raise ValueError(f"{c.data.name} is {c.data.width} bits, narrower than "
                             f"{per_out} x {out_bits}")
    in_w, out_w = in_lanes * in_bits, out_lanes * out_bits
    cw = max(1, (beats_per_frame - 1).bit_length())
    lines = [
        "// Generated by hls/vendor_rtl.py -- adapter from the vendor-exported hls4ml top",
        f"// {iface.module} to the open RTL's stream ports (see the module doc there).",
        "`resetall", "`timescale 1ns / 1ps", "`default_nettype none", "",
        f"module {wrapper} (",
        "    input  wire clk,", "    input  wire rst,",
        f"    input  wire [{in_w - 1}:0] s_axis_tdata,", "    input  wire s_axis_tlast,",
        "    input  wire s_axis_tvalid,", "    output wire s_axis_tready,",
        f"    output wire [{out_w - 1}:0] m_axis_tdata,", "    output wire m_axis_tlast,",
        "    output wire m_axis_tvalid,", "    input  wire m_axis_tready", ");", "",
        "wire unused_tlast = s_axis_tlast;", "",
        "// Every input beat goes to each element stream once.",
        f"reg [{e_in - 1}:0] in_taken_reg;",
        f"wire [{e_in - 1}:0] in_ready;",
        f"wire [{e_in - 1}:0] in_valid = {{{e_in}{{s_axis_tvalid}}}} & ~in_taken_reg;",
        "assign s_axis_tready = &(in_taken_reg | in_ready);",
        "always @(posedge clk) begin",
        "    if (rst || (s_axis_tvalid && s_axis_tready)) begin",
        f"        in_taken_reg <= {e_in}'d0;",
        "    end else begin",
        "        in_taken_reg <= in_taken_reg | (in_valid & in_ready);",
        "    end", "end", "",
        "// Output element streams are gathered into one beat.",
        f"reg [{e_out - 1}:0] out_got_reg;",
        f"reg [{out_w - 1}:0] out_data_reg;",
        f"wire [{e_out - 1}:0] out_valid;",
        f"wire [{e_out - 1}:0] out_ready = ~out_got_reg;",
        "assign m_axis_tvalid = &out_got_reg;",
        "assign m_axis_tdata = out_data_reg;",
        "wire m_fire = m_axis_tvalid && m_axis_tready;",
    ]
    for i, c in enumerate(iface.outputs):
        lines.append(f"wire [{c.data.width - 1}:0] out_data_{i};")
        if c.data.width > per_out * out_bits:
            lines.append(f"wire unused_out_{i} = ^out_data_{i}[{c.data.width - 1}:"
                         f"{per_out * out_bits}];")
    lines += ["always @(posedge clk) begin",
              "    if (rst || m_fire) begin",
              f"        out_got_reg <= {e_out}'d0;",
              "    end else begin",
              "        out_got_reg <= out_got_reg | (out_valid & out_ready);",
              "    end"]
    for i in range(e_out):
        lines += [f"    if (out_valid[{i}] && out_ready[{i}]) begin",
                  f"        out_data_reg[{i * per_out * out_bits} +: {per_out * out_bits}] <= "
                  f"out_data_{i}[{per_out * out_bits - 1}:0];",
                  "    end"]
    lines += ["end", "",
              f"// TLAST from a count of output beats ({beats_per_frame} per frame).",
              f"reg [{cw - 1}:0] beat_reg;",
              f"assign m_axis_tlast = beat_reg == {cw}'d{beats_per_frame - 1};",
              "always @(posedge clk) begin",
              "    if (rst) begin",
              f"        beat_reg <= {cw}'d0;",
              "    end else if (m_fire) begin",
              f"        beat_reg <= m_axis_tlast ? {cw}'d0 : beat_reg + {cw}'d1;",
              "    end", "end", ""]
    conns = [f".{iface.clock}(clk)",
             f".{iface.reset}({'!rst' if iface.reset_active_low else 'rst'})"]
    # ap_start / ap_continue high outside reset: one call per frame, back to back
    conns += [f".{s}(!rst)" for s in iface.start]
    for i, c in enumerate(iface.inputs):
        pad = c.data.width - per_in * in_bits
        data = f"s_axis_tdata[{i * per_in * in_bits} +: {per_in * in_bits}]"
        if pad:
            data = f"{{{pad}'d0, {data}}}"
        conns += [f".{c.data.name}({data})", f".{c.valid}(in_valid[{i}])",
                  f".{c.ready}(in_ready[{i}])"]
    for i, c in enumerate(iface.outputs):
        conns += [f".{c.data.name}(out_data_{i})", f".{c.valid}(out_valid[{i}])",
                  f".{c.ready}(out_ready[{i}])"]
    if iface.ignored:  # ap_done, ap_idle, ap_ready: nothing to do with them
        for p in iface.ignored:
            rng = f"[{p.width - 1}:0] " if p.width > 1 else ""
            lines.append(f"wire {rng}vendor_{p.name};")
        lines.append("wire unused_vendor = ^{"
                     + ", ".join(f"vendor_{n}" for n in iface.ignored_outputs) + "};")
        lines.append("")
        conns += [f".{name}(vendor_{name})" for name in iface.ignored_outputs]
    lines.append(f"{iface.module} u_vendor (")
    lines += [f"    {c}," for c in conns[:-1]] + [f"    {conns[-1]}", ");", "",
                                                   "endmodule", "", "`resetall", ""]
    return "\n".join(lines)


def write_adapter(vendor_files: list[Path], module: str, wrapper: str, out_dir: Path,
                  in_lanes: int, in_bits: int, out_lanes: int, out_bits: int) -> Path:
    """Find ``module`` among ``vendor_files``, write ``<out_dir>/<wrapper>.v``; its path."""
    for f in vendor_files:
        text = Path(f).read_text(errors="replace")
        if re.search(rf"\bmodule\s+{re.escape(module)}\b", text):
            iface = find_interface(parse_ports(text, module), module)
            out = Path(out_dir) / f"{wrapper}.v"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(adapter_verilog(iface, wrapper, in_lanes, in_bits, out_lanes,
                                           out_bits))
            return out
    raise FileNotFoundError(f"no module {module!r} in {len(vendor_files)} vendor file(s)")
