// Copyright the squeezenet-fpga authors. Apache-2.0.
`resetall
`timescale 1ns / 1ps
`default_nettype none

// sqz_axi_shell: 64-bit AXI4-Stream + AXI4-Lite shell around a streaming network core.
module sqz_axi_shell #(
    // Input bytes per frame (>= 1; a multiple of PIX_BYTES): H * W * C
    parameter FRAME_BYTES = 3675,
    // Bytes per pixel = the core's input beat (>= 1): C
    parameter PIX_BYTES = 3,
    // Class scores per frame (>= 1; a multiple of CORE_LANES; CLASSES * FIELD_BITS / 8 <
    // 2**16)
    parameter CLASSES = 10,
    // Scores per core output beat (>= 1)
    parameter CORE_LANES = 1,
    // Bits per score (1 .. FIELD_BITS)
    parameter SCORE_BITS = 16,
    // 1: scores are two's complement (sign-extended to FIELD_BITS), 0: unsigned
    parameter SCORE_SIGNED = 0,
    // Bits per score field on the output stream: 8, 16 or 32
    parameter FIELD_BITS = 16,
    // Frames started and not yet through the output that the shell tracks (a power of
    // two >= 2): more than the core holds at once, so it never throttles the core
    parameter FLIGHT = 16,
    // Cycles a soft reset holds the core and the shell state in reset (1 .. 255)
    parameter SOFT_RESET_CYCLES = 16,
    // Register values and byte offsets (hls/rtl/axi.py REGISTERS; the top passes them all)
    parameter [31:0] ID_VALUE = 32'h53515A4E,
    parameter [31:0] VERSION_VALUE = 32'h00010000,
    parameter [11:0] ADDR_ID = 12'h000,
    parameter [11:0] ADDR_VERSION = 12'h004,
    parameter [11:0] ADDR_CONTROL = 12'h008,
    parameter [11:0] ADDR_STATUS = 12'h00C,
    parameter [11:0] ADDR_FRAMES_IN = 12'h010,
    parameter [11:0] ADDR_FRAMES_OUT = 12'h014,
    parameter [11:0] ADDR_FRAMES_DROPPED = 12'h018,
    parameter [11:0] ADDR_LAST_LATENCY = 12'h01C,
    parameter [11:0] ADDR_LAST_INTERVAL = 12'h020,
    parameter [11:0] ADDR_FRAME_BYTES = 12'h024,
    parameter [11:0] ADDR_OUT_BYTES = 12'h028,
    parameter [11:0] ADDR_OUT_FORMAT = 12'h02C,
    parameter [11:0] ADDR_CYCLES = 12'h030
) (
    input  wire                           aclk,
    input  wire                           aresetn,

    // Frame bytes in (DMA MM2S): byte k of a frame is tdata[8*(k%8) +: 8] of beat k/8
    // counting kept bytes only; TLAST on the frame's last beat
    input  wire [63:0]                    s_axis_tdata,
    input  wire [7:0]                     s_axis_tkeep,
    input  wire                           s_axis_tlast,
    input  wire                           s_axis_tvalid,
    output wire                           s_axis_tready,

    // Class scores out (DMA S2MM): FIELD_BITS-bit fields, class 0 lowest
    output wire [63:0]                    m_axis_tdata,
    output wire [7:0]                     m_axis_tkeep,
    output wire                           m_axis_tlast,
    output wire                           m_axis_tvalid,
    input  wire                           m_axis_tready,

    // AXI4-Lite register slave
    input  wire [11:0]                    s_axi_ctrl_awaddr,
    input  wire [2:0]                     s_axi_ctrl_awprot,
    input  wire                           s_axi_ctrl_awvalid,
    output wire                           s_axi_ctrl_awready,
    input  wire [31:0]                    s_axi_ctrl_wdata,
    input  wire [3:0]                     s_axi_ctrl_wstrb,
    input  wire                           s_axi_ctrl_wvalid,
    output wire                           s_axi_ctrl_wready,
    output wire [1:0]                     s_axi_ctrl_bresp,
    output wire                           s_axi_ctrl_bvalid,
    input  wire                           s_axi_ctrl_bready,
    input  wire [11:0]                    s_axi_ctrl_araddr,
    input  wire [2:0]                     s_axi_ctrl_arprot,
    input  wire                           s_axi_ctrl_arvalid,
    output wire                           s_axi_ctrl_arready,
    output wire [31:0]                    s_axi_ctrl_rdata,
    output wire [1:0]                     s_axi_ctrl_rresp,
    output wire                           s_axi_ctrl_rvalid,
    input  wire                           s_axi_ctrl_rready,

    // The core: synchronous active-high reset (aresetn low or a soft reset), one pixel
    // per input beat, CORE_LANES scores per output beat with TLAST on a frame's last
    output wire                           core_rst,
    output wire [PIX_BYTES*8-1:0]         core_s_tdata,
    output wire                           core_s_tlast,
    output wire                           core_s_tvalid,
    input  wire                           core_s_tready,
    input  wire [CORE_LANES*SCORE_BITS-1:0] core_m_tdata,
    input  wire                           core_m_tlast,
    input  wire                           core_m_tvalid,
    output wire                           core_m_tready
);

// Input: a beat's kept bytes are packed to the low end (a prefix count of TKEEP picks the
// source of each byte), cut at the frame's byte count, and registered; that register
// drains into a byte buffer of 2*PIX_BYTES+8 bytes, whose low PIX_BYTES bytes are the
// core's input beat. The buffer takes a beat whenever it has 8 bytes of room before the
// pixel leaving this cycle, which with full beats keeps a pixel in it every cycle: the
// core gets one pixel per cycle whenever the bytes are there.
//
// Framing, by byte count (TLAST marks the end the sender means):
// - TLAST with FRAME_BYTES bytes: a good frame (FRAMES_IN).
// - TLAST earlier (short): ERR_SHORT; the shell stops the input and feeds the core zero
//   bytes up to FRAME_BYTES.
// - bytes past FRAME_BYTES before TLAST (long): ERR_LONG; the bytes that complete the
//   core's frame go in, the rest up to and including the TLAST beat are discarded.
// - the last byte on a beat without TLAST and without extra bytes: the verdict waits for
//   the next beat; TKEEP = 0 with TLAST makes the frame good, anything else long.
// Each input frame pushes its verdict (keep/drop) into a FIFO; the output side holds the
// core's scores until their frame's verdict is there, then serialises them (keep) or
// swallows them (drop). A frame counts as in flight from its first input beat until its
// last core output beat; the input starts no frame beyond FLIGHT in flight, so the
// verdict FIFO and the FIFO of frame start times (LAST_LATENCY) never overflow.
//
// Output: the core beat is held while its scores go out in chunks of G = gcd(CORE_LANES,
// 64/FIELD_BITS) lanes: up to 64/FIELD_BITS scores per cycle, sign- or zero-extended to
// FIELD_BITS, into an output register; chunks of two core beats share an output beat when
// CORE_LANES is not a multiple of the fields per beat. A frame's last output beat carries
// TLAST and TKEEP of its valid bytes.
//
// Registers (AXI4-Lite, one write and one read outstanding; AW and W in any order; every
// response OKAY; unknown addresses read 0): see the parameters and hls/rtl/axi.py.
// CONTROL bit0 starts a soft reset: the core and every piece of shell state (framing,
// FIFOs, counters, flags) are held in reset for SOFT_RESET_CYCLES cycles; the register
// slave and CYCLES keep running.

function integer gcd;
    input integer a;
    input integer b;
    integer x, y, t;
    begin
        x = a;
        y = b;
        while (y != 0) begin
            t = x % y;
            x = y;
            y = t;
        end
        gcd = x;
    end
endfunction

localparam integer FPB = 64 / FIELD_BITS;            // fields per output beat
localparam integer OUT_BYTES = CLASSES * FIELD_BITS / 8;
localparam integer FRAME_PIXELS = FRAME_BYTES / PIX_BYTES;
localparam integer BUF = 2 * PIX_BYTES + 8;          // gearbox bytes
localparam BW = $clog2(BUF + 1);
localparam BW2 = (BW > 4 ? BW : 4) + 1;
localparam FW0 = $clog2(FRAME_BYTES + 1);
localparam FW = FW0 < 5 ? 5 : FW0;
localparam PW = FRAME_PIXELS < 2 ? 1 : $clog2(FRAME_PIXELS);
localparam FA = FLIGHT < 2 ? 1 : $clog2(FLIGHT);
localparam integer G = gcd(CORE_LANES, FPB);         // lanes per chunk
localparam integer SLOTS = FPB / G;                  // chunks per output beat
localparam integer NCH = CORE_LANES / G;             // chunks per core beat
localparam integer CHUNK_BYTES = G * FIELD_BITS / 8;
localparam CW = NCH < 2 ? 1 : $clog2(NCH);
localparam SW = $clog2(SLOTS + 1);
localparam XW = (CW + 1 > SW ? CW + 1 : SW) + 1;
localparam ICB = G * SCORE_BITS;
localparam OCB = G * FIELD_BITS;
localparam RW = $clog2(SOFT_RESET_CYCLES + 1);
localparam integer PIX_END = FRAME_PIXELS - 1;

localparam [BW-1:0] PIX_B = PIX_BYTES[BW-1:0];
localparam [BW2-1:0] BUF_B = BUF[BW2-1:0];
localparam [FW-1:0] FRAME_B = FRAME_BYTES[FW-1:0];
localparam [FW-1:0] EIGHT_B = 8;
localparam [FA:0] FLIGHT_B = FLIGHT[FA:0];
localparam [XW-1:0] NCH_X = NCH[XW-1:0];
localparam [XW-1:0] SLOTS_X = SLOTS[XW-1:0];
localparam [RW-1:0] SRST_B = SOFT_RESET_CYCLES[RW-1:0];
localparam [31:0] OUT_FORMAT = {SCORE_SIGNED != 0 ? 1'b1 : 1'b0, SCORE_BITS[6:0],
                                FIELD_BITS[7:0], CLASSES[15:0]};

initial begin
    if (FIELD_BITS != 8 && FIELD_BITS != 16 && FIELD_BITS != 32) begin
        $error("sqz_axi_shell: FIELD_BITS must be 8, 16 or 32");
        $finish;
    end
    if (SCORE_BITS < 1 || SCORE_BITS > FIELD_BITS) begin
        $error("sqz_axi_shell: SCORE_BITS must be 1 .. FIELD_BITS");
        $finish;
    end
    if (PIX_BYTES < 1 || FRAME_BYTES < 1 || FRAME_BYTES % PIX_BYTES != 0) begin
        $error("sqz_axi_shell: FRAME_BYTES must be a positive multiple of PIX_BYTES");
        $finish;
    end
    if (CORE_LANES < 1 || CLASSES < 1 || CLASSES % CORE_LANES != 0 || OUT_BYTES >= 65536) begin
        $error("sqz_axi_shell: CLASSES must be a positive multiple of CORE_LANES");
        $finish;
    end
    if (FLIGHT < 2 || (FLIGHT & (FLIGHT - 1)) != 0) begin
        $error("sqz_axi_shell: FLIGHT must be a power of two >= 2");
        $finish;
    end
    if (SOFT_RESET_CYCLES < 1 || SOFT_RESET_CYCLES > 255) begin
        $error("sqz_axi_shell: SOFT_RESET_CYCLES must be 1 .. 255");
        $finish;
    end
end

// ------------------------------------------------------------------ clock, resets

reg [31:0] cycles_reg;
reg [RW-1:0] srst_cnt_reg;
wire soft_rst = srst_cnt_reg != {RW{1'b0}};
wire rst = !aresetn || soft_rst;
assign core_rst = rst;

always @(posedge aclk) begin
    if (!aresetn) begin
        cycles_reg <= 32'd0;
    end else begin
        cycles_reg <= cycles_reg + 32'd1;
    end
end

// ------------------------------------------------------------------ AXI4-Lite slave

reg aw_full_reg, w_full_reg, bvalid_reg, rvalid_reg;
reg [9:0] aw_word_reg;
reg [31:0] w_data_reg;
reg [3:0] w_strb_reg;
reg [31:0] rdata_reg;

assign s_axi_ctrl_awready = !aw_full_reg;
assign s_axi_ctrl_wready = !w_full_reg;
assign s_axi_ctrl_bresp = 2'b00;
assign s_axi_ctrl_bvalid = bvalid_reg;
assign s_axi_ctrl_arready = !rvalid_reg;
assign s_axi_ctrl_rdata = rdata_reg;
assign s_axi_ctrl_rresp = 2'b00;
assign s_axi_ctrl_rvalid = rvalid_reg;

wire wr_do = aw_full_reg && w_full_reg && !bvalid_reg;
wire wr_low = wr_do && w_strb_reg[0];
wire wr_control = wr_low && aw_word_reg == ADDR_CONTROL[11:2];
wire wr_status = wr_low && aw_word_reg == ADDR_STATUS[11:2];
wire ar_fire = s_axi_ctrl_arvalid && !rvalid_reg;

wire unused_axil = &{1'b0, s_axi_ctrl_awprot, s_axi_ctrl_arprot, s_axi_ctrl_awaddr[1:0],
                     s_axi_ctrl_araddr[1:0], w_data_reg[31:2], w_strb_reg[3:1]};

always @(posedge aclk) begin
    if (s_axi_ctrl_awvalid && !aw_full_reg) begin
        aw_full_reg <= 1'b1;
        aw_word_reg <= s_axi_ctrl_awaddr[11:2];
    end
    if (s_axi_ctrl_wvalid && !w_full_reg) begin
        w_full_reg <= 1'b1;
        w_data_reg <= s_axi_ctrl_wdata;
        w_strb_reg <= s_axi_ctrl_wstrb;
    end
    if (wr_do) begin
        aw_full_reg <= 1'b0;
        w_full_reg <= 1'b0;
        bvalid_reg <= 1'b1;
    end
    if (bvalid_reg && s_axi_ctrl_bready) begin
        bvalid_reg <= 1'b0;
    end
    if (ar_fire) begin
        rvalid_reg <= 1'b1;
    end else if (rvalid_reg && s_axi_ctrl_rready) begin
        rvalid_reg <= 1'b0;
    end
    if (wr_control && w_data_reg[0]) begin
        srst_cnt_reg <= SRST_B;
    end else if (soft_rst) begin
        srst_cnt_reg <= srst_cnt_reg - 1'b1;
    end
    if (!aresetn) begin
        aw_full_reg <= 1'b0;
        w_full_reg <= 1'b0;
        bvalid_reg <= 1'b0;
        rvalid_reg <= 1'b0;
        srst_cnt_reg <= {RW{1'b0}};
    end
end

// ------------------------------------------------------------------ input: pack TKEEP

function [3:0] ones;
    input [7:0] v;
    integer k;
    begin
        ones = 4'd0;
        for (k = 0; k < 8; k = k + 1) begin
            ones = ones + {3'd0, v[k]};
        end
    end
endfunction

wire [35:0] pre;             // pre[4*i +: 4]: kept bytes below byte i (i = 0 .. 8)
wire [63:0] pk_data;         // kept bytes, packed to the low end
wire [3:0] pk_cnt = pre[35:32];

genvar gi, gj;
generate
for (gi = 0; gi <= 8; gi = gi + 1) begin : g_pre
    localparam [8:0] BELOW = (9'd1 << gi) - 9'd1;
    assign pre[4 * gi +: 4] = ones(s_axis_tkeep & BELOW[7:0]);
end
for (gj = 0; gj < 8; gj = gj + 1) begin : g_pack
    localparam [3:0] J = gj;
    wire [63:0] terms;       // byte gi of the beat if it lands at byte gj
    for (gi = 0; gi < 8; gi = gi + 1) begin : g_src
        if (gi >= gj) begin : g_can
            assign terms[8 * gi +: 8] = s_axis_tkeep[gi] && pre[4 * gi +: 4] == J
                                        ? s_axis_tdata[8 * gi +: 8] : 8'd0;
        end else begin : g_cannot
            assign terms[8 * gi +: 8] = 8'd0;
        end
    end
    assign pk_data[8 * gj +: 8] = terms[7:0] | terms[15:8] | terms[23:16] | terms[31:24]
                                  | terms[39:32] | terms[47:40] | terms[55:48] | terms[63:56];
end
endgenerate

// ------------------------------------------------------------------ input: framing

localparam [1:0] S_RECV = 2'd0, S_WAIT = 2'd1, S_DISCARD = 2'd2, S_PAD = 2'd3;

reg [1:0] in_state_reg;
reg in_frame_reg;            // a frame has started and its TLAST has not come
reg [FW-1:0] in_cnt_reg;     // bytes of the core's frame so far (received or padded)

reg [63:0] cb_data_reg;      // the packed beat on its way into the byte buffer
reg [3:0] cb_cnt_reg;
reg cb_valid_reg;

reg [BUF*8-1:0] buf_data_reg;
reg [BW-1:0] buf_cnt_reg;

reg [FA:0] flight_reg;
wire flight_ok = flight_reg != FLIGHT_B;

wire [BW2-1:0] buf_sum = {{(BW2 - BW){1'b0}}, buf_cnt_reg} + {{(BW2 - 4){1'b0}}, cb_cnt_reg};
wire cb_drain = cb_valid_reg && buf_sum <= BUF_B;
wire cb_free = !cb_valid_reg || cb_drain;

assign s_axis_tready = !rst && cb_free && in_state_reg != S_PAD && (in_frame_reg || flight_ok);

wire beat = s_axis_tvalid && s_axis_tready;
wire start = beat && in_state_reg == S_RECV && !in_frame_reg;
wire [FW-1:0] rem = FRAME_B - in_cnt_reg;
wire rem_le8 = rem <= EIGHT_B;
wire [3:0] rem4 = rem_le8 ? rem[3:0] : 4'd9;   // 9: more than a beat holds
wire over = pk_cnt > rem4;
wire exact = pk_cnt == rem4;
wire [3:0] take = over ? rem4 : pk_cnt;
wire [3:0] pad_n = rem_le8 ? rem[3:0] : 4'd8;
wire pad_step = in_state_reg == S_PAD && cb_free;

// The verdict of the frame whose input ends (or turns bad) with this beat.
reg v_push, v_keep;
always @* begin
    v_push = 1'b0;
    v_keep = 1'b0;
    if (beat) begin
        case (in_state_reg)
            S_RECV: begin
                v_push = over || s_axis_tlast;
                v_keep = exact && s_axis_tlast;
            end
            S_WAIT: begin
                v_push = 1'b1;
                v_keep = s_axis_tkeep == 8'd0 && s_axis_tlast;
            end
            default: ;
        endcase
    end
end
wire set_short = v_push && in_state_reg == S_RECV && !over && !exact;
wire set_long = v_push && !v_keep && !set_short;

always @(posedge aclk) begin
    if (cb_drain) begin
        cb_valid_reg <= 1'b0;
    end
    if (beat) begin
        case (in_state_reg)
            S_RECV: begin
                cb_data_reg <= pk_data;
                cb_cnt_reg <= take;
                if (take != 4'd0) begin
                    cb_valid_reg <= 1'b1;
                end
                if (over || exact) begin
                    in_cnt_reg <= {FW{1'b0}};
                    in_state_reg <= s_axis_tlast ? S_RECV : over ? S_DISCARD : S_WAIT;
                    in_frame_reg <= !s_axis_tlast;
                end else begin
                    in_cnt_reg <= in_cnt_reg + {{(FW - 4){1'b0}}, take};
                    in_state_reg <= s_axis_tlast ? S_PAD : S_RECV;
                    in_frame_reg <= !s_axis_tlast;
                end
            end
            S_WAIT, S_DISCARD: begin
                if (s_axis_tlast) begin
                    in_state_reg <= S_RECV;
                    in_frame_reg <= 1'b0;
                end else begin
                    in_state_reg <= S_DISCARD;
                end
            end
            default: ;
        endcase
    end
    if (pad_step) begin
        cb_data_reg <= 64'd0;
        cb_cnt_reg <= pad_n;
        cb_valid_reg <= 1'b1;
        if (rem_le8) begin
            in_cnt_reg <= {FW{1'b0}};
            in_state_reg <= S_RECV;
        end else begin
            in_cnt_reg <= in_cnt_reg + EIGHT_B;
        end
    end
    if (rst) begin
        in_state_reg <= S_RECV;
        in_frame_reg <= 1'b0;
        in_cnt_reg <= {FW{1'b0}};
        cb_valid_reg <= 1'b0;
        cb_cnt_reg <= 4'd0;
    end
end

// ------------------------------------------------------------------ input: gearbox

reg [PW-1:0] pix_cnt_reg;

assign core_s_tvalid = buf_cnt_reg >= PIX_B;
assign core_s_tdata = buf_data_reg[PIX_BYTES*8-1:0];
assign core_s_tlast = pix_cnt_reg == PIX_END[PW-1:0];

wire pop = core_s_tvalid && core_s_tready;
wire [BW-1:0] base = pop ? buf_cnt_reg - PIX_B : buf_cnt_reg;
wire [BUF*8-1:0] shifted = pop ? buf_data_reg >> (PIX_BYTES * 8) : buf_data_reg;
wire [BW+2:0] base_bits = {base, 3'b000};
wire [BUF*8-1:0] low_mask = ~({(BUF * 8){1'b1}} << base_bits);
wire [BUF*8-1:0] ins = {{(BUF * 8 - 64){1'b0}}, cb_data_reg} << base_bits;
wire [BW2-1:0] base_sum = {{(BW2 - BW){1'b0}}, base} + {{(BW2 - 4){1'b0}}, cb_cnt_reg};
wire unused_base_sum = &{1'b0, base_sum[BW2-1:BW]};   // < BUF: the drain checked the room

always @(posedge aclk) begin
    if (cb_drain) begin
        buf_data_reg <= (shifted & low_mask) | ins;
        buf_cnt_reg <= base_sum[BW-1:0];
    end else begin
        buf_data_reg <= shifted;
        buf_cnt_reg <= base;
    end
    if (pop) begin
        pix_cnt_reg <= core_s_tlast ? {PW{1'b0}} : pix_cnt_reg + 1'b1;
    end
    if (rst) begin
        buf_cnt_reg <= {BW{1'b0}};
        pix_cnt_reg <= {PW{1'b0}};
    end
end

// ------------------------------------------------------------------ verdicts, start times

reg [FLIGHT-1:0] vd_mem_reg;
reg [FA:0] vd_wr_reg, vd_rd_reg;
reg [31:0] ts_mem [0:FLIGHT-1];
reg [FA-1:0] ts_wr_reg, ts_rd_reg;

wire vd_empty = vd_wr_reg == vd_rd_reg;
wire vd_keep = vd_mem_reg[vd_rd_reg[FA-1:0]];
wire [31:0] ts_head = ts_mem[ts_rd_reg];
wire frame_end;              // the core's last output beat of a frame is taken

always @(posedge aclk) begin
    if (start) begin
        ts_mem[ts_wr_reg] <= cycles_reg;
    end
end

always @(posedge aclk) begin
    if (v_push) begin
        vd_mem_reg[vd_wr_reg[FA-1:0]] <= v_keep;
        vd_wr_reg <= vd_wr_reg + 1'b1;
    end
    if (frame_end) begin
        vd_rd_reg <= vd_rd_reg + 1'b1;
        ts_rd_reg <= ts_rd_reg + 1'b1;
    end
    if (start) begin
        ts_wr_reg <= ts_wr_reg + 1'b1;
    end
    if (start && !frame_end) begin
        flight_reg <= flight_reg + 1'b1;
    end else if (frame_end && !start) begin
        flight_reg <= flight_reg - 1'b1;
    end
    if (rst) begin
        vd_wr_reg <= {(FA + 1){1'b0}};
        vd_rd_reg <= {(FA + 1){1'b0}};
        ts_wr_reg <= {FA{1'b0}};
        ts_rd_reg <= {FA{1'b0}};
        flight_reg <= {(FA + 1){1'b0}};
    end
end

// ------------------------------------------------------------------ output: serialiser

reg [63:0] out_data_reg;
reg [7:0] out_keep_reg;
reg out_last_reg, out_valid_reg;
reg [SW-1:0] fill_reg;       // chunks in the beat being assembled (0 while one waits)
reg [CW-1:0] chunk_reg;      // next chunk of the core beat
reg [31:0] out_ts_reg;       // start time of the frame whose last beat is in the register

assign m_axis_tdata = out_data_reg;
assign m_axis_tkeep = out_keep_reg;
assign m_axis_tlast = out_last_reg;
assign m_axis_tvalid = out_valid_reg;

wire can_work = !out_valid_reg || m_axis_tready;
wire [SW-1:0] base_f = out_valid_reg ? {SW{1'b0}} : fill_reg;
wire [XW-1:0] avail = NCH_X - {{(XW - CW){1'b0}}, chunk_reg};
wire [XW-1:0] space = SLOTS_X - {{(XW - SW){1'b0}}, base_f};
wire fits = avail <= space;  // the rest of the core beat fits in this output beat
wire [SW-1:0] n_take = fits ? avail[SW-1:0] : space[SW-1:0];
wire [SW-1:0] new_fill = base_f + n_take;
wire have = core_m_tvalid && !vd_empty;
wire assemble = have && vd_keep && can_work;
wire drop = have && !vd_keep;
wire [XW-1:0] next_chunk = {{(XW - CW){1'b0}}, chunk_reg} + {{(XW - SW){1'b0}}, n_take};
wire unused_next_chunk = &{1'b0, next_chunk[XW-1:CW]};  // < NCH unless the beat is done
wire beat_done = new_fill == SLOTS_X[SW-1:0] || (fits && core_m_tlast);

assign core_m_tready = drop || (assemble && fits);
assign frame_end = core_m_tready && core_m_tlast;

wire [63:0] out_next;
wire [7:0] keep_next;

wire [ICB-1:0] chunks [0:NCH-1];   // the core beat, chunk by chunk

genvar gs, gl;
generate
for (gs = 0; gs < NCH; gs = gs + 1) begin : g_chunk
    assign chunks[gs] = core_m_tdata[gs * ICB +: ICB];
end
for (gs = 0; gs < SLOTS; gs = gs + 1) begin : g_slot
    localparam [SW-1:0] S = gs;
    localparam [XW-1:0] S_X = gs;
    wire in_range = S >= base_f && S < new_fill;
    wire [ICB-1:0] raw;
    if (SLOTS == 1) begin : g_direct
        // One chunk per output beat: the chunk counter is the index (Yosys maps this read
        // to half the LUTs of one through an adder).
        assign raw = chunks[chunk_reg];
    end else begin : g_offset
        // Out of range the index may pass NCH-1; the read is then not used.
        wire [XW-1:0] idx_x = {{(XW - CW){1'b0}}, chunk_reg} + S_X
                              - {{(XW - SW){1'b0}}, base_f};
        wire unused_idx = &{1'b0, idx_x[XW-1:CW]};   // < NCH in range
        assign raw = chunks[idx_x[CW-1:0]];
    end
    wire [OCB-1:0] ext;
    for (gl = 0; gl < G; gl = gl + 1) begin : g_lane
        wire [SCORE_BITS-1:0] score = raw[gl * SCORE_BITS +: SCORE_BITS];
        if (FIELD_BITS > SCORE_BITS) begin : g_ext
            wire sign = SCORE_SIGNED != 0 && score[SCORE_BITS-1];
            assign ext[gl * FIELD_BITS +: FIELD_BITS] = {{(FIELD_BITS - SCORE_BITS){sign}}, score};
        end else begin : g_same
            assign ext[gl * FIELD_BITS +: FIELD_BITS] = score;
        end
    end
    assign out_next[gs * OCB +: OCB] = S < base_f ? out_data_reg[gs * OCB +: OCB]
                                       : in_range ? ext : {OCB{1'b0}};
    assign keep_next[gs * CHUNK_BYTES +: CHUNK_BYTES] = {CHUNK_BYTES{S < new_fill}};
end
endgenerate

always @(posedge aclk) begin
    if (m_axis_tready) begin
        out_valid_reg <= 1'b0;
    end
    if (assemble) begin
        out_data_reg <= out_next;
        chunk_reg <= fits ? {CW{1'b0}} : next_chunk[CW-1:0];
        if (beat_done) begin
            out_valid_reg <= 1'b1;
            out_last_reg <= fits && core_m_tlast;
            out_keep_reg <= keep_next;
            fill_reg <= {SW{1'b0}};
        end else begin
            fill_reg <= new_fill;
        end
        if (fits && core_m_tlast) begin
            out_ts_reg <= ts_head;
        end
    end
    if (rst) begin
        out_valid_reg <= 1'b0;
        out_last_reg <= 1'b0;
        fill_reg <= {SW{1'b0}};
        chunk_reg <= {CW{1'b0}};
    end
end

// ------------------------------------------------------------------ status, counters

wire out_fire = out_valid_reg && m_axis_tready;

reg err_short_reg, err_long_reg, out_frame_reg, have_prev_reg;
reg [31:0] frames_in_reg, frames_out_reg, frames_dropped_reg;
reg [31:0] last_latency_reg, last_interval_reg, prev_end_reg;

always @(posedge aclk) begin
    if (wr_status && w_data_reg[0]) begin
        err_short_reg <= 1'b0;
    end
    if (wr_status && w_data_reg[1]) begin
        err_long_reg <= 1'b0;
    end
    if (set_short) begin
        err_short_reg <= 1'b1;
    end
    if (set_long) begin
        err_long_reg <= 1'b1;
    end
    if (v_push && v_keep) begin
        frames_in_reg <= frames_in_reg + 32'd1;
    end
    if (v_push && !v_keep) begin
        frames_dropped_reg <= frames_dropped_reg + 32'd1;
    end
    if (out_fire) begin
        out_frame_reg <= !out_last_reg;
    end
    if (out_fire && out_last_reg) begin
        frames_out_reg <= frames_out_reg + 32'd1;
        last_latency_reg <= cycles_reg - out_ts_reg;
        if (have_prev_reg) begin
            last_interval_reg <= cycles_reg - prev_end_reg;
        end
        prev_end_reg <= cycles_reg;
        have_prev_reg <= 1'b1;
    end
    if (rst) begin
        err_short_reg <= 1'b0;
        err_long_reg <= 1'b0;
        out_frame_reg <= 1'b0;
        have_prev_reg <= 1'b0;
        frames_in_reg <= 32'd0;
        frames_out_reg <= 32'd0;
        frames_dropped_reg <= 32'd0;
        last_latency_reg <= 32'd0;
        last_interval_reg <= 32'd0;
        prev_end_reg <= 32'd0;
    end
end

wire [31:0] status = {26'd0, soft_rst, out_frame_reg, in_state_reg == S_PAD, in_frame_reg,
                      err_long_reg, err_short_reg};

always @(posedge aclk) begin
    if (ar_fire) begin
        case (s_axi_ctrl_araddr[11:2])
            ADDR_ID[11:2]: rdata_reg <= ID_VALUE;
            ADDR_VERSION[11:2]: rdata_reg <= VERSION_VALUE;
            ADDR_STATUS[11:2]: rdata_reg <= status;
            ADDR_FRAMES_IN[11:2]: rdata_reg <= frames_in_reg;
            ADDR_FRAMES_OUT[11:2]: rdata_reg <= frames_out_reg;
            ADDR_FRAMES_DROPPED[11:2]: rdata_reg <= frames_dropped_reg;
            ADDR_LAST_LATENCY[11:2]: rdata_reg <= last_latency_reg;
            ADDR_LAST_INTERVAL[11:2]: rdata_reg <= last_interval_reg;
            ADDR_FRAME_BYTES[11:2]: rdata_reg <= FRAME_BYTES;
            ADDR_OUT_BYTES[11:2]: rdata_reg <= OUT_BYTES;
            ADDR_OUT_FORMAT[11:2]: rdata_reg <= OUT_FORMAT;
            ADDR_CYCLES[11:2]: rdata_reg <= cycles_reg;
            default: rdata_reg <= 32'd0;
        endcase
    end
end

endmodule

`resetall
