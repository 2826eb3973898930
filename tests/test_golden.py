"""The golden model's arithmetic, checked against hand-worked values and scipy."""

import numpy as np
import pytest
from scipy.signal import correlate

from model import golden
from model.fixed import FixedFormat, requantize


def test_requantize_rounds_half_up_and_saturates():
    out = FixedFormat(8, 8, signed=True)  # integers -128..127
    # acc with 1 fractional bit: 1.5 -> 2, -1.5 -> -1, 2.5 -> 3, -2.5 -> -2 (AP_RND)
    assert requantize(np.array([3, -3, 5, -5]), 1, out).tolist() == [2, -1, 3, -2]
    # 2 fractional bits: 1.25 -> 1, 1.75 -> 2, -1.25 -> -1, -1.75 -> -2
    assert requantize(np.array([5, 7, -5, -7]), 2, out).tolist() == [1, 2, -1, -2]
    # saturation at both ends
    assert requantize(np.array([1000, -1000]), 0, out).tolist() == [127, -128]
    u = FixedFormat(8, 4, signed=False)  # 0..255 in units of 1/16
    assert requantize(np.array([-7, 3000]), 4, u).tolist() == [0, 255]
    # coarser target grid than the source: shift left
    assert requantize(np.array([3]), 0, FixedFormat(8, 6)).tolist() == [12]


def test_format_ranges_and_strings():
    f = FixedFormat(8, 3)
    assert (f.qmin, f.qmax, f.frac) == (-128, 127, 5)
    assert f.ap() == "ap_fixed<8,3,AP_RND,AP_SAT>"
    assert f.hls() == "fixed<8,3,RND,SAT>"
    assert f.qkeras() == "quantized_bits(8,2,alpha=1)"
    u = FixedFormat(8, 4, signed=False)
    assert (u.qmin, u.qmax) == (0, 255)
    assert u.qkeras() == "quantized_relu(8,4)"
    with pytest.raises(ValueError, match="not on the"):
        u.from_real_exact(np.array([0.03125]))


@pytest.mark.parametrize("k, stride, pad", [(1, 1, 0), (3, 1, 1), (3, 2, 0), (7, 2, 0)])
def test_conv_accumulate_equals_scipy_correlation(k, stride, pad):
    rng = np.random.default_rng(k * 10 + stride)
    x = rng.integers(0, 256, (15, 13, 3))
    w = rng.integers(-128, 128, (k, k, 3, 4))
    got = golden.conv_accumulate(x, w, stride, pad)
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    for o in range(4):
        ref = correlate(xp, w[:, :, :, o], mode="valid")[::stride, ::stride, 0]
        assert np.array_equal(got[:, :, o], ref)


def test_conv2d_bias_alignment_and_relu():
    x_fmt = FixedFormat(8, 8, signed=False)          # integers
    w_fmt = FixedFormat(8, 1)                        # 7 fractional bits
    b_fmt = FixedFormat(16, 10)                      # 6 fractional bits
    out_fmt = FixedFormat(8, 8, signed=False)
    x = np.array([[[10]]])
    w = np.array([[[[64]]]])                         # 0.5
    b = np.array([-64])                              # -1.0
    # 10 * 0.5 - 1 = 4
    assert golden.conv2d(x, x_fmt, w, w_fmt, b, b_fmt, out_fmt, 1, 0).tolist() == [[[4]]]
    b2 = np.array([-64 * 7])                         # -7.0 -> -2 -> ReLU 0
    assert golden.conv2d(x, x_fmt, w, w_fmt, b2, b_fmt, out_fmt, 1, 0).tolist() == [[[0]]]


def test_maxpool_ceil_hand_example():
    x = np.arange(25).reshape(5, 5, 1)
    # windows rows/cols {0..2},{2..4}: maxima at the bottom-right corner of each
    assert golden.maxpool_ceil(x)[:, :, 0].tolist() == [[12, 14], [22, 24]]
    x6 = np.arange(36).reshape(6, 6, 1)
    # ceil mode: 6 -> 3 outputs; the last window covers rows/cols 4..5 only
    assert golden.maxpool_ceil(x6)[:, :, 0].tolist() == [[14, 16, 17], [26, 28, 29],
                                                          [32, 34, 35]]


def test_gap_reciprocal_and_average():
    r, s = golden.gap_reciprocal(196)
    assert (r, s) == (42799, 23)                    # round(2**23 / 196)
    assert golden.gap_reciprocal(16) == (32768, 19)
    in_fmt = FixedFormat(8, 4, signed=False)
    out_fmt = FixedFormat(16, 8, signed=False)
    x = np.full((14, 14, 2), 16)                    # every pixel 1.0
    x[0, 0, 1] = 16 + 196                           # mean of channel 1 = 1 + 196/16/196
    got = golden.global_avgpool(x, in_fmt, out_fmt)
    assert got.tolist() == [256, 256 + 16]          # 1.0 and 1.0625 in units of 1/256
