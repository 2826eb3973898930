// Copyright the squeezenet-fpga authors. Apache-2.0.
`resetall
`timescale 1ns / 1ps
`default_nettype none

// sqz_window: sliding-window (im2col) generator for a KxK convolution, ring of line buffers.
module sqz_window #(
    // Input map height and width (>= 1 each; IN_H + 2*PAD >= K and IN_W + 2*PAD >= K)
    parameter IN_H = 8,
    parameter IN_W = 8,
    // Channels per pixel (>= 1, a multiple of LANES)
    parameter C = 8,
    // Elements per beat, in and out (>= 1, divides C); the consumer's SIMD
    parameter LANES = 4,
    // Kernel size (1 .. 7)
    parameter K = 3,
    // Stride (1 .. 4)
    parameter STRIDE = 1,
    // Zero padding on all four sides (0 .. K-1)
    parameter PAD = 1,
    // Bits per element (>= 1)
    parameter BITS = 8
) (
    input  wire                  clk,
    input  wire                  rst,

    // Input stream: C/LANES beats per pixel, row-major pixels
    input  wire [LANES*BITS-1:0] s_axis_tdata,
    input  wire                  s_axis_tlast,
    input  wire                  s_axis_tvalid,
    output wire                  s_axis_tready,

    // Output stream: per output pixel (row-major) K*K*C/LANES beats in (ky, kx, c) order
    output wire [LANES*BITS-1:0] m_axis_tdata,
    output wire                  m_axis_tlast,
    output wire                  m_axis_tvalid,
    input  wire                  m_axis_tready
);

// Storage: one simple dual-port memory of ROWS = K + STRIDE input rows, used as a ring in
// row order across frames (row r of a frame sits ROW_WORDS * (r mod ROWS) after the slot
// of that frame's row 0). Only rows some window touches (R_USED) are stored; later rows
// are consumed and dropped. The writer fills one row at a time while a slot is free; the
// reader starts an output row once every input row it touches has been written, and at
// that point releases the rows above it. While the reader holds the K rows of output row
// oy the writer fills the STRIDE rows that oy+1 needs, so a frame flows without a bubble
// when the output is the slower side (K*K/STRIDE**2 beats out per beat in).
//
// The reader walks (oy, ox, ky, kx, cb) with counters; window coordinates are kept as
// two's complement CW-bit numbers, so a coordinate is inside the image exactly when it is
// below IN_H (IN_W) as an unsigned number. Positions outside read as zero. The memory
// read is registered (BRAM); a 2-entry output buffer with issue credit keeps one beat per
// clock under backpressure without a combinational path from m_axis_tready to
// s_axis_tready. Input tlast is ignored.

localparam integer CB = C / LANES;
localparam integer OUT_H = (IN_H + 2 * PAD - K) / STRIDE + 1;
localparam integer OUT_W = (IN_W + 2 * PAD - K) / STRIDE + 1;
localparam integer ROWS = K + STRIDE;
localparam integer ROW_WORDS = IN_W * CB;
localparam integer TOTAL = ROWS * ROW_WORDS;
localparam integer R_SPAN = (OUT_H - 1) * STRIDE + K - PAD;
localparam integer R_USED = R_SPAN < IN_H ? R_SPAN : IN_H;
localparam integer DIM = IN_H > IN_W ? IN_H : IN_W;
localparam DW = LANES * BITS;
localparam AW = $clog2(TOTAL);
localparam CW = $clog2(DIM + 2 * PAD + 2 * STRIDE + 2 * K) + 2;
localparam RW = $clog2(ROWS + 1);
localparam CBW = CB < 2 ? 1 : $clog2(CB);
localparam KW = K < 2 ? 1 : $clog2(K);
localparam OXW = OUT_W < 2 ? 1 : $clog2(OUT_W);
localparam OYW = OUT_H < 2 ? 1 : $clog2(OUT_H);
localparam XW = IN_W < 2 ? 1 : $clog2(IN_W);
localparam YW = IN_H < 2 ? 1 : $clog2(IN_H);

localparam integer CB_END = CB - 1;
localparam integer K_END = K - 1;
localparam integer OX_END = OUT_W - 1;
localparam integer OY_END = OUT_H - 1;
localparam integer X_END = IN_W - 1;
localparam integer Y_END = IN_H - 1;
localparam integer NEG_PAD = -PAD;
localparam integer NEG_PAD_CB = -(PAD * CB);
localparam integer STRIDE_CB = STRIDE * CB;
localparam integer HI_START = K - PAD;
// Ring steps, each below TOTAL: one row, STRIDE rows, one frame, and back PAD rows.
localparam integer STEP_ROW = ROW_WORDS;
localparam integer STEP_OROW = STRIDE * ROW_WORDS;
localparam integer STEP_FRAME = (R_USED % ROWS) * ROW_WORDS;
localparam integer STEP_UNPAD = ((ROWS - PAD) % ROWS) * ROW_WORDS;

initial begin
    if (IN_H < 1 || IN_W < 1 || C < 1 || LANES < 1 || BITS < 1 || C % LANES != 0) begin
        $error("sqz_window: IN_H, IN_W, C, LANES, BITS must be >= 1 and LANES divide C");
        $finish;
    end
    if (K < 1 || K > 7 || STRIDE < 1 || STRIDE > 4 || PAD < 0 || PAD > K - 1) begin
        $error("sqz_window: K must be 1..7, STRIDE 1..4, PAD 0..K-1");
        $finish;
    end
    if (IN_H + 2 * PAD < K || IN_W + 2 * PAD < K) begin
        $error("sqz_window: the padded input is smaller than the kernel");
        $finish;
    end
end

wire unused_tlast = s_axis_tlast;

function [AW-1:0] ring_add;
    input [AW-1:0] a;
    input [AW-1:0] b;
    reg [AW:0] s;
    begin
        s = {1'b0, a} + {1'b0, b};
        if (s >= TOTAL[AW:0]) begin
            s = s - TOTAL[AW:0];
        end
        ring_add = s[AW-1:0];
    end
endfunction

reg [DW-1:0] mem [0:TOTAL-1];
reg [DW-1:0] rdata_reg;

// ---------------------------------------------------------------- writer

reg [CBW-1:0] wr_cb_reg;
reg [XW-1:0] wr_x_reg;
reg [YW-1:0] wr_y_reg;
reg [AW-1:0] wr_addr_reg;
reg [RW-1:0] filled_reg;          // rows written and not yet released
wire [RW-1:0] rel;                // rows released by the reader this cycle

wire wr_store = {1'b0, wr_y_reg} < R_USED[YW:0];
wire wr_row_first = wr_x_reg == 0 && wr_cb_reg == 0;
wire wr_cb_last = wr_cb_reg == CB_END[CBW-1:0];
wire wr_x_last = wr_x_reg == X_END[XW-1:0];
wire wr_y_last = wr_y_reg == Y_END[YW-1:0];

// A stored row claims its slot on its first beat; filled + (row open) never exceeds ROWS.
assign s_axis_tready = !wr_store || !wr_row_first || filled_reg < ROWS[RW-1:0];
wire in_fire = s_axis_tvalid && s_axis_tready;
wire wr_en = in_fire && wr_store;
wire wr_row_done = wr_en && wr_cb_last && wr_x_last;

always @(posedge clk) begin
    if (wr_en) begin
        mem[wr_addr_reg] <= s_axis_tdata;
    end
end

always @(posedge clk) begin
    if (in_fire) begin
        wr_cb_reg <= wr_cb_last ? {CBW{1'b0}} : wr_cb_reg + 1'b1;
        if (wr_cb_last) begin
            wr_x_reg <= wr_x_last ? {XW{1'b0}} : wr_x_reg + 1'b1;
            if (wr_x_last) begin
                wr_y_reg <= wr_y_last ? {YW{1'b0}} : wr_y_reg + 1'b1;
            end
        end
    end
    if (wr_en) begin
        wr_addr_reg <= ring_add(wr_addr_reg, {{(AW-1){1'b0}}, 1'b1});
    end
    filled_reg <= filled_reg + {{(RW-1){1'b0}}, wr_row_done} - rel;

    if (rst) begin
        wr_cb_reg <= {CBW{1'b0}};
        wr_x_reg <= {XW{1'b0}};
        wr_y_reg <= {YW{1'b0}};
        wr_addr_reg <= {AW{1'b0}};
        filled_reg <= {RW{1'b0}};
    end
end

// ---------------------------------------------------------------- reader

reg [CBW-1:0] cb_reg;
reg [KW-1:0] kx_reg;
reg [KW-1:0] ky_reg;
reg [OXW-1:0] ox_reg;
reg [OYW-1:0] oy_reg;
reg [CW-1:0] row_reg;             // input row of (oy, ky), may be negative
reg [CW-1:0] col_reg;             // input column of (ox, kx), may be negative
reg [CW-1:0] oxcol_reg;           // ox*STRIDE - PAD
reg [CW-1:0] lo_reg;              // oy*STRIDE - PAD: first row of the output row
reg [CW-1:0] hi_reg;              // oy*STRIDE - PAD + K: one past its last row
reg [CW-1:0] base_row_reg;        // oldest row of this frame still held
reg [AW-1:0] frame_addr_reg;      // slot address of this frame's row 0
reg [AW-1:0] orow_addr_reg;       // slot address of row lo_reg (mod the ring)
reg [AW-1:0] ky_addr_reg;         // slot address of row row_reg (mod the ring)
reg [AW-1:0] ox_addr_reg;         // (ox*STRIDE - PAD) * CB, mod 2**AW
reg [AW-1:0] col_addr_reg;        // col_reg * CB + cb, mod 2**AW
reg row_open_reg;                 // the current output row has issued its first beat

reg rd_valid_reg;
reg rd_zero_reg;
reg rd_last_reg;
reg [DW-1:0] out_reg;
reg out_last_reg;
reg out_valid_reg;
reg [DW-1:0] skid_reg;
reg skid_last_reg;
reg skid_valid_reg;

wire last_cb = cb_reg == CB_END[CBW-1:0];
wire last_kx = kx_reg == K_END[KW-1:0];
wire last_ky = ky_reg == K_END[KW-1:0];
wire last_ox = ox_reg == OX_END[OXW-1:0];
wire last_oy = oy_reg == OY_END[OYW-1:0];
wire frame_end = last_cb && last_kx && last_ky && last_ox && last_oy;

wire [CW-1:0] need_hi = hi_reg < R_USED[CW-1:0] ? hi_reg : R_USED[CW-1:0];
wire [CW-1:0] have_hi = base_row_reg + {{(CW-RW){1'b0}}, filled_reg};
wire [CW-1:0] first_row = lo_reg[CW-1] ? {CW{1'b0}} : lo_reg;

// Issue credit: beats in the read stage plus the output buffer stay within 2 entries.
wire pop = out_valid_reg && m_axis_tready;
wire occ_two = (rd_valid_reg && out_valid_reg) || (rd_valid_reg && skid_valid_reg)
               || (out_valid_reg && skid_valid_reg);
wire room = !occ_two || pop;
wire issue = room && (row_open_reg || have_hi >= need_hi);
wire do_rel = issue && (frame_end || !row_open_reg);
// The difference is at most ROWS, so its low RW bits are exact.
wire [RW-1:0] rel_rows = (frame_end ? R_USED[RW-1:0] : first_row[RW-1:0])
                         - base_row_reg[RW-1:0];
assign rel = do_rel ? rel_rows : {RW{1'b0}};

wire in_image = row_reg < IN_H[CW-1:0] && col_reg < IN_W[CW-1:0];
wire [AW-1:0] rd_addr = in_image ? ky_addr_reg + col_addr_reg : {AW{1'b0}};

wire [AW-1:0] orow_next = ring_add(orow_addr_reg, STEP_OROW[AW-1:0]);
wire [AW-1:0] frame_next = ring_add(frame_addr_reg, STEP_FRAME[AW-1:0]);
wire [AW-1:0] frame_orow = ring_add(frame_next, STEP_UNPAD[AW-1:0]);

always @(posedge clk) begin
    if (issue) begin
        rdata_reg <= mem[rd_addr];
    end
end

always @(posedge clk) begin
    if (do_rel) begin
        base_row_reg <= frame_end ? {CW{1'b0}} : first_row;
    end
    if (issue) begin
        row_open_reg <= !(last_cb && last_kx && last_ky && last_ox);
        cb_reg <= last_cb ? {CBW{1'b0}} : cb_reg + 1'b1;
        col_addr_reg <= col_addr_reg + 1'b1;
        if (last_cb) begin
            kx_reg <= last_kx ? {KW{1'b0}} : kx_reg + 1'b1;
            col_reg <= col_reg + 1'b1;
            if (last_kx) begin
                ky_reg <= last_ky ? {KW{1'b0}} : ky_reg + 1'b1;
                row_reg <= row_reg + 1'b1;
                ky_addr_reg <= ring_add(ky_addr_reg, STEP_ROW[AW-1:0]);
                col_reg <= oxcol_reg;
                col_addr_reg <= ox_addr_reg;
                if (last_ky) begin
                    ox_reg <= last_ox ? {OXW{1'b0}} : ox_reg + 1'b1;
                    oxcol_reg <= oxcol_reg + STRIDE[CW-1:0];
                    ox_addr_reg <= ox_addr_reg + STRIDE_CB[AW-1:0];
                    col_reg <= oxcol_reg + STRIDE[CW-1:0];
                    col_addr_reg <= ox_addr_reg + STRIDE_CB[AW-1:0];
                    row_reg <= lo_reg;
                    ky_addr_reg <= orow_addr_reg;
                    if (last_ox) begin
                        oy_reg <= last_oy ? {OYW{1'b0}} : oy_reg + 1'b1;
                        lo_reg <= lo_reg + STRIDE[CW-1:0];
                        hi_reg <= hi_reg + STRIDE[CW-1:0];
                        row_reg <= lo_reg + STRIDE[CW-1:0];
                        orow_addr_reg <= orow_next;
                        ky_addr_reg <= orow_next;
                        oxcol_reg <= NEG_PAD[CW-1:0];
                        col_reg <= NEG_PAD[CW-1:0];
                        ox_addr_reg <= NEG_PAD_CB[AW-1:0];
                        col_addr_reg <= NEG_PAD_CB[AW-1:0];
                        if (last_oy) begin
                            lo_reg <= NEG_PAD[CW-1:0];
                            hi_reg <= HI_START[CW-1:0];
                            row_reg <= NEG_PAD[CW-1:0];
                            frame_addr_reg <= frame_next;
                            orow_addr_reg <= frame_orow;
                            ky_addr_reg <= frame_orow;
                        end
                    end
                end
            end
        end
    end

    if (rst) begin
        cb_reg <= {CBW{1'b0}};
        kx_reg <= {KW{1'b0}};
        ky_reg <= {KW{1'b0}};
        ox_reg <= {OXW{1'b0}};
        oy_reg <= {OYW{1'b0}};
        row_reg <= NEG_PAD[CW-1:0];
        col_reg <= NEG_PAD[CW-1:0];
        oxcol_reg <= NEG_PAD[CW-1:0];
        lo_reg <= NEG_PAD[CW-1:0];
        hi_reg <= HI_START[CW-1:0];
        base_row_reg <= {CW{1'b0}};
        frame_addr_reg <= {AW{1'b0}};
        orow_addr_reg <= STEP_UNPAD[AW-1:0];
        ky_addr_reg <= STEP_UNPAD[AW-1:0];
        ox_addr_reg <= NEG_PAD_CB[AW-1:0];
        col_addr_reg <= NEG_PAD_CB[AW-1:0];
        row_open_reg <= 1'b0;
    end
end

// ---------------------------------------------------------------- output buffer

wire [DW-1:0] rd_data = rd_zero_reg ? {DW{1'b0}} : rdata_reg;

assign m_axis_tdata = out_reg;
assign m_axis_tlast = out_last_reg;
assign m_axis_tvalid = out_valid_reg;

always @(posedge clk) begin
    rd_valid_reg <= issue;
    if (issue) begin
        rd_zero_reg <= !in_image;
        rd_last_reg <= frame_end;
    end

    if (pop && skid_valid_reg) begin
        out_reg <= skid_reg;
        out_last_reg <= skid_last_reg;
        skid_valid_reg <= rd_valid_reg;
        skid_reg <= rd_data;
        skid_last_reg <= rd_last_reg;
    end else if (pop || !out_valid_reg) begin
        out_valid_reg <= rd_valid_reg;
        out_reg <= rd_data;
        out_last_reg <= rd_last_reg;
    end else if (rd_valid_reg) begin
        skid_valid_reg <= 1'b1;
        skid_reg <= rd_data;
        skid_last_reg <= rd_last_reg;
    end

    if (rst) begin
        rd_valid_reg <= 1'b0;
        out_valid_reg <= 1'b0;
        skid_valid_reg <= 1'b0;
    end
end

endmodule

`resetall
