// Copyright the squeezenet-fpga authors. Apache-2.0.
//
// sqz_net_tb: fast whole-network bench, the Verilated top driven from C++ (no VPI, no
// cocotb). Built by sim/fast.py with `verilator --cc --exe --build --prefix Vtop`, so the
// same file drives every generated top whatever its port widths.
//
//   sqz_net_tb IN OUT [--idle P] [--backpressure P] [--seed S] [--watchdog N]
//
// IN (written by sim/fast.py, little-endian uint32): magic "SQZI", words per input beat,
// words per output beat, frames, input beats per frame, output beats per frame, then every
// input beat of every frame (TLAST is implied on the last beat of a frame).
// OUT: every output beat collected, its words followed by one word holding TLAST.
// stdout: `SQZ_RESULT key=value` lines (start cycle, the cycle of every frame's last output
// beat, total cycles, simulation seconds of wall and of CPU time) and the `SQZ_FIFO_STATS`
// lines that sqz_fifo prints from its `final` block when built with SQZ_FIFO_STATS.
//
// Cycles count rising clock edges. A beat counts at the edge where TVALID and TREADY were
// both high; the input source drops TVALID for a random cycle with probability --idle before
// each beat, the output sink drops TREADY with probability --backpressure every cycle (the
// scheme of sim/bench.py). Exit status: 0 done, 2 usage or file error, 3 watchdog
// (no output beat for --watchdog cycles: a deadlock or a far too slow pipeline).

#include <chrono>
#include <cstdint>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

// Verilator stores a port of up to 8/16/32 bits in CData/SData/IData, up to 64 in QData,
// wider ones in VlWide<N> (N 32-bit words): one overload set covers all of them.
template <typename T>
constexpr size_t port_words(const T&) { return sizeof(T) <= 4 ? 1 : 2; }
template <std::size_t N>
constexpr size_t port_words(const VlWide<N>&) { return N; }

template <typename T>
void put(T& port, const uint32_t* w) {
    if constexpr (sizeof(T) > 4) {
        port = static_cast<T>(w[0]) | (static_cast<T>(w[1]) << 32);
    } else {
        port = static_cast<T>(w[0]);
    }
}
template <std::size_t N>
void put(VlWide<N>& port, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = w[i];
}

template <typename T>
void get(const T& port, uint32_t* w) {
    w[0] = static_cast<uint32_t>(port);
    if constexpr (sizeof(T) > 4) w[1] = static_cast<uint32_t>(static_cast<uint64_t>(port) >> 32);
}
template <std::size_t N>
void get(const VlWide<N>& port, uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) w[i] = port[i];
}

[[noreturn]] void fail(int code, const std::string& msg) {
    std::fprintf(stderr, "sqz_net_tb: %s\n", msg.c_str());
    std::exit(code);
}

struct Args {
    std::string in_path, out_path;
    double idle = 0.0, backpressure = 0.0;
    uint64_t seed = 21;
    uint64_t watchdog = 2000000;
};

Args parse(int argc, char** argv) {
    Args a;
    std::vector<std::string> pos;
    for (int i = 1; i < argc; ++i) {
        std::string k = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) fail(2, "missing value after " + k);
            return argv[++i];
        };
        if (k == "--idle") a.idle = std::stod(value());
        else if (k == "--backpressure") a.backpressure = std::stod(value());
        else if (k == "--seed") a.seed = std::stoull(value());
        else if (k == "--watchdog") a.watchdog = std::stoull(value());
        else if (k.rfind("+", 0) == 0) continue;  // Verilator plusargs
        else pos.push_back(k);
    }
    if (pos.size() != 2) {
        fail(2, "usage: sqz_net_tb IN OUT [--idle P] [--backpressure P] [--seed S] "
                "[--watchdog N]");
    }
    a.in_path = pos[0];
    a.out_path = pos[1];
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    const Args args = parse(argc, argv);

    FILE* fin = std::fopen(args.in_path.c_str(), "rb");
    if (!fin) fail(2, "cannot read " + args.in_path);
    uint32_t hdr[6];
    if (std::fread(hdr, sizeof hdr, 1, fin) != 1 || std::memcmp(hdr, "SQZI", 4) != 0) {
        fail(2, args.in_path + ": not a frame file (no SQZI header)");
    }
    const size_t in_words = hdr[1], out_words = hdr[2], frames = hdr[3];
    const size_t in_beats = hdr[4], out_beats = hdr[5];
    std::vector<uint32_t> input(in_words * in_beats * frames);
    if (std::fread(input.data(), sizeof(uint32_t), input.size(), fin) != input.size()) {
        fail(2, args.in_path + ": shorter than its header says");
    }
    std::fclose(fin);

    VerilatedContext ctx;
    ctx.commandArgs(argc, argv);
    Vtop top{&ctx};
    if (port_words(top.s_axis_tdata) != in_words || port_words(top.m_axis_tdata) != out_words) {
        fail(2, "port widths differ from the frame file: s_axis " +
                    std::to_string(port_words(top.s_axis_tdata)) + " words (file " +
                    std::to_string(in_words) + "), m_axis " +
                    std::to_string(port_words(top.m_axis_tdata)) + " words (file " +
                    std::to_string(out_words) + ")");
    }

    std::mt19937_64 rng(args.seed);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    const size_t total_in = in_beats * frames, total_out = out_beats * frames;
    std::vector<uint32_t> output((out_words + 1) * total_out);
    std::vector<uint64_t> frame_ends;
    uint64_t cycle = 0;
    size_t n_in = 0, n_out = 0;

    // One rising edge: settle the inputs with the clock low, sample the handshakes the edge
    // will see, then raise the clock.
    bool in_fire = false, out_fire = false;
    auto edge = [&]() {
        top.clk = 0;
        top.eval();
        in_fire = top.s_axis_tvalid && top.s_axis_tready;
        out_fire = top.m_axis_tvalid && top.m_axis_tready;
        if (out_fire && n_out < total_out) {
            // Sampled before the edge, as the sink's register would take it.
            uint32_t* w = &output[(out_words + 1) * n_out];
            get(top.m_axis_tdata, w);
            w[out_words] = top.m_axis_tlast;
        }
        top.clk = 1;
        top.eval();
        ++cycle;
    };

    top.rst = 1;
    top.s_axis_tvalid = 0;
    top.s_axis_tlast = 0;
    top.m_axis_tready = 0;
    for (int i = 0; i < 4; ++i) edge();
    top.rst = 0;
    edge();
    const uint64_t start = cycle;

    uint64_t last_out = cycle;
    bool offering = false;  // TVALID held high on the current beat until taken
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    while (n_out < total_out) {
        if (!offering && n_in < total_in && !(args.idle > 0 && uni(rng) < args.idle)) {
            put(top.s_axis_tdata, &input[in_words * n_in]);
            top.s_axis_tlast = (n_in % in_beats) == in_beats - 1;
            offering = true;
        }
        top.s_axis_tvalid = offering;
        edge();
        if (in_fire) {
            offering = false;
            ++n_in;
        }
        if (out_fire) {
            last_out = cycle;
            if (output[(out_words + 1) * n_out + out_words]) {
                frame_ends.push_back(cycle);
                // one line per finished frame: the Python side draws its progress from it
                std::fprintf(stderr, "SQZ_PROGRESS %zu\n", frame_ends.size());
                std::fflush(stderr);
            }
            ++n_out;
        }
        top.m_axis_tready = !(args.backpressure > 0 && uni(rng) < args.backpressure);
        if (cycle - last_out > args.watchdog) {
            std::fflush(stdout);
            std::fprintf(stderr,
                         "sqz_net_tb: watchdog: no output beat for %llu cycles, stopped at "
                         "cycle %llu (%zu of %zu input beats taken, %zu of %zu output beats "
                         "seen): deadlock?\n",
                         static_cast<unsigned long long>(args.watchdog),
                         static_cast<unsigned long long>(cycle - start), n_in, total_in, n_out,
                         total_out);
            top.final();
            std::exit(3);
        }
    }
    const double sim_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // CPU time as well: on a loaded machine it still measures the model's own speed.
    const double sim_cpu_s = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    top.final();

    FILE* fout = std::fopen(args.out_path.c_str(), "wb");
    if (!fout || std::fwrite(output.data(), sizeof(uint32_t), output.size(), fout) !=
                     output.size()) {
        fail(2, "cannot write " + args.out_path);
    }
    std::fclose(fout);

    std::printf("SQZ_RESULT start=%llu\n", static_cast<unsigned long long>(start));
    for (uint64_t c : frame_ends) {
        std::printf("SQZ_RESULT frame_end=%llu\n", static_cast<unsigned long long>(c));
    }
    std::printf("SQZ_RESULT end=%llu\n", static_cast<unsigned long long>(cycle));
    std::printf("SQZ_RESULT sim_s=%.6f\n", sim_s);
    std::printf("SQZ_RESULT sim_cpu_s=%.6f\n", sim_cpu_s);
    return 0;
}
