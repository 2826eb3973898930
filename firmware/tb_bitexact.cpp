// Bit-exact testbench for the ${project} hls4ml project (io_stream).
//
// Rendered by hls/testbench.py from firmware/tb_bitexact.cpp; it replaces the testbench
// hls4ml writes (${project}_test.cpp, the file build_prj.tcl adds with `add_files -tb`),
// so `vitis_hls` / `vivado_hls` C simulation (build_prj.tcl with csim=1) repeats the
// Python flow's golden-model check without Python.
//
// tb_data/tb_input_features.dat:   one frame per line, ${input_size} space-separated input
//                                   values in the order the top function reads them
//                                   (H, W, C row-major).
// tb_data/tb_output_predictions.dat: one frame per line, ${output_size} golden outputs as
//                                   exact decimals of values on the ${output_t} grid.
//
// Every output element is compared exactly (fixed-point equality, no tolerance) with the
// expected value assigned to the output's fixed-point type; an expected value that this
// assignment would change (off the grid or out of range) is an error, not a mismatch.
// The last line is "tb: F frames, N outputs compared, M mismatches"; main returns 1 when
// M > 0, N == 0, or a file is missing, short or malformed.

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <math.h>
#include <sstream>
#include <stdio.h>
#include <stdlib.h>
#include <string>
#include <vector>

#include "firmware/${project}.h"
#include "firmware/nnet_utils/nnet_helpers.h"

// hls4ml's layer trace hooks (save_layer_output in firmware/${project}.cpp) stay off.
namespace nnet {
bool trace_enabled = false;
std::map<std::string, void *> *trace_outputs = NULL;
size_t trace_type_size = sizeof(double);
} // namespace nnet

#define N_INPUTS ${input_size}u
#define N_OUTPUTS ${output_size}u
#define MAX_REPORTED_MISMATCHES 20

typedef ${input_t}::value_type input_elem_t;
typedef ${output_t}::value_type output_elem_t;

// Parses one line of space-separated decimals; false if a token is not a number.
static bool parse_line(const std::string &line, std::vector<double> &values) {
    values.clear();
    std::istringstream iss(line);
    std::string token;
    while (iss >> token) {
        const char *begin = token.c_str();
        char *end = NULL;
        double v = strtod(begin, &end);
        if (end == begin || *end != '\0')
            return false;
        values.push_back(v);
    }
    return true;
}

int main(int argc, char **argv) {
    const char *input_path = "tb_data/tb_input_features.dat";
    const char *expected_path = "tb_data/tb_output_predictions.dat";

    std::ifstream fin(input_path);
    std::ifstream fpr(expected_path);

#ifdef RTL_SIM
    std::string RESULTS_LOG = "tb_data/rtl_cosim_results.log";
#else
    std::string RESULTS_LOG = "tb_data/csim_results.log";
#endif

    // Optional argument: check only the first N frames (a quick run; vendor csim passes none).
    const long max_frames = argc > 1 ? atol(argv[1]) : -1;
    long frames = 0;
    long compared = 0;
    long mismatches = 0;
    long errors = 0;

    if (!fin.is_open()) {
        std::cout << "tb: ERROR: cannot open " << input_path << std::endl;
        errors++;
    }
    if (!fpr.is_open()) {
        std::cout << "tb: ERROR: cannot open " << expected_path << std::endl;
        errors++;
    }

    if (errors == 0) {
        std::ofstream fout(RESULTS_LOG.c_str());
        std::string iline;
        std::string pline;
        std::vector<double> in;
        std::vector<double> expected;

        while ((max_frames < 0 || frames < max_frames) && std::getline(fin, iline)) {
            if (!std::getline(fpr, pline)) {
                std::cout << "tb: ERROR: " << expected_path << " has fewer lines than "
                          << input_path << " (frame " << frames << ")" << std::endl;
                errors++;
                break;
            }
            if (!parse_line(iline, in) || in.size() != N_INPUTS) {
                std::cout << "tb: ERROR: frame " << frames << ": input line has "
                          << in.size() << " numeric values, expected " << N_INPUTS << std::endl;
                errors++;
                break;
            }
            if (!parse_line(pline, expected) || expected.size() != N_OUTPUTS) {
                std::cout << "tb: ERROR: frame " << frames << ": expected-output line has "
                          << expected.size() << " numeric values, expected " << N_OUTPUTS
                          << std::endl;
                errors++;
                break;
            }
            for (unsigned i = 0; i < N_INPUTS; i++) {
                input_elem_t x = in[i];
                if (x.to_double() != in[i]) {
                    std::cout << "tb: ERROR: frame " << frames << ": input " << i << " = "
                              << std::setprecision(17) << in[i]
                              << " is not representable as an input_t element" << std::endl;
                    errors++;
                }
            }

            // Same calling convention as hls4ml's generated testbench (io_stream).
            hls::stream<${input_t}> input_stream("input_stream");
            nnet::copy_data<double, ${input_t}, 0, N_INPUTS>(in, input_stream);
            hls::stream<${output_t}> output_stream("output_stream");

            ${project}(input_stream, output_stream);

            if (!input_stream.empty()) {
                std::cout << "tb: ERROR: frame " << frames
                          << ": the top function left input data unread" << std::endl;
                errors++;
                while (!input_stream.empty())
                    input_stream.read();
            }

            long bad_here = 0;
            for (unsigned i = 0; i < N_OUTPUTS / ${output_t}::size; i++) {
                if (output_stream.empty()) {
                    std::cout << "tb: ERROR: frame " << frames << ": output stream has only "
                              << i * ${output_t}::size << " of " << N_OUTPUTS << " values"
                              << std::endl;
                    errors++;
                    break;
                }
                ${output_t} pack = output_stream.read();
                for (unsigned j = 0; j < ${output_t}::size; j++) {
                    const unsigned k = i * ${output_t}::size + j;
                    output_elem_t got = pack[j];
                    fout << got << " ";
                    output_elem_t want = expected[k];
                    if (want.to_double() != expected[k]) {
                        std::cout << "tb: ERROR: frame " << frames << ": expected output " << k
                                  << " = " << std::setprecision(17) << expected[k]
                                  << " is not on the output_t grid" << std::endl;
                        errors++;
                        continue;
                    }
                    compared++;
                    if (got != want) {
                        mismatches++;
                        bad_here++;
                        if (mismatches <= MAX_REPORTED_MISMATCHES)
                            std::cout << "tb: frame " << frames << ": output " << k
                                      << ": C sim " << std::setprecision(17) << got.to_double()
                                      << " expected " << want.to_double() << std::endl;
                    }
                }
            }
            fout << std::endl;
            if (!output_stream.empty()) {
                std::cout << "tb: ERROR: frame " << frames
                          << ": the top function wrote more than " << N_OUTPUTS << " outputs"
                          << std::endl;
                errors++;
                while (!output_stream.empty())
                    output_stream.read();
            }
            if (bad_here)
                std::cout << "tb: frame " << frames << ": " << bad_here << " mismatches"
                          << std::endl;
            frames++;
        }
        if (errors == 0 && max_frames < 0 && std::getline(fpr, pline)) {
            std::cout << "tb: ERROR: " << expected_path << " has more lines than "
                      << input_path << std::endl;
            errors++;
        }
        fout.close();
        std::cout << "INFO: Saved inference results to file: " << RESULTS_LOG << std::endl;
    }

    if (errors)
        std::cout << "tb: " << errors << " errors" << std::endl;
    std::cout << "tb: " << frames << " frames, " << compared << " outputs compared, "
              << mismatches << " mismatches" << std::endl;
    return (mismatches > 0 || compared == 0 || errors > 0) ? 1 : 0;
}
