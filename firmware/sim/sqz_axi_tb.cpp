// Copyright the squeezenet-fpga authors. Apache-2.0.
//
// sqz_axi_tb: the AXI-wrapped network top (`<core top>_axi`, hls/rtl/axi.py) Verilated and
// driven through a line protocol on stdin/stdout, so that the host driver
// (hls/infer/board.py) runs against the RTL as it would against a board: sim/board_sim.py
// offers PYNQ's DMA and MMIO calls on top of it. Built by sim/board_sim.py with
// `verilator --cc --exe --build --prefix Vtop`.
//
//   sqz_axi_tb [--idle P] [--backpressure P] [--seed S] [--reset N]
//
// The bench models what the block design puts around the wrapper: an AXI DMA in simple
// mode (MM2S: a transfer's bytes in 8-byte beats, TKEEP all ones but on a partial last beat,
// TLAST on the last beat; S2MM: armed for N bytes, TREADY high while armed, done at TLAST or
// when N bytes are in) and the PS's AXI-Lite master (one transaction at a time, real
// VALID/READY handshakes on every channel). Random stalls: before each MM2S beat TVALID
// stays low for a cycle with probability --idle; S2MM TREADY drops with probability
// --backpressure each cycle.
//
// Commands, one a line (numbers decimal or 0x-hex); every reply is one line starting
// with "@@ " (anything else on stdout came from the design and is to be ignored):
//   W ADDR VALUE   AXI-Lite write        -> @@ OK BRESP CYCLE
//   R ADDR         AXI-Lite read         -> @@ OK VALUE RRESP CYCLE
//   S HEX          queue an MM2S transfer of these bytes           -> @@ OK QUEUED
//   F PATH         queue an MM2S transfer of a file's bytes        -> @@ OK QUEUED
//   A N            arm the S2MM channel for N bytes (refused while armed) -> @@ OK
//   C N            run N cycles (0: none)  -> @@ OK CYCLE SEND_IDLE RECV_IDLE SENT RECEIVED
//                  (SEND_IDLE: no MM2S bytes left; RECV_IDLE: S2MM not armed; SENT /
//                  RECEIVED: MM2S / S2MM transfers completed so far)
//   G              the last completed S2MM transfer -> @@ OK NBYTES TLAST HEX
//   Q              quit                  -> @@ OK BYE
// A failed command answers "@@ ERR message" (an AXI-Lite transaction that gets no
// response in 10,000 cycles, a malformed line). End of input quits as Q does.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

constexpr uint64_t LITE_TIMEOUT = 10000;

struct Args {
    double idle = 0.0, backpressure = 0.0;
    uint64_t seed = 21;
    int reset = 16;
};

[[noreturn]] void fail(const std::string& msg) {
    std::fprintf(stderr, "sqz_axi_tb: %s\n", msg.c_str());
    std::exit(2);
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string k = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) fail("missing value after " + k);
            return argv[++i];
        };
        if (k == "--idle") a.idle = std::stod(value());
        else if (k == "--backpressure") a.backpressure = std::stod(value());
        else if (k == "--seed") a.seed = std::stoull(value());
        else if (k == "--reset") a.reset = std::stoi(value());
        else if (k.rfind("+", 0) == 0) continue;  // Verilator plusargs
        else fail("usage: sqz_axi_tb [--idle P] [--backpressure P] [--seed S] [--reset N]");
    }
    return a;
}

void reply(const std::string& s) {
    std::fputs("@@ ", stdout);
    std::fputs(s.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool unhex(const std::string& s, std::vector<uint8_t>& out) {
    if (s.size() % 2) return false;
    out.resize(s.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
}

std::string tohex(const std::vector<uint8_t>& v) {
    static const char* digits = "0123456789abcdef";
    std::string s(2 * v.size(), '0');
    for (size_t i = 0; i < v.size(); ++i) {
        s[2 * i] = digits[v[i] >> 4];
        s[2 * i + 1] = digits[v[i] & 15];
    }
    return s;
}

class Bench {
public:
    explicit Bench(const Args& a) : args_(a), rng_(a.seed), top_(&ctx_) {
        top_.aclk = 0;
        top_.aresetn = 0;
        top_.s_axis_tvalid = 0;
        top_.s_axis_tlast = 0;
        top_.s_axis_tkeep = 0;
        top_.s_axis_tdata = 0;
        top_.m_axis_tready = 0;
        top_.s_axi_ctrl_awvalid = 0;
        top_.s_axi_ctrl_wvalid = 0;
        top_.s_axi_ctrl_bready = 0;
        top_.s_axi_ctrl_arvalid = 0;
        top_.s_axi_ctrl_rready = 0;
        top_.s_axi_ctrl_awprot = 0;
        top_.s_axi_ctrl_arprot = 0;
        top_.s_axi_ctrl_wstrb = 0xF;
        for (int i = 0; i < args_.reset; ++i) edge();
        top_.aresetn = 1;
    }

    ~Bench() { top_.final(); }

    uint64_t cycle() const { return cycle_; }
    bool send_idle() const { return mm2s_.empty() && !offering_; }
    bool recv_idle() const { return !armed_; }
    uint64_t sent() const { return sent_; }
    uint64_t received() const { return received_; }
    const std::vector<uint8_t>& last_recv() const { return done_; }
    bool last_tlast() const { return done_tlast_; }

    void queue(std::vector<uint8_t> bytes) { mm2s_.push_back(std::move(bytes)); }

    bool arm(size_t n) {
        if (armed_ || n == 0) return false;
        armed_ = true;
        want_ = n;
        got_.clear();
        return true;
    }

    void run(uint64_t n) {
        for (uint64_t i = 0; i < n; ++i) edge();
    }

    // One AXI-Lite write; false on no response.
    bool write(uint32_t addr, uint32_t value, int& bresp) {
        aw_ = w_ = true;
        addr_ = addr;
        wdata_ = value;
        b_done_ = false;
        for (uint64_t t = 0; t < LITE_TIMEOUT && !b_done_; ++t) edge();
        aw_ = w_ = false;
        bresp = resp_;
        return b_done_;
    }

    bool read(uint32_t addr, uint32_t& value, int& rresp) {
        ar_ = true;
        addr_ = addr;
        r_done_ = false;
        for (uint64_t t = 0; t < LITE_TIMEOUT && !r_done_; ++t) edge();
        ar_ = false;
        value = rdata_;
        rresp = resp_;
        return r_done_;
    }

private:
    // One rising edge: drive the inputs with the clock low, sample every handshake the
    // edge will see, raise the clock, then update the models.
    void edge() {
        // MM2S: the next beat, unless a random idle cycle comes first
        if (!offering_ && !mm2s_.empty() && !(args_.idle > 0 && uni_(rng_) < args_.idle)) {
            const std::vector<uint8_t>& t = mm2s_.front();
            const size_t n = std::min<size_t>(8, t.size() - pos_);
            uint64_t data = 0;
            for (size_t i = 0; i < n; ++i) data |= static_cast<uint64_t>(t[pos_ + i]) << (8 * i);
            top_.s_axis_tdata = data;
            top_.s_axis_tkeep = static_cast<uint8_t>((1u << n) - 1);
            top_.s_axis_tlast = pos_ + n == t.size();
            beat_bytes_ = n;
            offering_ = true;
        }
        top_.s_axis_tvalid = offering_;
        top_.m_axis_tready = armed_ && !(args_.backpressure > 0 && uni_(rng_) < args_.backpressure);
        top_.s_axi_ctrl_awvalid = aw_;
        top_.s_axi_ctrl_awaddr = addr_;
        top_.s_axi_ctrl_wvalid = w_;
        top_.s_axi_ctrl_wdata = wdata_;
        top_.s_axi_ctrl_wstrb = 0xF;
        top_.s_axi_ctrl_bready = 1;
        top_.s_axi_ctrl_arvalid = ar_;
        top_.s_axi_ctrl_araddr = addr_;
        top_.s_axi_ctrl_rready = 1;

        top_.aclk = 0;
        top_.eval();
        const bool reset = !top_.aresetn;
        const bool in_fire = !reset && top_.s_axis_tvalid && top_.s_axis_tready;
        const bool out_fire = !reset && top_.m_axis_tvalid && top_.m_axis_tready;
        const bool aw_fire = !reset && top_.s_axi_ctrl_awvalid && top_.s_axi_ctrl_awready;
        const bool w_fire = !reset && top_.s_axi_ctrl_wvalid && top_.s_axi_ctrl_wready;
        const bool b_fire = !reset && top_.s_axi_ctrl_bvalid && top_.s_axi_ctrl_bready;
        const bool ar_fire = !reset && top_.s_axi_ctrl_arvalid && top_.s_axi_ctrl_arready;
        const bool r_fire = !reset && top_.s_axi_ctrl_rvalid && top_.s_axi_ctrl_rready;
        const uint64_t out_data = top_.m_axis_tdata;
        const unsigned out_keep = top_.m_axis_tkeep;
        const bool out_last = top_.m_axis_tlast;
        const int bresp = top_.s_axi_ctrl_bresp, rresp = top_.s_axi_ctrl_rresp;
        const uint32_t rdata = top_.s_axi_ctrl_rdata;
        top_.aclk = 1;
        top_.eval();
        ++cycle_;

        if (in_fire) {
            offering_ = false;
            pos_ += beat_bytes_;
            if (pos_ == mm2s_.front().size()) {
                mm2s_.pop_front();
                pos_ = 0;
                ++sent_;
            }
        }
        if (out_fire) {
            for (int i = 0; i < 8; ++i) {
                if ((out_keep >> i & 1) && got_.size() < want_) {
                    got_.push_back(static_cast<uint8_t>(out_data >> (8 * i)));
                }
            }
            if (out_last || got_.size() >= want_) {
                armed_ = false;
                done_ = got_;
                done_tlast_ = out_last;
                ++received_;
            }
        }
        if (aw_fire) aw_ = false;
        if (w_fire) w_ = false;
        if (b_fire) {
            b_done_ = true;
            resp_ = bresp;
        }
        if (ar_fire) ar_ = false;
        if (r_fire) {
            r_done_ = true;
            resp_ = rresp;
            rdata_ = rdata;
        }
    }

    Args args_;
    std::mt19937_64 rng_;
    std::uniform_real_distribution<double> uni_{0.0, 1.0};
    VerilatedContext ctx_;
    Vtop top_;
    uint64_t cycle_ = 0;
    // MM2S
    std::deque<std::vector<uint8_t>> mm2s_;
    size_t pos_ = 0, beat_bytes_ = 0;
    bool offering_ = false;
    uint64_t sent_ = 0;
    // S2MM
    bool armed_ = false;
    size_t want_ = 0;
    std::vector<uint8_t> got_, done_;
    bool done_tlast_ = false;
    uint64_t received_ = 0;
    // AXI-Lite master
    bool aw_ = false, w_ = false, ar_ = false, b_done_ = false, r_done_ = false;
    uint32_t addr_ = 0, wdata_ = 0, rdata_ = 0;
    int resp_ = 0;
};

bool number(std::istringstream& in, uint64_t& v) {
    std::string tok;
    if (!(in >> tok)) return false;
    try {
        size_t used = 0;
        v = std::stoull(tok, &used, 0);
        return used == tok.size();
    } catch (...) {
        return false;
    }
}

}  // namespace

int main(int argc, char** argv) {
    const Args args = parse(argc, argv);
    Verilated::commandArgs(argc, argv);
    Bench bench(args);
    std::ios::sync_with_stdio(false);
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string cmd;
        if (!(in >> cmd)) continue;
        uint64_t a = 0, b = 0;
        if (cmd == "W") {
            int resp = 0;
            if (!number(in, a) || !number(in, b)) { reply("ERR usage: W ADDR VALUE"); continue; }
            if (!bench.write(static_cast<uint32_t>(a), static_cast<uint32_t>(b), resp)) {
                reply("ERR AXI-Lite write to " + std::to_string(a) + ": no write response in " +
                      std::to_string(LITE_TIMEOUT) + " cycles");
                continue;
            }
            reply("OK " + std::to_string(resp) + " " + std::to_string(bench.cycle()));
        } else if (cmd == "R") {
            uint32_t value = 0;
            int resp = 0;
            if (!number(in, a)) { reply("ERR usage: R ADDR"); continue; }
            if (!bench.read(static_cast<uint32_t>(a), value, resp)) {
                reply("ERR AXI-Lite read of " + std::to_string(a) + ": no read data in " +
                      std::to_string(LITE_TIMEOUT) + " cycles");
                continue;
            }
            reply("OK " + std::to_string(value) + " " + std::to_string(resp) + " " +
                  std::to_string(bench.cycle()));
        } else if (cmd == "S" || cmd == "F") {
            std::string arg;
            in >> arg;
            std::vector<uint8_t> bytes;
            if (cmd == "S") {
                if (!unhex(arg, bytes)) { reply("ERR S: not a hex byte string"); continue; }
            } else {
                std::ifstream f(arg, std::ios::binary);
                if (!f) { reply("ERR F: cannot read " + arg); continue; }
                bytes.assign(std::istreambuf_iterator<char>(f), {});
            }
            if (bytes.empty()) { reply("ERR an MM2S transfer needs at least one byte"); continue; }
            bench.queue(std::move(bytes));
            reply("OK QUEUED");
        } else if (cmd == "A") {
            if (!number(in, a)) { reply("ERR usage: A NBYTES"); continue; }
            if (!bench.arm(a)) { reply("ERR S2MM already armed, or 0 bytes"); continue; }
            reply("OK");
        } else if (cmd == "C") {
            if (!number(in, a)) { reply("ERR usage: C CYCLES"); continue; }
            bench.run(a);
            reply("OK " + std::to_string(bench.cycle()) + " " +
                  std::to_string(bench.send_idle()) + " " + std::to_string(bench.recv_idle()) +
                  " " + std::to_string(bench.sent()) + " " + std::to_string(bench.received()));
        } else if (cmd == "G") {
            reply("OK " + std::to_string(bench.last_recv().size()) + " " +
                  std::to_string(bench.last_tlast()) + " " + tohex(bench.last_recv()));
        } else if (cmd == "Q") {
            reply("OK BYE");
            return 0;
        } else {
            reply("ERR unknown command " + cmd);
        }
    }
    return 0;
}
