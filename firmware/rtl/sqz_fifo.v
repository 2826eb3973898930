// Copyright the squeezenet-fpga authors. Apache-2.0.
`resetall
`timescale 1ns / 1ps
`default_nettype none

// sqz_fifo: AXI4-Stream FIFO, first-word fall-through, memory BRAM/LUTRAM inferable.
module sqz_fifo #(
    // Payload bits per beat (>= 1)
    parameter DATA_WIDTH = 8,
    // Words held in the memory; rounded up to a power of two (>= 2). One more word sits
    // in the output register, so the FIFO holds 2**clog2(DEPTH) + 1 words.
    parameter DEPTH = 16
) (
    input  wire                  clk,
    input  wire                  rst,

    // Input stream
    input  wire [DATA_WIDTH-1:0] s_axis_tdata,
    input  wire                  s_axis_tlast,
    input  wire                  s_axis_tvalid,
    output wire                  s_axis_tready,

    // Output stream
    output wire [DATA_WIDTH-1:0] m_axis_tdata,
    output wire                  m_axis_tlast,
    output wire                  m_axis_tvalid,
    input  wire                  m_axis_tready
);

localparam ADDR_WIDTH = DEPTH < 2 ? 1 : $clog2(DEPTH);
localparam WORD_WIDTH = DATA_WIDTH + 1;

initial begin
    if (DATA_WIDTH < 1 || DEPTH < 2) begin
        $error("sqz_fifo: DATA_WIDTH must be >= 1 and DEPTH >= 2");
        $finish;
    end
end

reg [WORD_WIDTH-1:0] mem [0:(1 << ADDR_WIDTH)-1];
reg [ADDR_WIDTH:0] wr_ptr_reg;
reg [ADDR_WIDTH:0] rd_ptr_reg;
reg [WORD_WIDTH-1:0] out_reg;
reg out_valid_reg;

wire full = wr_ptr_reg == (rd_ptr_reg ^ {1'b1, {ADDR_WIDTH{1'b0}}});
wire empty = wr_ptr_reg == rd_ptr_reg;
wire load_out = !empty && (m_axis_tready || !out_valid_reg);

assign s_axis_tready = !full;
assign m_axis_tdata = out_reg[DATA_WIDTH-1:0];
assign m_axis_tlast = out_reg[DATA_WIDTH];
assign m_axis_tvalid = out_valid_reg;

always @(posedge clk) begin
    if (s_axis_tvalid && !full) begin
        mem[wr_ptr_reg[ADDR_WIDTH-1:0]] <= {s_axis_tlast, s_axis_tdata};
        wr_ptr_reg <= wr_ptr_reg + 1'b1;
    end
    if (load_out) begin
        out_reg <= mem[rd_ptr_reg[ADDR_WIDTH-1:0]];
        rd_ptr_reg <= rd_ptr_reg + 1'b1;
        out_valid_reg <= 1'b1;
    end else if (m_axis_tready) begin
        out_valid_reg <= 1'b0;
    end
    if (rst) begin
        wr_ptr_reg <= {ADDR_WIDTH+1{1'b0}};
        rd_ptr_reg <= {ADDR_WIDTH+1{1'b0}};
        out_valid_reg <= 1'b0;
    end
end

endmodule

`resetall
