// Copyright the squeezenet-fpga authors. Apache-2.0.
`resetall
`timescale 1ns / 1ps
`default_nettype none

// sqz_concat: channel concatenation of two pixel streams (a's channels, then b's).
module sqz_concat #(
    // Elements per beat on both inputs and the output (>= 1; divides CA and CB)
    parameter LANES = 4,
    // Channels of input a per pixel (>= LANES, a multiple of LANES)
    parameter CA = 16,
    // Channels of input b per pixel (>= LANES, a multiple of LANES)
    parameter CB = 16,
    // Pixels per frame (>= 1)
    parameter PIXELS = 4
) (
    input  wire                 clk,
    input  wire                 rst,

    // Input a: CA/LANES beats per pixel
    input  wire [LANES*8-1:0]   s_axis_tdata,
    input  wire                 s_axis_tlast,
    input  wire                 s_axis_tvalid,
    output wire                 s_axis_tready,

    // Input b: CB/LANES beats per pixel
    input  wire [LANES*8-1:0]   s_axis_b_tdata,
    input  wire                 s_axis_b_tlast,
    input  wire                 s_axis_b_tvalid,
    output wire                 s_axis_b_tready,

    // Output: (CA+CB)/LANES beats per pixel
    output wire [LANES*8-1:0]   m_axis_tdata,
    output wire                 m_axis_tlast,
    output wire                 m_axis_tvalid,
    input  wire                 m_axis_tready
);

// A multiplexer steered by beat counters: no storage, so the valid and ready paths are
// combinational through it (the generator places FIFOs before and after it anyway, since
// the two branches of a Fire module have different latencies). Input tlast is ignored:
// positions come from the geometry.

localparam integer BEATS_A = CA / LANES;
localparam BEATS = (CA + CB) / LANES;
localparam BEAT_WIDTH = BEATS < 2 ? 1 : $clog2(BEATS);
localparam PIX_WIDTH = PIXELS < 2 ? 1 : $clog2(PIXELS);
localparam integer BEAT_END = BEATS - 1;
localparam integer PIX_END = PIXELS - 1;

initial begin
    if (LANES < 1 || CA < LANES || CB < LANES || CA % LANES != 0 || CB % LANES != 0) begin
        $error("sqz_concat: LANES must be >= 1 and divide CA and CB (CA, CB >= LANES)");
        $finish;
    end
    if (PIXELS < 1) begin
        $error("sqz_concat: PIXELS must be >= 1");
        $finish;
    end
end

wire unused_tlast = s_axis_tlast ^ s_axis_b_tlast;

reg [BEAT_WIDTH-1:0] beat_reg;
reg [PIX_WIDTH-1:0] pix_reg;

wire sel_a = beat_reg < BEATS_A[BEAT_WIDTH-1:0];
wire last_beat = beat_reg == BEAT_END[BEAT_WIDTH-1:0];
wire last_pix = pix_reg == PIX_END[PIX_WIDTH-1:0];

assign m_axis_tdata = sel_a ? s_axis_tdata : s_axis_b_tdata;
assign m_axis_tvalid = sel_a ? s_axis_tvalid : s_axis_b_tvalid;
assign m_axis_tlast = last_beat && last_pix;
assign s_axis_tready = sel_a && m_axis_tready;
assign s_axis_b_tready = !sel_a && m_axis_tready;

always @(posedge clk) begin
    if (m_axis_tvalid && m_axis_tready) begin
        if (last_beat) begin
            beat_reg <= {BEAT_WIDTH{1'b0}};
            pix_reg <= last_pix ? {PIX_WIDTH{1'b0}} : pix_reg + 1'b1;
        end else begin
            beat_reg <= beat_reg + 1'b1;
        end
    end
    if (rst) begin
        beat_reg <= {BEAT_WIDTH{1'b0}};
        pix_reg <= {PIX_WIDTH{1'b0}};
    end
end

endmodule

`resetall
