// Deep Compression weight sharing for hls4ml's dense / conv kernels: a layer's weight
// ROM holds B-bit indices (weight_t = ap_uint<B>) and the product looks each index up in
// the layer's codebook of 2^B weights before multiplying. The codebook is an ordinary
// hls4ml weight array (weights/cb<N>.h), small enough for registers: HLS should
// partition it completely so every multiplier lane has its own lookup.
// Golden model: model/quantize.py attach_codebook (w_q == codebook[idx], exactly).
#ifndef NNET_SQZ_SHARED_H_
#define NNET_SQZ_SHARED_H_

#include "nnet_mult.h"

namespace nnet {
namespace product {

// Selected per layer by hls.sharing: `using product = sqz_codebook<cb_t, cbN>::mult<x_T, y_T>`.
template <class cb_T, cb_T *CB> struct sqz_codebook {
    template <class x_T, class w_T> class mult : public Product {
      public:
        static auto product(x_T a, w_T w) -> decltype(a * CB[0]) {
            #pragma HLS INLINE
            return a * CB[w];
        }
    };
};

} // namespace product
} // namespace nnet

#endif
