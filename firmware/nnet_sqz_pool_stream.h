// SqueezeNet pooling kernels for hls4ml io_stream: Caffe ceil-mode max-pool and a
// bit-exact global average pool. Golden models: model/golden.py (maxpool_ceil,
// global_avgpool). Stream element = nnet::array<T, n_chan>: one pixel, all channels,
// pixels in row-major order, as every hls4ml io_stream conv layer produces them.
#ifndef NNET_SQZ_POOL_STREAM_H_
#define NNET_SQZ_POOL_STREAM_H_

#include "hls_stream.h"
#include "nnet_common.h"
#include "nnet_types.h"

namespace nnet {

// Width and signedness of an ap_[u]fixed / ap_[u]int type, for raw-bit arithmetic that
// does not depend on where the binary point sits.
template <class T> struct sqz_bits;
template <int W, int I, ap_q_mode Q, ap_o_mode O, int N> struct sqz_bits<ap_fixed<W, I, Q, O, N> > {
    static const int width = W;
    static const bool is_signed = true;
};
template <int W, int I, ap_q_mode Q, ap_o_mode O, int N> struct sqz_bits<ap_ufixed<W, I, Q, O, N> > {
    static const int width = W;
    static const bool is_signed = false;
};
template <int W> struct sqz_bits<ap_int<W> > {
    static const int width = W;
    static const bool is_signed = true;
};
template <int W> struct sqz_bits<ap_uint<W> > {
    static const int width = W;
    static const bool is_signed = false;
};

// The integer q behind x (x = q * 2^-frac), sign-extended by one bit so that unsigned
// values stay non-negative.
template <class T> ap_int<sqz_bits<T>::width + 1> sqz_raw(const T &x) {
    #pragma HLS INLINE
    const int W = sqz_bits<T>::width;
    ap_int<W + 1> q;
    if (sqz_bits<T>::is_signed) {
        ap_int<W> s;
        s.range(W - 1, 0) = x.range(W - 1, 0);
        q = s;
    } else {
        ap_uint<W> u;
        u.range(W - 1, 0) = x.range(W - 1, 0);
        q = u;
    }
    return q;
}

// *************************************************
//       Ceil-mode max-pool (Caffe), no padding
// *************************************************

struct maxpool2d_ceil_config {
    static const unsigned in_height = 7;
    static const unsigned in_width = 7;
    static const unsigned n_chan = 1;
    static const unsigned out_height = 3; // model.graph.pool_out_ceil(in_height, pool, stride)
    static const unsigned out_width = 3;
    static const unsigned pool_height = 3; // stride <= pool <= 2 * stride
    static const unsigned pool_width = 3;
    static const unsigned stride_height = 2;
    static const unsigned stride_width = 2;
};

// One pass over the input. Because pool <= 2 * stride, a column belongs to at most two
// windows and a row to at most two output rows; each pair is held in two banks selected
// by the parity of the window / output-row index, so every bank is touched at most once
// per pixel. A window's first pixel overwrites its bank entry and the entry is final at
// the window's last pixel (clipped to the image edge), so no initial value is needed and
// partial edge windows take the maximum of the pixels that exist.
template <class data_T, class res_T, typename CONFIG_T>
void maxpool2d_ceil_cl(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    static_assert(CONFIG_T::stride_height <= CONFIG_T::pool_height &&
                      CONFIG_T::pool_height <= 2 * CONFIG_T::stride_height,
                  "maxpool2d_ceil_cl needs stride <= pool <= 2 * stride (height)");
    static_assert(CONFIG_T::stride_width <= CONFIG_T::pool_width && CONFIG_T::pool_width <= 2 * CONFIG_T::stride_width,
                  "maxpool2d_ceil_cl needs stride <= pool <= 2 * stride (width)");
    static_assert(data_T::size == CONFIG_T::n_chan && res_T::size == CONFIG_T::n_chan,
                  "maxpool2d_ceil_cl streams one pixel (all channels) per element");

    typedef typename data_T::value_type val_t;
    const unsigned SH = CONFIG_T::stride_height, SW = CONFIG_T::stride_width;
    const unsigned PH = CONFIG_T::pool_height, PW = CONFIG_T::pool_width;

    // Running maxima of the output rows the current input row feeds, per output column.
    static val_t row_max[2][CONFIG_T::out_width][CONFIG_T::n_chan];
    #pragma HLS ARRAY_PARTITION variable=row_max complete dim=1
    #pragma HLS ARRAY_PARTITION variable=row_max complete dim=3
    // Running maxima of the windows the current input column feeds, within this row.
    static val_t col_max[2][CONFIG_T::n_chan];
    #pragma HLS ARRAY_PARTITION variable=col_max complete dim=0

MaxPoolRows:
    for (unsigned r = 0; r < CONFIG_T::in_height; r++) {
    MaxPoolCols:
        for (unsigned c = 0; c < CONFIG_T::in_width; c++) {
            #pragma HLS LOOP_FLATTEN
            #pragma HLS PIPELINE II=1
            const data_T in = data.read();

            // Horizontal: windows j with j*SW <= c < j*SW + PW, j < out_width.
            const unsigned jh = c / SW;
            const bool jh_ok = jh < CONFIG_T::out_width;
            const bool jl_ok = jh >= 1 && jh - 1 < CONFIG_T::out_width && c < (jh - 1) * SW + PW;
            bool col_done = false;
            unsigned j_done = 0;
            val_t hmax[CONFIG_T::n_chan];
            #pragma HLS ARRAY_PARTITION variable=hmax complete
        ColBanks:
            for (unsigned b = 0; b < 2; b++) {
                #pragma HLS UNROLL
                const bool is_hi = (jh & 1) == b;
                const unsigned j = is_hi ? jh : jh - 1;
                if (is_hi ? jh_ok : jl_ok) {
                    const bool first = c == j * SW;
                    const bool last = c == MIN(j * SW + PW - 1, CONFIG_T::in_width - 1);
                    for (unsigned ch = 0; ch < CONFIG_T::n_chan; ch++) {
                        #pragma HLS UNROLL
                        const val_t v = (first || in[ch] > col_max[b][ch]) ? in[ch] : col_max[b][ch];
                        col_max[b][ch] = v;
                        if (last)
                            hmax[ch] = v;
                    }
                    if (last) {
                        col_done = true;
                        j_done = j;
                    }
                }
            }
            if (col_done) {
                // Vertical: output rows i with i*SH <= r < i*SH + PH, i < out_height.
                const unsigned ih = r / SH;
                const bool ih_ok = ih < CONFIG_T::out_height;
                const bool il_ok = ih >= 1 && ih - 1 < CONFIG_T::out_height && r < (ih - 1) * SH + PH;
                bool emit = false;
                res_T out;
                PRAGMA_DATA_PACK(out)
            RowBanks:
                for (unsigned b = 0; b < 2; b++) {
                    #pragma HLS UNROLL
                    const bool is_hi = (ih & 1) == b;
                    const unsigned i = is_hi ? ih : ih - 1;
                    if (is_hi ? ih_ok : il_ok) {
                        const bool first = r == i * SH;
                        const bool last = r == MIN(i * SH + PH - 1, CONFIG_T::in_height - 1);
                        for (unsigned ch = 0; ch < CONFIG_T::n_chan; ch++) {
                            #pragma HLS UNROLL
                            const val_t old = row_max[b][j_done][ch];
                            const val_t v = (first || hmax[ch] > old) ? hmax[ch] : old;
                            if (last)
                                out[ch] = v;
                            else
                                row_max[b][j_done][ch] = v;
                        }
                        if (last)
                            emit = true;
                    }
                }
                // At most one output row ends per input row (only the last window can be
                // clipped), so outputs leave in row-major order.
                if (emit)
                    res.write(out);
            }
        }
    }
}

// *************************************************
//       Global average pool, golden-model rounding
// *************************************************

struct global_avgpool_fixed_config {
    static const unsigned in_height = 13;
    static const unsigned in_width = 13;
    static const unsigned n_chan = 1;
    static const unsigned recip = 49637; // R = round(2^S / (in_height * in_width)), S = 23
    static const int shift = 19;         // frac(accum_t) + S - frac(result): 4 + 23 - 8
    typedef ap_ufixed<16, 12> accum_t;   // input type + ceil(log2(H*W)) integer bits
};

// sat((q_sum * R + 2^(shift-1)) >> shift), written as the raw bits of out_T: AP_RND and
// AP_SAT at the output LSB whatever out_T's own quantization and overflow modes are.
template <class accum_T, class out_T, typename CONFIG_T> out_T sqz_gap_scale(const accum_T &sum) {
    #pragma HLS INLINE
    const int RS = CONFIG_T::shift > 0 ? CONFIG_T::shift : 0;
    const int LS = CONFIG_T::shift < 0 ? -CONFIG_T::shift : 0;
    const int PW = sqz_bits<accum_T>::width + 1 + 17 + LS;
    const int OW = sqz_bits<out_T>::width;
    const int OS = sqz_bits<out_T>::is_signed ? 1 : 0;

    ap_int<PW> p = sqz_raw(sum);
    p = p * ap_int<17>(CONFIG_T::recip);
    if (RS > 0) {
        p += ap_int<PW>(1) << (RS > 0 ? RS - 1 : 0);
        p >>= RS; // arithmetic: floor
    } else {
        p <<= LS;
    }

    const ap_int<OW + 2> one = 1;
    const ap_int<OW + 2> qmax = (one << (OW - OS)) - 1;
    const ap_int<OW + 2> qmin = OS ? ap_int<OW + 2>(-(one << (OW - 1))) : ap_int<OW + 2>(0);
    if (p > qmax)
        p = qmax;
    if (p < qmin)
        p = qmin;
    out_T o;
    o.range(OW - 1, 0) = p.range(OW - 1, 0);
    return o;
}

template <class data_T, class res_T, typename CONFIG_T>
void global_avgpool_fixed_cl(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    static_assert(data_T::size == CONFIG_T::n_chan && res_T::size == CONFIG_T::n_chan,
                  "global_avgpool_fixed_cl reads one pixel and writes one vector of n_chan");
    typedef typename CONFIG_T::accum_t accum_t;

    accum_t sum[CONFIG_T::n_chan];
    #pragma HLS ARRAY_PARTITION variable=sum complete
GapInit:
    for (unsigned ch = 0; ch < CONFIG_T::n_chan; ch++) {
        #pragma HLS UNROLL
        sum[ch] = 0;
    }

    // accum_t has the input's fractional bits and ceil(log2(H*W)) more integer bits: exact.
GapSum:
    for (unsigned p = 0; p < CONFIG_T::in_height * CONFIG_T::in_width; p++) {
        #pragma HLS PIPELINE II=1
        const data_T in = data.read();
        for (unsigned ch = 0; ch < CONFIG_T::n_chan; ch++) {
            #pragma HLS UNROLL
            sum[ch] += in[ch];
        }
    }

    // One multiplier shared by all channels: the scaling runs once per frame.
    res_T out;
    PRAGMA_DATA_PACK(out)
GapScale:
    for (unsigned ch = 0; ch < CONFIG_T::n_chan; ch++) {
        #pragma HLS PIPELINE II=1
        out[ch] = sqz_gap_scale<accum_t, typename res_T::value_type, CONFIG_T>(sum[ch]);
    }
    res.write(out);
}

} // namespace nnet

#endif
