// Copyright the squeezenet-fpga authors. Apache-2.0.
`resetall
`timescale 1ns / 1ps
`default_nettype none

// sqz_fork: AXI4-Stream broadcast, every input beat to both outputs, registered ready.
module sqz_fork #(
    // Payload bits per beat (>= 1)
    parameter DATA_WIDTH = 8
) (
    input  wire                  clk,
    input  wire                  rst,

    // Input stream
    input  wire [DATA_WIDTH-1:0] s_axis_tdata,
    input  wire                  s_axis_tlast,
    input  wire                  s_axis_tvalid,
    output wire                  s_axis_tready,

    // First output stream
    output wire [DATA_WIDTH-1:0] m_axis_tdata,
    output wire                  m_axis_tlast,
    output wire                  m_axis_tvalid,
    input  wire                  m_axis_tready,

    // Second output stream
    output wire [DATA_WIDTH-1:0] m_axis_b_tdata,
    output wire                  m_axis_b_tlast,
    output wire                  m_axis_b_tvalid,
    input  wire                  m_axis_b_tready
);

// Each output owns a two-word buffer (output register + skid register). The input is
// taken only while both buffers hold at most one word, decided one cycle ahead, so
// s_axis_tready is a register (no combinational path from either m_axis_tready) and
// the two consumers may accept at unrelated times at full throughput.

localparam WORD_WIDTH = DATA_WIDTH + 1;

initial begin
    if (DATA_WIDTH < 1) begin
        $error("sqz_fork: DATA_WIDTH must be >= 1");
        $finish;
    end
end

reg s_ready_reg;

reg [WORD_WIDTH-1:0] a_out_reg, a_skid_reg;
reg a_out_valid_reg, a_skid_valid_reg;
reg [WORD_WIDTH-1:0] b_out_reg, b_skid_reg;
reg b_out_valid_reg, b_skid_valid_reg;

wire [WORD_WIDTH-1:0] in_word = {s_axis_tlast, s_axis_tdata};
wire push = s_axis_tvalid && s_ready_reg;
wire a_pop = a_out_valid_reg && m_axis_tready;
wire b_pop = b_out_valid_reg && m_axis_b_tready;

// Words held after this edge, per output: current + push - pop (0..2).
wire [1:0] a_count_next = {1'b0, a_out_valid_reg} + {1'b0, a_skid_valid_reg}
                          + {1'b0, push} - {1'b0, a_pop};
wire [1:0] b_count_next = {1'b0, b_out_valid_reg} + {1'b0, b_skid_valid_reg}
                          + {1'b0, push} - {1'b0, b_pop};

assign s_axis_tready = s_ready_reg;

assign m_axis_tdata = a_out_reg[DATA_WIDTH-1:0];
assign m_axis_tlast = a_out_reg[DATA_WIDTH];
assign m_axis_tvalid = a_out_valid_reg;

assign m_axis_b_tdata = b_out_reg[DATA_WIDTH-1:0];
assign m_axis_b_tlast = b_out_reg[DATA_WIDTH];
assign m_axis_b_tvalid = b_out_valid_reg;

always @(posedge clk) begin
    s_ready_reg <= a_count_next != 2'd2 && b_count_next != 2'd2;

    // Output a: the skid word (older) moves to the output register first.
    if (a_pop || !a_out_valid_reg) begin
        if (a_skid_valid_reg) begin
            a_out_reg <= a_skid_reg;
            a_out_valid_reg <= 1'b1;
            a_skid_reg <= in_word;
            a_skid_valid_reg <= push;
        end else begin
            a_out_reg <= in_word;
            a_out_valid_reg <= push;
        end
    end else if (push) begin
        a_skid_reg <= in_word;
        a_skid_valid_reg <= 1'b1;
    end

    // Output b: same buffer.
    if (b_pop || !b_out_valid_reg) begin
        if (b_skid_valid_reg) begin
            b_out_reg <= b_skid_reg;
            b_out_valid_reg <= 1'b1;
            b_skid_reg <= in_word;
            b_skid_valid_reg <= push;
        end else begin
            b_out_reg <= in_word;
            b_out_valid_reg <= push;
        end
    end else if (push) begin
        b_skid_reg <= in_word;
        b_skid_valid_reg <= 1'b1;
    end

    if (rst) begin
        s_ready_reg <= 1'b0;
        a_out_valid_reg <= 1'b0;
        a_skid_valid_reg <= 1'b0;
        b_out_valid_reg <= 1'b0;
        b_skid_valid_reg <= 1'b0;
    end
end

endmodule

`resetall
