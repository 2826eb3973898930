// Copyright the squeezenet-fpga authors. Apache-2.0.
`resetall
`timescale 1ns / 1ps
`default_nettype none

// sqz_dwc: lane-width converter for 8-bit element streams (IN_LANES -> OUT_LANES).
module sqz_dwc #(
    // Elements per input beat (>= 1; divides C; divides or is a multiple of OUT_LANES)
    parameter IN_LANES = 4,
    // Elements per output beat (>= 1; divides C)
    parameter OUT_LANES = 2,
    // Channels per pixel (>= 1)
    parameter C = 8,
    // Pixels per frame (>= 1)
    parameter PIXELS = 4
) (
    input  wire                     clk,
    input  wire                     rst,

    // Input stream: C/IN_LANES beats per pixel
    input  wire [IN_LANES*8-1:0]    s_axis_tdata,
    input  wire                     s_axis_tlast,
    input  wire                     s_axis_tvalid,
    output wire                     s_axis_tready,

    // Output stream: C/OUT_LANES beats per pixel
    output wire [OUT_LANES*8-1:0]   m_axis_tdata,
    output wire                     m_axis_tlast,
    output wire                     m_axis_tvalid,
    input  wire                     m_axis_tready
);

// Both widths divide C, so an input beat never straddles a pixel: the converter splits
// each input beat into IN_LANES/OUT_LANES output beats, or gathers OUT_LANES/IN_LANES
// input beats into one output beat, with element order kept (lowest lane first). Output
// tlast comes from a count of output beats; input tlast is ignored. Equal widths give a
// one-word register stage. The output is always a register.

localparam IN_WIDTH = IN_LANES * 8;
localparam OUT_WIDTH = OUT_LANES * 8;
localparam integer FRAME_BEATS = PIXELS * (C / OUT_LANES);
localparam CNT_WIDTH = FRAME_BEATS < 2 ? 1 : $clog2(FRAME_BEATS);
localparam integer FRAME_END = FRAME_BEATS - 1;

initial begin
    if (IN_LANES < 1 || OUT_LANES < 1 || C % IN_LANES != 0 || C % OUT_LANES != 0) begin
        $error("sqz_dwc: IN_LANES and OUT_LANES must be >= 1 and divide C");
        $finish;
    end
    if (IN_LANES % OUT_LANES != 0 && OUT_LANES % IN_LANES != 0) begin
        $error("sqz_dwc: one of IN_LANES, OUT_LANES must divide the other");
        $finish;
    end
    if (PIXELS < 1) begin
        $error("sqz_dwc: PIXELS must be >= 1");
        $finish;
    end
end

wire unused_tlast = s_axis_tlast;

reg [CNT_WIDTH-1:0] out_cnt_reg;
reg out_last_reg;
reg out_valid_reg;

wire out_pop = out_valid_reg && m_axis_tready;

assign m_axis_tvalid = out_valid_reg;
assign m_axis_tlast = out_last_reg;

// Output beat counter: out_last_reg marks the beat now in the output register.
wire [CNT_WIDTH-1:0] out_cnt_next = out_cnt_reg == FRAME_END[CNT_WIDTH-1:0]
                                    ? {CNT_WIDTH{1'b0}} : out_cnt_reg + 1'b1;

generate
if (IN_LANES >= OUT_LANES) begin : g_split
    // One input word in a shift register; each output beat is its lowest OUT_LANES lanes.
    localparam RATIO = IN_LANES / OUT_LANES;
    localparam SUB_WIDTH = RATIO < 2 ? 1 : $clog2(RATIO);
    localparam integer SUB_END = RATIO - 1;

    reg [IN_WIDTH-1:0] word_reg;
    reg [SUB_WIDTH-1:0] sub_reg;

    wire load = s_axis_tvalid && s_axis_tready;

    assign s_axis_tready = !out_valid_reg
                           || (m_axis_tready && sub_reg == SUB_END[SUB_WIDTH-1:0]);
    assign m_axis_tdata = word_reg[OUT_WIDTH-1:0];

    always @(posedge clk) begin
        if (load) begin
            word_reg <= s_axis_tdata;
            sub_reg <= {SUB_WIDTH{1'b0}};
            out_valid_reg <= 1'b1;
        end else if (out_pop) begin
            word_reg <= word_reg >> OUT_WIDTH;
            sub_reg <= sub_reg + 1'b1;
            out_valid_reg <= sub_reg != SUB_END[SUB_WIDTH-1:0];
        end
        if (out_pop) begin
            out_cnt_reg <= out_cnt_next;
            out_last_reg <= out_cnt_next == FRAME_END[CNT_WIDTH-1:0];
        end
        if (rst) begin
            sub_reg <= {SUB_WIDTH{1'b0}};
            out_valid_reg <= 1'b0;
            out_cnt_reg <= {CNT_WIDTH{1'b0}};
            out_last_reg <= FRAME_END == 0;
        end
    end
end else begin : g_gather
    // RATIO-1 input words collect in a shift register (newest at the top); the RATIO-th
    // completes the output word, which moves to its own register so gathering goes on
    // while the output waits.
    localparam RATIO = OUT_LANES / IN_LANES;
    localparam SUB_WIDTH = $clog2(RATIO);
    localparam integer SUB_END = RATIO - 1;
    localparam GATHER_WIDTH = OUT_WIDTH - IN_WIDTH;

    reg [GATHER_WIDTH-1:0] gather_reg;
    reg [SUB_WIDTH-1:0] sub_reg;
    reg [OUT_WIDTH-1:0] out_reg;

    wire complete = sub_reg == SUB_END[SUB_WIDTH-1:0];
    wire load = s_axis_tvalid && s_axis_tready;
    wire [OUT_WIDTH-1:0] word = {s_axis_tdata, gather_reg};

    assign s_axis_tready = !complete || !out_valid_reg || m_axis_tready;
    assign m_axis_tdata = out_reg;

    always @(posedge clk) begin
        if (load) begin
            gather_reg <= word[OUT_WIDTH-1:IN_WIDTH];
            sub_reg <= complete ? {SUB_WIDTH{1'b0}} : sub_reg + 1'b1;
        end
        if (load && complete) begin
            out_reg <= word;
            out_valid_reg <= 1'b1;
        end else if (out_pop) begin
            out_valid_reg <= 1'b0;
        end
        if (out_pop) begin
            out_cnt_reg <= out_cnt_next;
            out_last_reg <= out_cnt_next == FRAME_END[CNT_WIDTH-1:0];
        end
        if (rst) begin
            sub_reg <= {SUB_WIDTH{1'b0}};
            out_valid_reg <= 1'b0;
            out_cnt_reg <= {CNT_WIDTH{1'b0}};
            out_last_reg <= FRAME_END == 0;
        end
    end
end
endgenerate

endmodule

`resetall
