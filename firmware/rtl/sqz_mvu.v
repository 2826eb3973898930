// Copyright the squeezenet-fpga authors. Apache-2.0.
`resetall
`timescale 1ns / 1ps
`default_nettype none

// sqz_mvu: matrix-vector unit of a convolution block, PE x SIMD multipliers, weights in ROM.
// With SHARE_BITS > 0 (Deep Compression weight sharing) the ROM holds SHARE_BITS-bit
// indices and every lane looks its weight up in a 2**SHARE_BITS-entry codebook held in
// registers, so the block RAM shrinks by W_BITS / SHARE_BITS. With DSP_PACK = 1 two PEs
// share each multiplier (two 8-bit products per DSP48E2).
module sqz_mvu #(
    // Input vector length K*K*C (>= 1; a multiple of SIMD)
    parameter N_IN = 27,
    // Output channels (>= 1; a multiple of PE)
    parameter N_OUT = 8,
    // Input elements per beat, multiplied in parallel (>= 1; divides N_IN)
    parameter SIMD = 3,
    // Output channels per beat, computed in parallel (>= 1; divides N_OUT)
    parameter PE = 2,
    // Vectors (output pixels) per frame (>= 1); m_axis_tlast marks the frame's last beat
    parameter VECTORS = 1,
    // Bits of an unsigned input element (1 .. 32)
    parameter IN_BITS = 8,
    // Bits of a signed weight (2 .. 32)
    parameter W_BITS = 8,
    // Bits of a signed bias (2 .. 48)
    parameter BIAS_BITS = 16,
    // Left shift aligning the bias to the accumulator LSB: acc_frac - bias_frac (>= 0)
    parameter BIAS_SHIFT = 0,
    // Signed accumulator bits (2 .. 48); sized by the generator so the exact sum fits
    parameter ACC_BITS = 24,
    // Requantization shift acc_frac - out_frac (any integer; <= 0 is a left shift by -SHIFT)
    parameter SHIFT = 8,
    // Bits of an unsigned output element (1 .. 32)
    parameter OUT_BITS = 8,
    // Weight sharing: 0 = the ROM holds the weights; 1 .. 8 = it holds codebook indices
    parameter SHARE_BITS = 0,
    // Multipliers: 0 = one per lane; 1 = PEs 2k and 2k+1 share one 27x18 multiply (one
    // DSP48E2) for each SIMD lane: PE/2 * SIMD multipliers. Needs an even PE, IN_BITS <= 8
    // and W_BITS <= 8; the ROM layout and the latency are those of DSP_PACK = 0. Saves
    // DSPs on UltraScale(+) only: a 7-series DSP48E1 multiplies 25 x 18, two per pair
    parameter DSP_PACK = 0,
    // Output FIFO words: a power of two >= clog2(SIMD) + 8 (the generator passes the value
    // hls.plan.streams.mvu_fifo_depth gives; 16 covers SIMD <= 256)
    parameter OUT_FIFO_DEPTH = 16,
    // Absolute paths of the $readmemh images (layouts: firmware/rtl/README.md, written by
    // hls/rtl_mem.py): N_IN/SIMD * N_OUT/PE words of PE*SIMD*W_BITS bits (PE*SIMD*
    // SHARE_BITS with sharing), N_OUT/PE words of PE*BIAS_BITS bits, and (sharing only)
    // 2**SHARE_BITS words of W_BITS bits
    parameter WEIGHT_FILE = "",
    parameter BIAS_FILE = "",
    parameter CODEBOOK_FILE = ""
) (
    input  wire                     clk,
    input  wire                     rst,

    // Input stream: one vector is N_IN/SIMD beats; tlast is ignored
    input  wire [SIMD*IN_BITS-1:0]  s_axis_tdata,
    input  wire                     s_axis_tlast,
    input  wire                     s_axis_tvalid,
    output wire                     s_axis_tready,

    // Output stream: N_OUT/PE beats per vector, tlast on the last beat of the last vector
    output wire [PE*OUT_BITS-1:0]   m_axis_tdata,
    output wire                     m_axis_tlast,
    output wire                     m_axis_tvalid,
    input  wire                     m_axis_tready
);

// A vector is processed as SF*NF steps in the order nf-major, sf-minor (the weight ROM's
// address order), one step per clock. Steps of fold nf = 0 take the input beat and also
// store it in a vector buffer of SF words; folds nf > 0 replay the buffer, so the input is
// read once per vector and waits (tready low) while they run.
//
// Pipeline (valid flags travel with the data and enable each stage's registers):
//   issue  -> S1: weight ROM and vector buffer registered reads, input beat register
//   S1     -> S2: PE*SIMD products, registered (DSP_PACK = 1: PE/2*SIMD packed products,
//                 each register holding two lanes, split by wiring)
//   S2     -> LEVELS = clog2(SIMD) registered adder-tree levels, one pair-sum per level
//   tree   -> accumulators: PE of ACC_BITS, started at (bias << BIAS_SHIFT) on sf = 0
//   acc    -> requantization (AP_RND, ReLU + AP_SAT) register -> output FIFO
// Each stage's registers load only when its valid flag is set (a clock enable: the FFs'
// CE pin, no extra logic), so an idle block does not toggle, and a simulator skips the
// requantization on all but one step in SF.
// Backpressure never stalls the pipeline: a step that completes an output beat (sf =
// SF-1) issues only while the beats in flight plus those in the FIFO are fewer than the
// FIFO holds, so the FIFO always has room. The FIFO is deep enough that this credit
// limit is never reached while the output is ready: one step per clock sustained.
// The bias word of the next fold is read (registered) when a fold completes, so it waits
// in bias_q_reg for that fold's first step.

localparam integer SF = N_IN / SIMD;
localparam integer NF = N_OUT / PE;
localparam integer STEPS = SF * NF;
localparam SFW = SF < 2 ? 1 : $clog2(SF);
localparam NFW = NF < 2 ? 1 : $clog2(NF);
localparam VW = VECTORS < 2 ? 1 : $clog2(VECTORS);
localparam AW = STEPS < 2 ? 1 : $clog2(STEPS);
localparam integer SF_END = SF - 1;
localparam integer NF_END = NF - 1;
localparam integer VEC_END = VECTORS - 1;
localparam integer STEP_END = STEPS - 1;

localparam X_WIDTH = SIMD * IN_BITS;
localparam ROM_LANE = SHARE_BITS > 0 ? SHARE_BITS : W_BITS;
localparam W_WIDTH = PE * SIMD * ROM_LANE;
localparam integer CB_SIZE = SHARE_BITS > 0 ? 1 << SHARE_BITS : 1;
localparam B_WIDTH = PE * BIAS_BITS;
localparam Y_WIDTH = PE * OUT_BITS;

// An unsigned IN_BITS x signed W_BITS product fits IN_BITS + W_BITS signed bits exactly.
localparam PROD_BITS = IN_BITS + W_BITS;
localparam LEVELS = SIMD < 2 ? 0 : $clog2(SIMD);
localparam integer LEAVES = 1 << LEVELS;
localparam TREE_BITS = PROD_BITS + LEVELS;
localparam integer FLAG_STAGES = LEVELS + 1;   // products + tree levels

// Issue to FIFO write is LEVELS + 4 clocks and the FIFO adds 2 before a beat can leave,
// so LEVELS + 7 beats may be in flight at full rate; one more word keeps the credit limit
// out of the way: OUT_FIFO_DEPTH >= LEVELS + 8 (checked below).
localparam FW = $clog2(OUT_FIFO_DEPTH);
localparam integer FIFO_DEPTH = OUT_FIFO_DEPTH;
localparam CW = FW + 1;

// Requantization width: the accumulator, a rounding carry, any left shift; at least two
// bits above the output (sign and overflow tests) and one above the right shift.
localparam LSHIFT = SHIFT < 0 ? -SHIFT : 0;
localparam R0 = ACC_BITS + 1 + LSHIFT;
localparam R1 = R0 > OUT_BITS + 2 ? R0 : OUT_BITS + 2;
localparam R_BITS = R1 > SHIFT + 1 ? R1 : SHIFT + 1;

// Sign-extension widths, one bit wider than both sides so no replication count is zero.
localparam BX0 = BIAS_BITS + BIAS_SHIFT;
localparam BX_BITS = (BX0 > ACC_BITS ? BX0 : ACC_BITS) + 1;
localparam TX_BITS = (TREE_BITS > ACC_BITS ? TREE_BITS : ACC_BITS) + 1;

initial begin
    if (N_IN < 1 || N_OUT < 1 || SIMD < 1 || PE < 1 || VECTORS < 1) begin
        $error("sqz_mvu: N_IN, N_OUT, SIMD, PE and VECTORS must be >= 1");
        $finish;
    end
    if (N_IN % SIMD != 0 || N_OUT % PE != 0) begin
        $error("sqz_mvu: SIMD must divide N_IN and PE must divide N_OUT");
        $finish;
    end
    if (IN_BITS < 1 || IN_BITS > 32 || W_BITS < 2 || W_BITS > 32 || OUT_BITS < 1
            || OUT_BITS > 32) begin
        $error("sqz_mvu: IN_BITS and OUT_BITS must be 1 .. 32, W_BITS 2 .. 32");
        $finish;
    end
    if (BIAS_BITS < 2 || BIAS_BITS > 48 || BIAS_SHIFT < 0 || ACC_BITS < 2
            || ACC_BITS > 48) begin
        $error("sqz_mvu: BIAS_BITS and ACC_BITS must be 2 .. 48, BIAS_SHIFT >= 0");
        $finish;
    end
    if (SHARE_BITS < 0 || SHARE_BITS > 8) begin
        $error("sqz_mvu: SHARE_BITS must be 0 (no sharing) .. 8");
        $finish;
    end
    if (DSP_PACK < 0 || DSP_PACK > 1) begin
        $error("sqz_mvu %m: DSP_PACK must be 0 (one multiplier per lane) or 1 (two per DSP)");
        $finish;
    end
    if (DSP_PACK == 1 && (PE % 2 != 0 || IN_BITS > 8 || W_BITS > 8)) begin
        $error("sqz_mvu %m: DSP_PACK = 1 needs an even PE (%0d), IN_BITS, W_BITS <= 8 (%0d, %0d)",
               PE, IN_BITS, W_BITS);
        $finish;
    end
    if (OUT_FIFO_DEPTH < LEVELS + 8 || (OUT_FIFO_DEPTH & (OUT_FIFO_DEPTH - 1)) != 0) begin
        $error("sqz_mvu %m: OUT_FIFO_DEPTH %0d is not a power of two >= clog2(SIMD) + 8",
               OUT_FIFO_DEPTH);
        $finish;
    end
end

wire unused_tlast = s_axis_tlast;

// ---------------------------------------------------------------- memories

// Weights in block RAM, as hls4ml's Resource strategy asks for its ROMs: Yosys 0.23
// otherwise maps shallow, wide ROMs to LUTs.
(* rom_style = "block" *)
reg [W_WIDTH-1:0] wrom [0:STEPS-1];
reg [B_WIDTH-1:0] brom [0:NF-1];

`ifndef SYNTHESIS
// $readmemh of a missing file is only a warning in some simulators (the ROM then reads
// X or zero); stop instead, naming the file.
integer fd;
`endif

initial begin
`ifndef SYNTHESIS
    fd = $fopen(WEIGHT_FILE, "r");
    if (fd == 0) begin
        $error("sqz_mvu: cannot open WEIGHT_FILE %0s", WEIGHT_FILE);
        $finish;
    end
    $fclose(fd);
    fd = $fopen(BIAS_FILE, "r");
    if (fd == 0) begin
        $error("sqz_mvu: cannot open BIAS_FILE %0s", BIAS_FILE);
        $finish;
    end
    $fclose(fd);
`endif
    $readmemh(WEIGHT_FILE, wrom);
    $readmemh(BIAS_FILE, brom);
end

// The codebook: a few registers, read by every lane at once (a LUT multiplexer each).
(* rom_style = "logic" *)
reg [W_BITS-1:0] cbook [0:CB_SIZE-1];

generate
if (SHARE_BITS > 0) begin : g_cb_init
    initial begin
`ifndef SYNTHESIS
        fd = $fopen(CODEBOOK_FILE, "r");
        if (fd == 0) begin
            $error("sqz_mvu: cannot open CODEBOOK_FILE %0s", CODEBOOK_FILE);
            $finish;
        end
        $fclose(fd);
`endif
        $readmemh(CODEBOOK_FILE, cbook);
    end
end else begin : g_no_cb
    initial begin
        cbook[0] = {W_BITS{1'b0}};
    end
    wire unused_cbook = ^cbook[0];
end
endgenerate

// ---------------------------------------------------------------- issue

reg [SFW-1:0] sf_reg;
reg [NFW-1:0] nf_reg;
reg [VW-1:0] vec_reg;
reg [AW-1:0] waddr_reg;
reg [CW-1:0] credit_reg;      // output beats issued and not yet taken from m_axis

wire sf_last = sf_reg == SF_END[SFW-1:0];
wire nf_last = nf_reg == NF_END[NFW-1:0];
wire vec_last = vec_reg == VEC_END[VW-1:0];
wire nf_zero = nf_reg == {NFW{1'b0}};
wire step_ok = !sf_last || credit_reg != FIFO_DEPTH[CW-1:0];
wire issue = step_ok && (!nf_zero || s_axis_tvalid);
wire m_fire = m_axis_tvalid && m_axis_tready;

assign s_axis_tready = nf_zero && step_ok;

always @(posedge clk) begin
    if (issue) begin
        sf_reg <= sf_last ? {SFW{1'b0}} : sf_reg + 1'b1;
        waddr_reg <= waddr_reg == STEP_END[AW-1:0] ? {AW{1'b0}} : waddr_reg + 1'b1;
        if (sf_last) begin
            nf_reg <= nf_last ? {NFW{1'b0}} : nf_reg + 1'b1;
            if (nf_last) begin
                vec_reg <= vec_last ? {VW{1'b0}} : vec_reg + 1'b1;
            end
        end
    end
    if (issue && sf_last && !m_fire) begin
        credit_reg <= credit_reg + 1'b1;
    end else if (!(issue && sf_last) && m_fire) begin
        credit_reg <= credit_reg - 1'b1;
    end
    if (rst) begin
        sf_reg <= {SFW{1'b0}};
        nf_reg <= {NFW{1'b0}};
        vec_reg <= {VW{1'b0}};
        waddr_reg <= {AW{1'b0}};
        credit_reg <= {CW{1'b0}};
    end
end

// ---------------------------------------------------------------- S1: operands

reg [W_WIDTH-1:0] w_reg;
reg [X_WIDTH-1:0] xin_reg;
reg s1_valid_reg;
reg [2:0] s1_flags_reg;       // {frame's last beat, sf = SF-1, sf = 0}
wire [X_WIDTH-1:0] s1_x;

always @(posedge clk) begin
    if (issue) begin
        w_reg <= wrom[waddr_reg];
        xin_reg <= s_axis_tdata;
        s1_flags_reg <= {sf_last && nf_last && vec_last, sf_last, sf_reg == {SFW{1'b0}}};
    end
    s1_valid_reg <= issue;
    if (rst) begin
        s1_valid_reg <= 1'b0;
    end
end

generate
if (NF == 1) begin : g_nobuf
    // One neuron fold: every step takes a fresh input beat, nothing to replay.
    assign s1_x = xin_reg;
end else begin : g_buf
    // Block RAM: Yosys 0.23 picks LUTRAM for a 512-deep buffer here and then fails in
    // lutrams_xc5v_map.v ("invalid OPTION_ABITS/WIDTH combination").
    (* ram_style = "block" *)
    reg [X_WIDTH-1:0] vbuf [0:SF-1];
    reg [X_WIDTH-1:0] vbuf_q_reg;
    reg sel_in_reg;
    always @(posedge clk) begin
        if (issue && nf_zero) begin
            vbuf[sf_reg] <= s_axis_tdata;
        end
        if (issue) begin
            vbuf_q_reg <= vbuf[sf_reg];
            sel_in_reg <= nf_zero;
        end
    end
    assign s1_x = sel_in_reg ? xin_reg : vbuf_q_reg;
end
endgenerate

// ---------------------------------------------------------------- pipeline flags

// Valid and flags ride along the products and the tree levels.
reg [4*FLAG_STAGES-1:0] flags_reg;
wire [4*FLAG_STAGES+3:0] flag_chain = {flags_reg, s1_flags_reg, s1_valid_reg};
wire a_valid = flag_chain[4*FLAG_STAGES];
wire a_first = flag_chain[4*FLAG_STAGES+1];
wire a_last = flag_chain[4*FLAG_STAGES+2];
wire a_flast = flag_chain[4*FLAG_STAGES+3];

always @(posedge clk) begin
    flags_reg <= flag_chain[4*FLAG_STAGES-1:0];
    if (rst) begin
        flags_reg <= {4*FLAG_STAGES{1'b0}};
    end
end

// Start of tree level k in a flat vector of all levels: level j holds LEAVES >> j sums of
// PROD_BITS + j bits.
function integer level_base;
    input integer k;
    integer j;
    begin
        level_base = 0;
        for (j = 0; j < k; j = j + 1) begin
            level_base = level_base + (LEAVES >> j) * (PROD_BITS + j);
        end
    end
endfunction

localparam integer TREE_NODES_BITS = level_base(LEVELS + 1);

reg [NFW-1:0] bias_nf_reg;    // fold whose bias bias_q_reg holds
reg [B_WIDTH-1:0] bias_q_reg;
wire bias_nf_last = bias_nf_reg == NF_END[NFW-1:0];
wire [NFW-1:0] bias_nf_next = rst || bias_nf_last ? {NFW{1'b0}} : bias_nf_reg + 1'b1;
reg res_valid_reg;
reg res_flast_reg;
wire [Y_WIDTH-1:0] y_q;       // the requantized beat, one register per PE
reg y_valid_reg;
reg y_last_reg;

// AP_RND (add half an LSB, floor; a left shift when SHIFT <= 0), then ReLU + AP_SAT:
// clip to 0 .. 2**OUT_BITS-1. R_BITS holds the sum, the rounding carry and any left shift.
localparam integer RSHIFT = SHIFT > 0 ? SHIFT : 0;
localparam [R_BITS-1:0] HALF = SHIFT > 0 ? {{(R_BITS-1){1'b0}}, 1'b1} << (RSHIFT - 1)
                                         : {R_BITS{1'b0}};

function [OUT_BITS-1:0] requant;
    input [ACC_BITS-1:0] acc;
    reg [R_BITS-1:0] acc_ext;
    reg signed [R_BITS-1:0] shifted;
    begin
        acc_ext = {{(R_BITS-ACC_BITS){acc[ACC_BITS-1]}}, acc};
        shifted = ($signed(acc_ext + HALF) >>> RSHIFT) <<< LSHIFT;
        requant = shifted[R_BITS-1] ? {OUT_BITS{1'b0}}
                  : |shifted[R_BITS-2:OUT_BITS] ? {OUT_BITS{1'b1}} : shifted[OUT_BITS-1:0];
    end
endfunction

// ---------------------------------------------------------------- S2: products

// Lane (p, s)'s weight after the ROM register (and the codebook lookup with sharing), at
// [(p*SIMD + s)*W_BITS +: W_BITS], and its registered product x * w in PROD_BITS signed
// bits, at [(p*SIMD + s)*PROD_BITS +: PROD_BITS].
wire [PE*SIMD*W_BITS-1:0] wv_all;
wire [PE*SIMD*PROD_BITS-1:0] prods;

genvar p, s, k, n;
generate
for (p = 0; p < PE; p = p + 1) begin : g_wlane
    for (s = 0; s < SIMD; s = s + 1) begin : g_wv
        if (SHARE_BITS > 0) begin : g_lookup
            assign wv_all[(p*SIMD + s)*W_BITS +: W_BITS] =
                cbook[w_reg[(p*SIMD + s)*SHARE_BITS +: SHARE_BITS]];
        end else begin : g_direct
            assign wv_all[(p*SIMD + s)*W_BITS +: W_BITS] =
                w_reg[(p*SIMD + s)*W_BITS +: W_BITS];
        end
    end
end

if (DSP_PACK == 0) begin : g_mul1
    for (p = 0; p < PE; p = p + 1) begin : g_pe
        for (s = 0; s < SIMD; s = s + 1) begin : g_lane
            // Both operands extended to PROD_BITS: the product's low PROD_BITS bits are
            // exact, and the multiplier sees an ordinary signed multiply.
            wire [IN_BITS-1:0] xv = s1_x[s*IN_BITS +: IN_BITS];
            wire [W_BITS-1:0] wv = wv_all[(p*SIMD + s)*W_BITS +: W_BITS];
            wire signed [PROD_BITS-1:0] xs = $signed({{W_BITS{1'b0}}, xv});
            wire signed [PROD_BITS-1:0] ws = $signed({{IN_BITS{wv[W_BITS-1]}}, wv});
            reg [PROD_BITS-1:0] prod_reg;
            always @(posedge clk) begin
                if (s1_valid_reg) begin
                    prod_reg <= xs * ws;
                end
            end
            assign prods[(p*SIMD + s)*PROD_BITS +: PROD_BITS] = prod_reg;
        end
    end
end else begin : g_mul2
    // Two lanes that multiply the same activation x share one 27 x 18 signed multiply
    // (AMD WP486/WP487): PE 2k is the low lane, PE 2k+1 the high lane, for each s. With
    // sharing, the codebook's weights are packed the same way. The weight word is
    // w_hi * 2**18 + w_lo (27 bits: the DSP pre-adder's D = w_hi << 18 plus A = w_lo),
    // the 18-bit port takes x zero-extended, and
    //   x * (w_hi * 2**18 + w_lo) = (x * w_hi) * 2**18 + x * w_lo.
    // x * w_lo fits 18 signed bits (|x * w_lo| <= 255 * 128 < 2**17), so the low lane is
    // the product's low bits; where x * w_lo < 0 it borrows one from the bits above, so
    // the high lane is those bits plus the low lane's sign (bit 17). That carry comes
    // from adding 2**17 to the product (the DSP post-adder, C = 2**17), which leaves bits
    // 0 .. 16 alone: afterwards both lanes are plain bit fields of the registered result,
    // and the adder trees and accumulators see exact PROD_BITS products as with
    // DSP_PACK = 0. The scheme was checked in Python over all 256 x 256 x 256
    // (w_hi, w_lo, x). Yosys 0.23 synth_xilinx -family xcup maps each multiply to one
    // DSP48E2 but packs pre-adders, post-adders and registers into DSP48E1 only, so there
    // the two adds (9 and 17 bits wide after its width reduction) go to the fabric.
    localparam integer PK_SHIFT = 18;                     // lane spacing: the B port
    localparam integer PK_A = PK_SHIFT + W_BITS + 1;      // packed weight word, <= 27
    localparam integer PK_P = PK_SHIFT + PROD_BITS;       // product bits kept, <= 34
    localparam [PK_P-1:0] PK_ROUND = {{(PK_P-1){1'b0}}, 1'b1} << (PK_SHIFT - 1);
    for (k = 0; k < PE / 2; k = k + 1) begin : g_pair
        for (s = 0; s < SIMD; s = s + 1) begin : g_lane
            localparam integer LO = (2*k*SIMD + s);       // lane (2k, s)
            localparam integer HI = ((2*k + 1)*SIMD + s); // lane (2k+1, s)
            wire [IN_BITS-1:0] xv = s1_x[s*IN_BITS +: IN_BITS];
            wire [W_BITS-1:0] w_lo = wv_all[LO*W_BITS +: W_BITS];
            wire [W_BITS-1:0] w_hi = wv_all[HI*W_BITS +: W_BITS];
            wire signed [PK_A-1:0] d_hi = $signed({w_hi[W_BITS-1], w_hi, {PK_SHIFT{1'b0}}});
            wire signed [PK_A-1:0] a_lo = $signed({{(PK_A-W_BITS){w_lo[W_BITS-1]}}, w_lo});
            wire signed [PK_A-1:0] wpack = d_hi + a_lo;
            // Operands extended to PK_P bits: the product is exact modulo 2**PK_P, all the
            // lanes need.
            wire signed [PK_P-1:0] wpack_ext = {{(PK_P-PK_A){wpack[PK_A-1]}}, wpack};
            wire signed [PK_P-1:0] x_ext = $signed({{(PK_P-IN_BITS){1'b0}}, xv});
            wire signed [PK_P-1:0] prod = wpack_ext * x_ext;
            wire [PK_P-1:0] mac = prod + PK_ROUND;
            reg [2*PROD_BITS-1:0] pair_reg;
            always @(posedge clk) begin
                if (s1_valid_reg) begin
                    pair_reg <= {mac[PK_SHIFT +: PROD_BITS], mac[PROD_BITS-1:0]};
                end
            end
            wire unused_mac = ^mac;    // bits PROD_BITS .. 17 are not needed
            assign prods[LO*PROD_BITS +: PROD_BITS] = pair_reg[PROD_BITS-1:0];
            assign prods[HI*PROD_BITS +: PROD_BITS] = pair_reg[PROD_BITS +: PROD_BITS];
        end
    end
end

// ---------------------------------------------------------------- adder trees

for (p = 0; p < PE; p = p + 1) begin : g_pe
    wire [TREE_NODES_BITS-1:0] tree;

    for (s = 0; s < LEAVES; s = s + 1) begin : g_leaf
        if (s < SIMD) begin : g_prod
            assign tree[s*PROD_BITS +: PROD_BITS] = prods[(p*SIMD + s)*PROD_BITS +: PROD_BITS];
        end else begin : g_pad
            assign tree[s*PROD_BITS +: PROD_BITS] = {PROD_BITS{1'b0}};
        end
    end

    for (k = 1; k <= LEVELS; k = k + 1) begin : g_level
        localparam integer IW = PROD_BITS + k - 1;
        for (n = 0; n < (LEAVES >> k); n = n + 1) begin : g_node
            localparam integer IB = level_base(k - 1) + 2 * n * IW;
            localparam integer OB = level_base(k) + n * (IW + 1);
            wire [IW-1:0] a = tree[IB +: IW];
            wire [IW-1:0] b = tree[IB + IW +: IW];
            reg [IW:0] sum_reg;
            always @(posedge clk) begin
                if (flag_chain[4*k]) begin
                    sum_reg <= {a[IW-1], a} + {b[IW-1], b};
                end
            end
            assign tree[OB +: IW + 1] = sum_reg;
        end
    end

    // The sum and the bias enter the accumulator modulo 2**ACC_BITS: the exact total fits
    // ACC_BITS, so wrapped partial terms still give it exactly.
    wire [TREE_BITS-1:0] tsum = tree[level_base(LEVELS) +: TREE_BITS];
    wire [TX_BITS-1:0] tsum_wide = {{(TX_BITS-TREE_BITS){tsum[TREE_BITS-1]}}, tsum};
    wire [BIAS_BITS-1:0] bv = bias_q_reg[p*BIAS_BITS +: BIAS_BITS];
    wire [BX_BITS-1:0] bias_wide = {{(BX_BITS-BIAS_BITS){bv[BIAS_BITS-1]}}, bv} << BIAS_SHIFT;
    wire unused_wide = ^{tsum_wide[TX_BITS-1:ACC_BITS], bias_wide[BX_BITS-1:ACC_BITS]};

    reg [ACC_BITS-1:0] acc_reg;
    always @(posedge clk) begin
        if (a_valid) begin
            acc_reg <= (a_first ? bias_wide[ACC_BITS-1:0] : acc_reg) + tsum_wide[ACC_BITS-1:0];
        end
    end

    // Requantized when the sum is complete (res_valid_reg), not on every accumulation.
    reg [OUT_BITS-1:0] y_pe_reg;
    always @(posedge clk) begin
        if (res_valid_reg) begin
            y_pe_reg <= requant(acc_reg);
        end
    end
    assign y_q[p*OUT_BITS +: OUT_BITS] = y_pe_reg;
end
endgenerate

always @(posedge clk) begin
    if ((a_valid && a_last) || rst) begin
        bias_q_reg <= brom[bias_nf_next];
        bias_nf_reg <= bias_nf_next;
    end
    res_valid_reg <= a_valid && a_last;
    res_flast_reg <= a_flast;
    y_valid_reg <= res_valid_reg;
    y_last_reg <= res_flast_reg;
    if (rst) begin
        res_valid_reg <= 1'b0;
        y_valid_reg <= 1'b0;
    end
end

// ---------------------------------------------------------------- output FIFO

// The credit limit keeps at most FIFO_DEPTH beats between issue and m_axis, and sqz_fifo
// holds at least FIFO_DEPTH + 1, so the FIFO always has room when a result arrives.
wire ofifo_ready;

sqz_fifo #(
    .DATA_WIDTH(Y_WIDTH),
    .DEPTH(FIFO_DEPTH)
) ofifo (
    .clk(clk),
    .rst(rst),
    .s_axis_tdata(y_q),
    .s_axis_tlast(y_last_reg),
    .s_axis_tvalid(y_valid_reg),
    .s_axis_tready(ofifo_ready),
    .m_axis_tdata(m_axis_tdata),
    .m_axis_tlast(m_axis_tlast),
    .m_axis_tvalid(m_axis_tvalid),
    .m_axis_tready(m_axis_tready)
);

`ifndef SYNTHESIS
always @(posedge clk) begin
    if (!rst && y_valid_reg && !ofifo_ready) begin
        $error("sqz_mvu: output FIFO overflow (credit accounting broken)");
    end
end
`endif

endmodule

`resetall
