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

`ifdef SQZ_FIFO_STATS
// Simulation only (sim/fast.py defines it): the peak number of words held (RAM plus the
// output register) and the cycles a beat was offered while the RAM was full, printed once
// at the end (both restart at every reset), so that the planned depths can be checked
// against what the simulated frames really needed; also the words held at the end (a
// deadlocked run names the FIFOs that were full when it stopped).
localparam STATS_WIDTH = ADDR_WIDTH + 2;
reg [STATS_WIDTH-1:0] stats_peak_reg;
reg [63:0] stats_full_cycles_reg;
wire [ADDR_WIDTH:0] stats_ram_words = wr_ptr_reg - rd_ptr_reg;
wire [STATS_WIDTH-1:0] stats_words = {1'b0, stats_ram_words}
                                     + {{STATS_WIDTH-1{1'b0}}, out_valid_reg};

always @(posedge clk) begin
    if (rst) begin
        stats_peak_reg <= {STATS_WIDTH{1'b0}};
        stats_full_cycles_reg <= 64'd0;
    end else begin
        if (stats_words > stats_peak_reg) begin
            stats_peak_reg <= stats_words;
        end
        if (s_axis_tvalid && full) begin
            stats_full_cycles_reg <= stats_full_cycles_reg + 64'd1;
        end
    end
end

final begin
    $display("SQZ_FIFO_STATS %m depth=%0d width=%0d words=%0d peak=%0d full_cycles=%0d now=%0d",
             DEPTH, DATA_WIDTH, (1 << ADDR_WIDTH) + 1, stats_peak_reg, stats_full_cycles_reg,
             stats_words);
end
`endif

endmodule

`resetall
