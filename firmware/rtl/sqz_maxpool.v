// Copyright the squeezenet-fpga authors. Apache-2.0.
`resetall
`timescale 1ns / 1ps
`default_nettype none

// sqz_maxpool: KxK / STRIDE max-pool, Caffe ceil mode, with a line buffer of partial maxima.
module sqz_maxpool #(
    // Input map height and width (>= K each)
    parameter IN_H = 8,
    parameter IN_W = 8,
    // Channels per pixel (>= 1, a multiple of LANES)
    parameter C = 8,
    // Elements per beat, in and out (>= 1, divides C)
    parameter LANES = 4,
    // Window size and stride (1 <= STRIDE <= K <= STRIDE + 1; SqueezeNet: 3 and 2)
    parameter K = 3,
    parameter STRIDE = 2,
    // Bits per unsigned element (>= 1)
    parameter BITS = 8
) (
    input  wire                  clk,
    input  wire                  rst,

    // Input stream: C/LANES beats per pixel, row-major pixels
    input  wire [LANES*BITS-1:0] s_axis_tdata,
    input  wire                  s_axis_tlast,
    input  wire                  s_axis_tvalid,
    output wire                  s_axis_tready,

    // Output stream: the pooled map, same pixel format
    output wire [LANES*BITS-1:0] m_axis_tdata,
    output wire                  m_axis_tlast,
    output wire                  m_axis_tvalid,
    input  wire                  m_axis_tready
);

// Separable: a horizontal pass, then a vertical pass, each a read-modify-write of partial
// maxima. With K <= STRIDE + 1 at most one window per axis stays open past any column
// (row), so one partial per channel word suffices: the horizontal partials are a memory
// of C/LANES words, the vertical ones a line buffer of OUT_W*C/LANES words. Along an
// axis, position p with phase r = p % STRIDE:
//   - K == STRIDE+1, r == 0, p >= STRIDE: p closes the previous window (partial max p)
//     and opens the next one (partial := p);
//   - otherwise r == 0 opens a window (partial := p), r > 0 extends it, and the window
//     closes at r == K-1 or at the last position (Caffe ceil mode: the edge window takes
//     the positions that exist).
// Each memory is read when its beat enters a stage and written one cycle later; the one
// hazard (the next beat reading the word being written) is closed by forwarding the last
// written word. The stages never stall: the input is taken only while a 4-entry output
// FIFO has room for every beat in flight, so s_axis_tready is a function of registers
// and one beat per clock is sustained. Input tlast is ignored.

localparam integer CB = C / LANES;
localparam integer OW0 = (IN_W - K + STRIDE - 1) / STRIDE + 1;
localparam integer OUT_W = (OW0 - 1) * STRIDE >= IN_W ? OW0 - 1 : OW0;
localparam integer VWORDS = OUT_W * CB;
localparam DW = LANES * BITS;
localparam CBW = CB < 2 ? 1 : $clog2(CB);
localparam VAW = VWORDS < 2 ? 1 : $clog2(VWORDS);
localparam XW = IN_W < 2 ? 1 : $clog2(IN_W);
localparam YW = IN_H < 2 ? 1 : $clog2(IN_H);
localparam SW = STRIDE < 2 ? 1 : $clog2(STRIDE);
localparam integer CB_END = CB - 1;
localparam integer X_END = IN_W - 1;
localparam integer Y_END = IN_H - 1;
localparam integer S_END = STRIDE - 1;
localparam integer V_END = VWORDS - 1;
localparam [0:0] OVERLAP = K == STRIDE + 1;
localparam [0:0] CLOSE_ON_PHASE = K == STRIDE;
localparam integer R_CLOSE = K == STRIDE ? K - 1 : 0;

initial begin
    if (C < 1 || LANES < 1 || BITS < 1 || C % LANES != 0) begin
        $error("sqz_maxpool: C, LANES, BITS must be >= 1 and LANES divide C");
        $finish;
    end
    if (STRIDE < 1 || K < STRIDE || K > STRIDE + 1) begin
        $error("sqz_maxpool: need 1 <= STRIDE <= K <= STRIDE + 1");
        $finish;
    end
    if (IN_H < K || IN_W < K) begin
        $error("sqz_maxpool: IN_H and IN_W must be >= K");
        $finish;
    end
end

wire unused_tlast = s_axis_tlast;

function [DW-1:0] lane_max;
    input [DW-1:0] a;
    input [DW-1:0] b;
    integer i;
    begin
        for (i = 0; i < LANES; i = i + 1) begin
            lane_max[i*BITS +: BITS] = a[i*BITS +: BITS] > b[i*BITS +: BITS]
                                       ? a[i*BITS +: BITS] : b[i*BITS +: BITS];
        end
    end
endfunction

// ---------------------------------------------------------------- stage 0: accept

reg [CBW-1:0] cb_reg;
reg [XW-1:0] x_reg;
reg [SW-1:0] xr_reg;              // x % STRIDE
reg x_past_reg;                   // x >= STRIDE
reg [YW-1:0] y_reg;
reg [SW-1:0] yr_reg;              // y % STRIDE
reg y_past_reg;                   // y >= STRIDE

reg s1_valid_reg;
reg s2_valid_reg;
reg [2:0] fifo_wr_reg;
reg [2:0] fifo_rd_reg;
wire [2:0] fifo_count = fifo_wr_reg - fifo_rd_reg;

// Credit: every beat in stage 1 or 2 may still push one output.
wire [2:0] in_flight = fifo_count + {2'b00, s1_valid_reg} + {2'b00, s2_valid_reg};
assign s_axis_tready = in_flight < 3'd4;
wire in_fire = s_axis_tvalid && s_axis_tready;

wire last_cb = cb_reg == CB_END[CBW-1:0];
wire last_x = x_reg == X_END[XW-1:0];
wire last_y = y_reg == Y_END[YW-1:0];
wire xr_end = xr_reg == S_END[SW-1:0];
wire yr_end = yr_reg == S_END[SW-1:0];

wire h_overlap = OVERLAP && xr_reg == 0 && x_past_reg;
wire h_emit = h_overlap || (CLOSE_ON_PHASE && xr_reg == R_CLOSE[SW-1:0]) || last_x;
wire v_overlap = OVERLAP && yr_reg == 0 && y_past_reg;
wire v_emit = v_overlap || (CLOSE_ON_PHASE && yr_reg == R_CLOSE[SW-1:0]) || last_y;

always @(posedge clk) begin
    if (in_fire) begin
        cb_reg <= last_cb ? {CBW{1'b0}} : cb_reg + 1'b1;
        if (last_cb) begin
            x_reg <= last_x ? {XW{1'b0}} : x_reg + 1'b1;
            xr_reg <= xr_end || last_x ? {SW{1'b0}} : xr_reg + 1'b1;
            x_past_reg <= !last_x && (x_past_reg || xr_end);
            if (last_x) begin
                y_reg <= last_y ? {YW{1'b0}} : y_reg + 1'b1;
                yr_reg <= yr_end || last_y ? {SW{1'b0}} : yr_reg + 1'b1;
                y_past_reg <= !last_y && (y_past_reg || yr_end);
            end
        end
    end
    if (rst) begin
        cb_reg <= {CBW{1'b0}};
        x_reg <= {XW{1'b0}};
        xr_reg <= {SW{1'b0}};
        x_past_reg <= 1'b0;
        y_reg <= {YW{1'b0}};
        yr_reg <= {SW{1'b0}};
        y_past_reg <= 1'b0;
    end
end

// ---------------------------------------------------------------- stage 1: horizontal

reg [DW-1:0] hmem [0:CB-1];
reg [DW-1:0] hmem_q;
reg [DW-1:0] s1_data_reg;
reg [CBW-1:0] s1_addr_reg;
reg s1_fresh_reg;                 // phase 0: the partial restarts from this column
reg s1_first_reg;                 // the closing window starts at this column
reg s1_emit_reg;
reg s1_vfresh_reg;
reg s1_vfirst_reg;
reg s1_vemit_reg;
reg s1_last_reg;
reg hw_valid_reg;
reg [CBW-1:0] hw_addr_reg;
reg [DW-1:0] hw_data_reg;

wire [DW-1:0] h_old = hw_valid_reg && hw_addr_reg == s1_addr_reg ? hw_data_reg : hmem_q;
wire [DW-1:0] h_max = lane_max(h_old, s1_data_reg);
wire [DW-1:0] h_val = s1_first_reg ? s1_data_reg : h_max;
wire [DW-1:0] h_new = s1_fresh_reg ? s1_data_reg : h_max;

always @(posedge clk) begin
    if (in_fire) begin
        hmem_q <= hmem[cb_reg];
    end
    if (s1_valid_reg) begin
        hmem[s1_addr_reg] <= h_new;
    end
end

always @(posedge clk) begin
    s1_valid_reg <= in_fire;
    if (in_fire) begin
        s1_data_reg <= s_axis_tdata;
        s1_addr_reg <= cb_reg;
        s1_fresh_reg <= xr_reg == 0;
        s1_first_reg <= xr_reg == 0 && !h_overlap;
        s1_emit_reg <= h_emit;
        s1_vfresh_reg <= yr_reg == 0;
        s1_vfirst_reg <= yr_reg == 0 && !v_overlap;
        s1_vemit_reg <= v_emit;
        s1_last_reg <= last_cb && last_x && last_y;
    end
    hw_valid_reg <= s1_valid_reg;
    hw_addr_reg <= s1_addr_reg;
    hw_data_reg <= h_new;
    if (rst) begin
        s1_valid_reg <= 1'b0;
        hw_valid_reg <= 1'b0;
    end
end

// ---------------------------------------------------------------- stage 2: vertical

reg [DW-1:0] vmem [0:VWORDS-1];
reg [DW-1:0] vmem_q;
reg [VAW-1:0] vaddr_reg;          // (output column, channel word) of the next h result
reg [DW-1:0] s2_data_reg;
reg [VAW-1:0] s2_addr_reg;
reg s2_fresh_reg;
reg s2_first_reg;
reg s2_emit_reg;
reg s2_last_reg;
reg vw_valid_reg;
reg [VAW-1:0] vw_addr_reg;
reg [DW-1:0] vw_data_reg;

wire h_push = s1_valid_reg && s1_emit_reg;
wire [DW-1:0] v_old = vw_valid_reg && vw_addr_reg == s2_addr_reg ? vw_data_reg : vmem_q;
wire [DW-1:0] v_max = lane_max(v_old, s2_data_reg);
wire [DW-1:0] v_val = s2_first_reg ? s2_data_reg : v_max;
wire [DW-1:0] v_new = s2_fresh_reg ? s2_data_reg : v_max;

always @(posedge clk) begin
    if (h_push) begin
        vmem_q <= vmem[vaddr_reg];
    end
    if (s2_valid_reg) begin
        vmem[s2_addr_reg] <= v_new;
    end
end

always @(posedge clk) begin
    s2_valid_reg <= h_push;
    if (h_push) begin
        vaddr_reg <= vaddr_reg == V_END[VAW-1:0] ? {VAW{1'b0}} : vaddr_reg + 1'b1;
        s2_data_reg <= h_val;
        s2_addr_reg <= vaddr_reg;
        s2_fresh_reg <= s1_vfresh_reg;
        s2_first_reg <= s1_vfirst_reg;
        s2_emit_reg <= s1_vemit_reg;
        s2_last_reg <= s1_last_reg;
    end
    vw_valid_reg <= s2_valid_reg;
    vw_addr_reg <= s2_addr_reg;
    vw_data_reg <= v_new;
    if (rst) begin
        vaddr_reg <= {VAW{1'b0}};
        s2_valid_reg <= 1'b0;
        vw_valid_reg <= 1'b0;
    end
end

// ---------------------------------------------------------------- output FIFO

reg [DW:0] fifo [0:3];
wire push = s2_valid_reg && s2_emit_reg;
wire pop = fifo_count != 0 && m_axis_tready;

assign m_axis_tdata = fifo[fifo_rd_reg[1:0]][DW-1:0];
assign m_axis_tlast = fifo[fifo_rd_reg[1:0]][DW];
assign m_axis_tvalid = fifo_count != 0;

always @(posedge clk) begin
    if (push) begin
        fifo[fifo_wr_reg[1:0]] <= {s2_last_reg, v_val};
        fifo_wr_reg <= fifo_wr_reg + 1'b1;
    end
    if (pop) begin
        fifo_rd_reg <= fifo_rd_reg + 1'b1;
    end
    if (rst) begin
        fifo_wr_reg <= 3'd0;
        fifo_rd_reg <= 3'd0;
    end
end

endmodule

`resetall
