"""Stand-ins for vendor-exported hls4ml tops, to test ``hls/vendor_rtl.py`` where no vendor
tool exists.

A stand-in is the open RTL top of the same network dressed in the ports Vitis HLS or
Vivado HLS give the hls4ml top (see the module doc of ``hls/vendor_rtl.py``): non-ANSI
port declarations, no TLAST, ``ap_start`` gating the input, active-low or active-high
reset, all class scores in one output transfer. It checks the adapter's port handling;
it is not vendor RTL, and the test that uses it says so.
"""

from __future__ import annotations


def mock_vendor_top(style: str, inner: str, classes: int, out_bits: int, channels: int = 3,
                    in_bits: int = 8, module: str = "squeezenet") -> str:
    """Verilog of ``module`` around the open RTL top ``inner`` (1 class score per beat)."""
    if style not in ("vitis", "vivado"):
        raise ValueError(f"style must be vitis or vivado, got {style!r}")
    out_w = classes * out_bits
    pad_out = (-out_w) % 8
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
            out_ports += [("output", 16 if out_bits <= 16 else 32, f"{b}_TDATA"),
                          ("output", 1, f"{b}_TVALID"), ("input", 1, f"{b}_TREADY")]
        ctl = [("input", 1, "ap_start"), ("output", 1, "ap_done"), ("output", 1, "ap_idle"),
               ("output", 1, "ap_ready")]
    ports = [("input", 1, "ap_clk"), ("input", 1, rst_port)] + ctl + in_ports + out_ports
    lines = ["// Stand-in with vendor-style ports (sim/vendor_mock.py); not vendor RTL.",
             "`timescale 1ns / 1ps", "`default_nettype none",
             f"module {module} ({', '.join(p[2] for p in ports)});"]
    for direction, width, name in ports:
        rng = f"[{width - 1}:0] " if width > 1 else ""
        lines.append(f"{direction} {rng}{name};")
    rst = "!ap_rst_n" if style == "vitis" else "ap_rst"
    cw = max(1, (classes - 1).bit_length())
    lines += [
        f"wire rst = {rst};",
        f"wire [{in_bits * channels - 1}:0] px_data;",
        "wire px_valid, px_ready;",
        f"wire [{out_bits - 1}:0] y_data;",
        "wire y_valid, y_last, y_ready;",
        f"{inner} u_inner (.clk(ap_clk), .rst(rst),",
        "    .s_axis_tdata(px_data), .s_axis_tlast(1'b0), .s_axis_tvalid(px_valid),",
        "    .s_axis_tready(px_ready), .m_axis_tdata(y_data), .m_axis_tlast(y_last),",
        "    .m_axis_tvalid(y_valid), .m_axis_tready(y_ready));",
        "wire unused_last = y_last;",
        "// gather the class scores of a frame, then offer them in one transfer",
        f"reg [{out_w - 1}:0] scores_reg;",
        f"reg [{cw - 1}:0] count_reg;",
        "reg full_reg;",
        "wire out_fire;",
        "assign y_ready = !full_reg;",
        "always @(posedge ap_clk) begin",
        "    if (y_valid && y_ready) begin",
        f"        scores_reg[count_reg * {out_bits} +: {out_bits}] <= y_data;",
        f"        count_reg <= count_reg == {cw}'d{classes - 1} ? {cw}'d0 : count_reg + 1'b1;",
        f"        if (count_reg == {cw}'d{classes - 1}) full_reg <= 1'b1;",
        "    end",
        "    if (out_fire) full_reg <= 1'b0;",
        f"    if (rst) begin count_reg <= {cw}'d0; full_reg <= 1'b0; end",
        "end",
        "assign ap_done = out_fire;",
        "assign ap_idle = !ap_start;",
        "assign ap_ready = out_fire;",
    ]
    if style == "vitis":
        lines += [
            "wire unused_continue = ap_continue;",
            "assign px_data = frame_TDATA;",
            "assign px_valid = frame_TVALID && ap_start;",
            "assign frame_TREADY = px_ready && ap_start;",
            f"assign layer50_out_TDATA = {{{pad_out}'d0, scores_reg}};" if pad_out else
            "assign layer50_out_TDATA = scores_reg;",
            "assign layer50_out_TVALID = full_reg;",
            "assign out_fire = full_reg && layer50_out_TREADY;",
        ]
    else:
        # one transfer per element stream: a pixel enters when every channel has one; the
        # scores leave once every class stream has taken its own
        valids = " && ".join(f"frame_V_data_{i}_V_TVALID" for i in range(channels))
        lines.append(f"assign px_valid = {valids} && ap_start;")
        lines.append(f"assign px_data = {{{', '.join(f'frame_V_data_{i}_V_TDATA' for i in reversed(range(channels)))}}};")
        for i in range(channels):
            lines.append(f"assign frame_V_data_{i}_V_TREADY = px_ready && px_valid;")
        lines += [f"reg [{classes - 1}:0] taken_reg;",
                  f"wire [{classes - 1}:0] taken_now;"]
        width = 16 if out_bits <= 16 else 32
        for i in range(classes):
            b = f"layer50_out_V_data_{i}_V"
            lines += [f"assign {b}_TDATA = {{{width - out_bits}'d0, "
                      f"scores_reg[{i * out_bits} +: {out_bits}]}};" if width > out_bits else
                      f"assign {b}_TDATA = scores_reg[{i * out_bits} +: {out_bits}];",
                      f"assign {b}_TVALID = full_reg && !taken_reg[{i}];",
                      f"assign taken_now[{i}] = taken_reg[{i}] || {b}_TREADY;"]
        lines += ["assign out_fire = full_reg && &taken_now;",
                  "always @(posedge ap_clk) begin",
                  f"    if (rst || out_fire) taken_reg <= {classes}'d0;",
                  "    else if (full_reg) taken_reg <= taken_now;",
                  "end"]
    lines += ["endmodule", ""]
    return "\n".join(lines)
