"""Stand-ins for vendor-exported hls4ml tops, to test ``hls/rtl/vendor.py`` where no vendor
tool exists.

A stand-in is the open RTL top of the same network dressed in the ports Vitis HLS or
Vivado HLS give the hls4ml top (see the module doc of ``hls/rtl/vendor.py``): non-ANSI
port declarations, no TLAST, ``ap_start`` gating the input, active-low or active-high
reset, all class scores in one output transfer. It checks the adapter's port handling;
it is not vendor RTL, and the test that uses it says so.
"""

from __future__ import annotations

from pathlib import Path

from model.paths import HLS_PROJECT_NAME

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "vendor_mock.v.j2"


def mock_vendor_top(style: str, inner: str, classes: int, out_bits: int, channels: int = 3,
                    in_bits: int = 8, module: str = HLS_PROJECT_NAME) -> str:
    """Verilog of ``module`` around the open RTL top ``inner`` (1 class score per beat)."""
    if style not in ("vitis", "vivado"):
        raise ValueError(f"style must be vitis or vivado, got {style!r}")
    out_w = classes * out_bits
    pad_out = (-out_w) % 8              # Vitis pads the packed scores to whole bytes
    el_width = 16 if out_bits <= 16 else 32   # Vivado: one element per 16 / 32-bit stream
    if style == "vitis":
        rst_port = "ap_rst_n"
        in_ports = [("input", in_bits * channels, "frame_TDATA"), ("input", 1, "frame_TVALID"),
                    ("output", 1, "frame_TREADY")]
        out_ports = [("output", out_w + pad_out, "layer50_out_TDATA"),
                     ("output", 1, "layer50_out_TVALID"), ("input", 1, "layer50_out_TREADY")]
        ctl = [("input", 1, "ap_start"), ("input", 1, "ap_continue"), ("output", 1, "ap_done"),
               ("output", 1, "ap_idle"), ("output", 1, "ap_ready")]
    else:
        rst_port = "ap_rst"
        in_ports, out_ports = [], []
        for i in range(channels):
            b = f"frame_V_data_{i}_V"
            in_ports += [("input", in_bits, f"{b}_TDATA"), ("input", 1, f"{b}_TVALID"),
                         ("output", 1, f"{b}_TREADY")]
        for i in range(classes):
            b = f"layer50_out_V_data_{i}_V"
            out_ports += [("output", el_width, f"{b}_TDATA"),
                          ("output", 1, f"{b}_TVALID"), ("input", 1, f"{b}_TREADY")]
        ctl = [("input", 1, "ap_start"), ("output", 1, "ap_done"), ("output", 1, "ap_idle"),
               ("output", 1, "ap_ready")]
    ports = [("input", 1, "ap_clk"), ("input", 1, rst_port)] + ctl + in_ports + out_ports
    return _template(TEMPLATE).render(
        module=module, inner=inner, style=style, ports=ports,
        rst="!ap_rst_n" if style == "vitis" else "ap_rst", classes=classes, out_bits=out_bits,
        out_w=out_w, pad_out=pad_out, el_width=el_width, channels=channels, in_bits=in_bits,
        cw=max(1, (classes - 1).bit_length()))


def _template(name: str):
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template(name)
