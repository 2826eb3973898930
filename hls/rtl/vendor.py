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
output beats to make TLAST. Ports it does not know make it stop with their names. The
Verilog comes from one template file, ``firmware/rtl/sqz_vendor_adapter.v.j2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from model.errors import SqzError
from model.paths import RTL_DIR

ADAPTER_TEMPLATE = "sqz_vendor_adapter.v.j2"


class VendorPortError(SqzError, ValueError):
    """The vendor top's ports do not fit the adapter (unknown, missing or too narrow ports,
    or a packed output stream the requested lanes would cut short)."""


@dataclass(frozen=True)
class Port:
    name: str
    direction: str   # input / output / inout
    width: int


@dataclass
class Channel:
    """One AXI-Stream of the vendor top: data, valid and ready port names. ``packed``: the
    Vitis style, all elements of the argument in one ``<arg>_TDATA``."""

    data: Port
    valid: str
    ready: str
    packed: bool = False


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
        raise VendorPortError(f"module {module!r} not found")
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
        raise VendorPortError(f"module {module!r}: no port declarations found")
    return list(ports.values())


def find_interface(ports: list[Port], module: str) -> VendorInterface:
    """Recognise clock, reset, block control and the two stream arguments."""
    by_name = {p.name: p for p in ports}
    used: set[str] = set()

    def take(name: str) -> str:
        used.add(name)
        return name

    if "ap_clk" not in by_name:
        raise VendorPortError(f"{module}: no ap_clk port (ports: {', '.join(by_name)})")
    if "ap_rst_n" in by_name:
        reset, low = take("ap_rst_n"), True
    elif "ap_rst" in by_name:
        reset, low = take("ap_rst"), False
    else:
        raise VendorPortError(f"{module}: no ap_rst_n / ap_rst port (ports: {', '.join(by_name)})")
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
            raise VendorPortError(f"{module}: {p.name} without {valid} / {ready}")
        streams.setdefault(m.group(1), []).append(
            (int(m.group(2) or 0), Channel(p, take(valid), take(ready), m.group(2) is None)))
        take(p.name)
    for name, chans in streams.items():
        chans.sort(key=lambda c: c[0])
        if [i for i, _ in chans] != list(range(len(chans))):
            raise VendorPortError(f"{module}: stream {name} has element indices "
                                  f"{[i for i, _ in chans]}, expected 0..{len(chans) - 1}")
        directions = {c.data.direction for _, c in chans}
        if directions == {"input"}:
            target = iface.inputs
        elif directions == {"output"}:
            target = iface.outputs
        else:
            raise VendorPortError(f"{module}: stream {name} mixes directions")
        if target:
            raise VendorPortError(f"{module}: more than one {directions.pop()} stream "
                                  f"(the hls4ml top has one input and one output)")
        target.extend(c for _, c in chans)
    if not iface.inputs or not iface.outputs:
        raise VendorPortError(f"{module}: needs one input and one output AXI-Stream "
                              f"(<name>_TDATA/_TVALID/_TREADY); ports: {', '.join(by_name)}")
    rest = [p for p in ports if p.name not in used]
    unknown = [p.name for p in rest if p.direction != "output"]
    if unknown:
        raise VendorPortError(f"{module}: input port(s) the adapter does not know how to drive: "
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
        raise VendorPortError(f"{iface.module}: {e_in} input element streams for {in_lanes} "
                              "elements per pixel")
    if e_out not in (1, out_lanes):
        raise VendorPortError(f"{iface.module}: {e_out} output element streams for {out_lanes} "
                              "elements per beat")
    per_in = in_lanes // e_in
    per_out = out_lanes // e_out
    for c in iface.inputs:
        if c.data.width < per_in * in_bits:
            raise VendorPortError(f"{c.data.name} is {c.data.width} bits, narrower than "
                                  f"{per_in} x {in_bits}")
    for c in iface.outputs:
        if c.data.width < per_out * out_bits:
            raise VendorPortError(f"{c.data.name} is {c.data.width} bits, narrower than "
                                  f"{per_out} x {out_bits}")
        # Vitis HLS pads a packed stream to whole bytes: wider than that holds more scores.
        if c.packed and c.data.width > -(-per_out * out_bits // 8) * 8:
            raise VendorPortError(
                f"{c.data.name}: a packed output stream of {c.data.width // out_bits} class "
                f"scores ({c.data.width} bits, {out_bits} per score), but out_lanes is "
                f"{out_lanes}: the adapter would keep only the low {out_lanes}; pass "
                f"out_lanes={c.data.width // out_bits}")
    in_w, out_w = in_lanes * in_bits, out_lanes * out_bits
    cw = max(1, (beats_per_frame - 1).bit_length())
    return _template(ADAPTER_TEMPLATE).render(
        iface=iface, wrapper=wrapper, e_in=e_in, e_out=e_out, per_in=per_in, per_out=per_out,
        in_bits=in_bits, out_bits=out_bits, in_w=in_w, out_w=out_w,
        beats_per_frame=beats_per_frame, cw=cw)


def _template(name: str):
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(RTL_DIR)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template(name)


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
