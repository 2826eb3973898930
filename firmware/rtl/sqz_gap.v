// Copyright the squeezenet-fpga authors. Apache-2.0.
`resetall
`timescale 1ns / 1ps
`default_nettype none

// sqz_gap: global average pool, exact per-channel sums times a 16-bit reciprocal.
module sqz_gap #(
    // Input map height and width (>= 1 each)
    parameter IN_H = 13,
    parameter IN_W = 13,
    // Channels (>= 1; a multiple of LANES and of OUT_LANES)
    parameter C = 16,
    // Elements per input beat (>= 1)
    parameter LANES = 4,
    // Results per output beat (>= 1)
    parameter OUT_LANES = 4,
    // Input element bits (1 .. 32, unsigned)
    parameter IN_BITS = 8,
    // Accumulator bits (> IN_BITS and >= IN_BITS + clog2(IN_H*IN_W): the exact sum never
    // overflows)
    parameter ACC_BITS = 16,
    // Reciprocal of IN_H*IN_W, model.golden.gap_reciprocal: R (1 .. 2**16-1)
    parameter RECIP = 49637,
    // Right shift after the multiply: frac_in + S - frac_out from gap_reciprocal and the
    // formats (any integer; <= 0 means a left shift by -SHIFT)
    parameter SHIFT = 19,
    // Result bits (>= 1): clip to 0 .. 2**OUT_BITS-1
    parameter OUT_BITS = 16
) (
    input  wire                            clk,
    input  wire                            rst,

    // Input stream: IN_BITS-bit unsigned elements, C/LANES beats per pixel, row-major pixels
    input  wire [LANES*IN_BITS-1:0]        s_axis_tdata,
    input  wire                            s_axis_tlast,
    input  wire                            s_axis_tvalid,
    output wire                            s_axis_tready,

    // Output stream: C/OUT_LANES beats per frame, OUT_BITS-bit unsigned results
    output wire [OUT_LANES*OUT_BITS-1:0]   m_axis_tdata,
    output wire                            m_axis_tlast,
    output wire                            m_axis_tvalid,
    input  wire                            m_axis_tready
);

// Accumulate: a memory of C/LANES words of LANES accumulators (simple dual port, BRAM or
// LUTRAM), read when a beat is taken and written back one cycle later. The one hazard of
// that read-modify-write (a beat reading the word the previous beat is writing, which is
// every beat when C/LANES is 1) is closed by forwarding the last written word. Beats of
// the frame's first pixel ignore the old contents, so no clearing pass is needed.
//
// Emit: after the frame's last beat the input stalls while the words are read out one at
// a time into a hold register, which feeds one channel per cycle to a single multiplier,
// the rounding/saturation, and a packer of OUT_LANES results. The input resumes as soon
// as the last word has been read (the rest of the results drain on their own), so it
// stalls about C + C/LANES cycles per frame: a fraction LANES/(IN_H*IN_W) of the frame
// at full input rate. Input tlast is ignored.

localparam integer PIXELS = IN_H * IN_W;
localparam integer BEATS = C / LANES;
localparam integer OUT_BEATS = C / OUT_LANES;
localparam AW = BEATS < 2 ? 1 : $clog2(BEATS);
localparam PW = PIXELS < 2 ? 1 : $clog2(PIXELS);
localparam OW = OUT_BEATS < 2 ? 1 : $clog2(OUT_BEATS);
localparam HW = $clog2(LANES + 1);
localparam KW = OUT_LANES < 2 ? 1 : $clog2(OUT_LANES);
localparam integer BEAT_END = BEATS - 1;
localparam integer PIX_END = PIXELS - 1;
localparam integer OUT_END = OUT_BEATS - 1;
localparam integer PACK_END = OUT_LANES - 1;
localparam WORD_WIDTH = LANES * ACC_BITS;
localparam PROD_BITS = ACC_BITS + 16;
localparam LSHIFT = SHIFT < 0 ? -SHIFT : 0;
// Width for rounding/shifting without loss: the product, a carry, any left shift; at
// least one bit above the result (for the saturation test) and above the shift.
localparam Q0 = PROD_BITS + 1 + LSHIFT;
localparam Q1 = Q0 > OUT_BITS + 1 ? Q0 : OUT_BITS + 1;
localparam Q_BITS = Q1 > SHIFT + 1 ? Q1 : SHIFT + 1;

initial begin
    if (IN_H < 1 || IN_W < 1 || LANES < 1 || OUT_LANES < 1 || OUT_BITS < 1) begin
        $error("sqz_gap: IN_H, IN_W, LANES, OUT_LANES and OUT_BITS must be >= 1");
        $finish;
    end
    if (C < 1 || C % LANES != 0 || C % OUT_LANES != 0) begin
        $error("sqz_gap: C must be a multiple of LANES and of OUT_LANES");
        $finish;
    end
    if (IN_BITS < 1 || IN_BITS > 32) begin
        $error("sqz_gap: IN_BITS must be 1 .. 32");
        $finish;
    end
    if (ACC_BITS <= IN_BITS || ACC_BITS < IN_BITS + $clog2(PIXELS)) begin
        $error("sqz_gap: ACC_BITS must be > IN_BITS and >= IN_BITS + clog2(IN_H*IN_W)");
        $finish;
    end
    if (RECIP < 1 || RECIP > 65535) begin
        $error("sqz_gap: RECIP must be 1 .. 65535");
        $finish;
    end
end

wire unused_tlast = s_axis_tlast;

// ---------------------------------------------------------------- accumulate

reg [WORD_WIDTH-1:0] mem [0:BEATS-1];
reg [WORD_WIDTH-1:0] rdata_reg;

reg emit_reg;                 // input stalled: the words are being read out
reg [AW-1:0] beat_reg;
reg [PW-1:0] pix_reg;

reg s1_valid_reg;
reg s1_first_reg;
reg [AW-1:0] s1_addr_reg;
reg [LANES*IN_BITS-1:0] s1_x_reg;

reg wr_valid_reg;
reg [AW-1:0] wr_addr_reg;
reg [WORD_WIDTH-1:0] wr_data_reg;

wire in_fire = s_axis_tvalid && !emit_reg;
wire beat_last = beat_reg == BEAT_END[AW-1:0];
wire pix_last = pix_reg == PIX_END[PW-1:0];

assign s_axis_tready = !emit_reg;

wire fwd = wr_valid_reg && wr_addr_reg == s1_addr_reg;
wire [WORD_WIDTH-1:0] old_word = fwd ? wr_data_reg : rdata_reg;
wire [WORD_WIDTH-1:0] sum_word;

genvar i;
generate
for (i = 0; i < LANES; i = i + 1) begin : g_lane
    wire [ACC_BITS-1:0] old_acc = s1_first_reg ? {ACC_BITS{1'b0}}
                                               : old_word[i*ACC_BITS +: ACC_BITS];
    assign sum_word[i*ACC_BITS +: ACC_BITS] = old_acc
        + {{(ACC_BITS-IN_BITS){1'b0}}, s1_x_reg[i*IN_BITS +: IN_BITS]};
end
endgenerate

// Emit read-out control (declared here: it shares the memory read port).
reg rd_pend_reg;              // rdata_reg holds a word for the hold register
reg rd_done_reg;              // every word of this frame has been read
reg [AW-1:0] rd_ptr_reg;
reg [HW-1:0] hold_cnt_reg;
wire hold_take;

wire rd_issue = emit_reg && !s1_valid_reg && !rd_pend_reg && !rd_done_reg
                && (hold_cnt_reg == 0 || (hold_cnt_reg == 1 && hold_take));
wire [AW-1:0] rd_addr = emit_reg ? rd_ptr_reg : beat_reg;

always @(posedge clk) begin
    if (in_fire || rd_issue) begin
        rdata_reg <= mem[rd_addr];
    end
    if (s1_valid_reg) begin
        mem[s1_addr_reg] <= sum_word;
    end
end

always @(posedge clk) begin
    s1_valid_reg <= in_fire;
    if (in_fire) begin
        s1_first_reg <= pix_reg == 0;
        s1_addr_reg <= beat_reg;
        s1_x_reg <= s_axis_tdata;
        beat_reg <= beat_last ? {AW{1'b0}} : beat_reg + 1'b1;
        if (beat_last) begin
            pix_reg <= pix_last ? {PW{1'b0}} : pix_reg + 1'b1;
        end
    end

    wr_valid_reg <= s1_valid_reg;
    wr_addr_reg <= s1_addr_reg;
    wr_data_reg <= sum_word;

    rd_pend_reg <= rd_issue;
    if (rd_issue) begin
        rd_ptr_reg <= rd_ptr_reg + 1'b1;
        rd_done_reg <= rd_ptr_reg == BEAT_END[AW-1:0];
    end
    if (in_fire && beat_last && pix_last) begin
        emit_reg <= 1'b1;
        rd_ptr_reg <= {AW{1'b0}};
        rd_done_reg <= 1'b0;
    end else if (rd_pend_reg && rd_done_reg) begin
        emit_reg <= 1'b0;
    end

    if (rst) begin
        emit_reg <= 1'b0;
        beat_reg <= {AW{1'b0}};
        pix_reg <= {PW{1'b0}};
        s1_valid_reg <= 1'b0;
        wr_valid_reg <= 1'b0;
        rd_pend_reg <= 1'b0;
        rd_done_reg <= 1'b0;
        rd_ptr_reg <= {AW{1'b0}};
    end
end

// ---------------------------------------------------------------- emit

reg [WORD_WIDTH-1:0] hold_reg;
reg prod_valid_reg;
reg [PROD_BITS-1:0] prod_reg;
reg [KW-1:0] pack_cnt_reg;
reg [OUT_LANES*OUT_BITS-1:0] out_reg;
reg out_valid_reg;
reg out_last_reg;
reg [OW-1:0] out_cnt_reg;

wire pack_full = pack_cnt_reg == PACK_END[KW-1:0];
wire pack_take = prod_valid_reg && (!pack_full || !out_valid_reg || m_axis_tready);
assign hold_take = hold_cnt_reg != 0 && (!prod_valid_reg || pack_take);

// AP_RND then AP_SAT (unsigned): round half up at the target LSB, clip to OUT_BITS.
wire [Q_BITS-1:0] prod_ext = {{(Q_BITS-PROD_BITS){1'b0}}, prod_reg};
wire [Q_BITS-1:0] rounded;
generate
if (SHIFT > 0) begin : g_right
    localparam [Q_BITS-1:0] HALF = {{(Q_BITS-1){1'b0}}, 1'b1} << (SHIFT - 1);
    assign rounded = (prod_ext + HALF) >> SHIFT;
end else begin : g_left
    assign rounded = prod_ext << LSHIFT;
end
endgenerate
wire [OUT_BITS-1:0] q = |rounded[Q_BITS-1:OUT_BITS] ? {OUT_BITS{1'b1}}
                                                     : rounded[OUT_BITS-1:0];

// The packer keeps the first OUT_LANES-1 results of a beat (newest at the top); the last
// one completes the beat.
wire [OUT_LANES*OUT_BITS-1:0] pack_next;
generate
if (OUT_LANES == 1) begin : g_pack1
    assign pack_next = q;
end else begin : g_pack
    reg [(OUT_LANES-1)*OUT_BITS-1:0] gather_reg;
    assign pack_next = {q, gather_reg};
    always @(posedge clk) begin
        if (pack_take) begin
            gather_reg <= pack_next[OUT_LANES*OUT_BITS-1:OUT_BITS];
        end
    end
end
endgenerate

assign m_axis_tdata = out_reg;
assign m_axis_tlast = out_last_reg;
assign m_axis_tvalid = out_valid_reg;

always @(posedge clk) begin
    if (rd_pend_reg) begin
        hold_reg <= rdata_reg;
        hold_cnt_reg <= LANES[HW-1:0];
    end else if (hold_take) begin
        hold_reg <= hold_reg >> ACC_BITS;
        hold_cnt_reg <= hold_cnt_reg - 1'b1;
    end

    if (hold_take) begin
        prod_reg <= {{16{1'b0}}, hold_reg[ACC_BITS-1:0]}
                    * {{ACC_BITS{1'b0}}, RECIP[15:0]};
        prod_valid_reg <= 1'b1;
    end else if (pack_take) begin
        prod_valid_reg <= 1'b0;
    end

    if (pack_take) begin
        pack_cnt_reg <= pack_full ? {KW{1'b0}} : pack_cnt_reg + 1'b1;
    end
    if (pack_take && pack_full) begin
        out_reg <= pack_next;
        out_valid_reg <= 1'b1;
        out_last_reg <= out_cnt_reg == OUT_END[OW-1:0];
        out_cnt_reg <= out_cnt_reg == OUT_END[OW-1:0] ? {OW{1'b0}} : out_cnt_reg + 1'b1;
    end else if (m_axis_tready) begin
        out_valid_reg <= 1'b0;
    end

    if (rst) begin
        hold_cnt_reg <= {HW{1'b0}};
        prod_valid_reg <= 1'b0;
        pack_cnt_reg <= {KW{1'b0}};
        out_valid_reg <= 1'b0;
        out_cnt_reg <= {OW{1'b0}};
    end
end

endmodule

`resetall
