// Copyright the squeezenet-fpga authors. Apache-2.0.
`resetall
`timescale 1ns / 1ps
`default_nettype none

// sqz_axi_test_top: sqz_axi_shell around a stand-in core that takes a pixel on every
// cycle, for sim/test_sqz_axi.py: the shell's full input rate and the serialiser modes the
// tiny network does not reach (a 1000-lane core beat, beats straddling output beats,
// signed 7- and 20-bit scores). The stand-in's score of class c is the sum of the bytes of
// the frame's pixels p with p % CLASSES == c, modulo 2**SCORE_BITS; after a frame's last
// pixel it sends CLASSES/CORE_LANES beats and takes no input meanwhile.
module sqz_axi_test_top #(
    parameter FRAME_BYTES = 768,
    parameter PIX_BYTES = 3,
    parameter CLASSES = 1000,
    parameter CORE_LANES = 1000,
    parameter SCORE_BITS = 16,
    parameter SCORE_SIGNED = 0,
    parameter FIELD_BITS = 16
) (
    input  wire        aclk,
    input  wire        aresetn,
    input  wire [63:0] s_axis_tdata,
    input  wire [7:0]  s_axis_tkeep,
    input  wire        s_axis_tlast,
    input  wire        s_axis_tvalid,
    output wire        s_axis_tready,
    output wire [63:0] m_axis_tdata,
    output wire [7:0]  m_axis_tkeep,
    output wire        m_axis_tlast,
    output wire        m_axis_tvalid,
    input  wire        m_axis_tready,
    input  wire [11:0] s_axi_ctrl_awaddr,
    input  wire [2:0]  s_axi_ctrl_awprot,
    input  wire        s_axi_ctrl_awvalid,
    output wire        s_axi_ctrl_awready,
    input  wire [31:0] s_axi_ctrl_wdata,
    input  wire [3:0]  s_axi_ctrl_wstrb,
    input  wire        s_axi_ctrl_wvalid,
    output wire        s_axi_ctrl_wready,
    output wire [1:0]  s_axi_ctrl_bresp,
    output wire        s_axi_ctrl_bvalid,
    input  wire        s_axi_ctrl_bready,
    input  wire [11:0] s_axi_ctrl_araddr,
    input  wire [2:0]  s_axi_ctrl_arprot,
    input  wire        s_axi_ctrl_arvalid,
    output wire        s_axi_ctrl_arready,
    output wire [31:0] s_axi_ctrl_rdata,
    output wire [1:0]  s_axi_ctrl_rresp,
    output wire        s_axi_ctrl_rvalid,
    input  wire        s_axi_ctrl_rready
);

localparam integer FRAME_PIXELS = FRAME_BYTES / PIX_BYTES;
localparam integer BEATS = CLASSES / CORE_LANES;

wire core_rst;
wire [PIX_BYTES*8-1:0] core_s_tdata;
wire core_s_tlast, core_s_tvalid, core_s_tready;
wire [CORE_LANES*SCORE_BITS-1:0] core_m_tdata;
wire core_m_tlast, core_m_tvalid, core_m_tready;

sqz_axi_shell #(
    .FRAME_BYTES(FRAME_BYTES), .PIX_BYTES(PIX_BYTES), .CLASSES(CLASSES),
    .CORE_LANES(CORE_LANES), .SCORE_BITS(SCORE_BITS), .SCORE_SIGNED(SCORE_SIGNED),
    .FIELD_BITS(FIELD_BITS)
) shell (
    .aclk(aclk), .aresetn(aresetn),
    .s_axis_tdata(s_axis_tdata), .s_axis_tkeep(s_axis_tkeep), .s_axis_tlast(s_axis_tlast),
    .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
    .m_axis_tdata(m_axis_tdata), .m_axis_tkeep(m_axis_tkeep), .m_axis_tlast(m_axis_tlast),
    .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
    .s_axi_ctrl_awaddr(s_axi_ctrl_awaddr), .s_axi_ctrl_awprot(s_axi_ctrl_awprot),
    .s_axi_ctrl_awvalid(s_axi_ctrl_awvalid), .s_axi_ctrl_awready(s_axi_ctrl_awready),
    .s_axi_ctrl_wdata(s_axi_ctrl_wdata), .s_axi_ctrl_wstrb(s_axi_ctrl_wstrb),
    .s_axi_ctrl_wvalid(s_axi_ctrl_wvalid), .s_axi_ctrl_wready(s_axi_ctrl_wready),
    .s_axi_ctrl_bresp(s_axi_ctrl_bresp), .s_axi_ctrl_bvalid(s_axi_ctrl_bvalid),
    .s_axi_ctrl_bready(s_axi_ctrl_bready),
    .s_axi_ctrl_araddr(s_axi_ctrl_araddr), .s_axi_ctrl_arprot(s_axi_ctrl_arprot),
    .s_axi_ctrl_arvalid(s_axi_ctrl_arvalid), .s_axi_ctrl_arready(s_axi_ctrl_arready),
    .s_axi_ctrl_rdata(s_axi_ctrl_rdata), .s_axi_ctrl_rresp(s_axi_ctrl_rresp),
    .s_axi_ctrl_rvalid(s_axi_ctrl_rvalid), .s_axi_ctrl_rready(s_axi_ctrl_rready),
    .core_rst(core_rst),
    .core_s_tdata(core_s_tdata), .core_s_tlast(core_s_tlast),
    .core_s_tvalid(core_s_tvalid), .core_s_tready(core_s_tready),
    .core_m_tdata(core_m_tdata), .core_m_tlast(core_m_tlast),
    .core_m_tvalid(core_m_tvalid), .core_m_tready(core_m_tready)
);

// ---- the stand-in core
reg [SCORE_BITS-1:0] acc [0:CLASSES-1];
reg [31:0] pix_reg, cls_reg, beat_reg;
reg emit_reg;
integer k;

reg [31:0] psum;
always @* begin
    psum = 32'd0;
    for (k = 0; k < PIX_BYTES; k = k + 1) begin
        psum = psum + {24'd0, core_s_tdata[8 * k +: 8]};
    end
end

assign core_s_tready = !emit_reg;
assign core_m_tvalid = emit_reg;
assign core_m_tlast = beat_reg == BEATS - 1;

genvar l;
generate
for (l = 0; l < CORE_LANES; l = l + 1) begin : g_lane
    if (BEATS == 1) begin : g_one   // a constant index: a smaller Verilator model
        assign core_m_tdata[l * SCORE_BITS +: SCORE_BITS] = acc[l];
    end else begin : g_beats
        assign core_m_tdata[l * SCORE_BITS +: SCORE_BITS] = acc[beat_reg * CORE_LANES + l];
    end
end
endgenerate

wire unused_tlast = core_s_tlast;

always @(posedge aclk) begin
    if (core_s_tvalid && core_s_tready) begin
        acc[cls_reg] <= acc[cls_reg] + psum[SCORE_BITS-1:0];
        cls_reg <= cls_reg == CLASSES - 1 ? 0 : cls_reg + 1;
        pix_reg <= pix_reg + 1;
        if (pix_reg == FRAME_PIXELS - 1) begin
            pix_reg <= 0;
            cls_reg <= 0;
            emit_reg <= 1'b1;
            beat_reg <= 0;
        end
    end
    if (emit_reg && core_m_tready) begin
        beat_reg <= beat_reg + 1;
        if (core_m_tlast) begin
            emit_reg <= 1'b0;
            for (k = 0; k < CLASSES; k = k + 1) begin
                acc[k] <= {SCORE_BITS{1'b0}};
            end
        end
    end
    if (core_rst) begin
        pix_reg <= 0;
        cls_reg <= 0;
        beat_reg <= 0;
        emit_reg <= 1'b0;
        for (k = 0; k < CLASSES; k = k + 1) begin
            acc[k] <= {SCORE_BITS{1'b0}};
        end
    end
end

endmodule

`resetall
