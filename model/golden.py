"""The golden model: the exact integer arithmetic the hardware must reproduce.

Plain numpy on integers. Every tensor is an int64 array ``q`` (H, W, C) whose real value is
``q * 2**-frac`` for the format the quantization plan gives it. This module is the
definition of correct: the hls4ml C simulation and the RTL are checked against it element
by element, and tests import it rather than re-implementing it.

Per block:
- conv: ``acc = sum(x * w) + (b << (frac_x + frac_w - frac_b))`` exactly (no intermediate
  rounding), then AP_RND rounding to the output LSB, AP_SAT clamping, ReLU. Because the
  output format is unsigned, ReLU + saturation is ``clip(round(acc), 0, qmax)``.
- maxpool: 3x3 windows, stride 2, Caffe ceil mode; a window hanging over the bottom/right
  edge takes the maximum of the pixels that exist.
- concat: channels of the first input, then the second (both share one format).
- add (simple bypass): both inputs aligned to the finer LSB, added exactly, requantized.
- gap: exact sum over H*W, times the integer reciprocal ``R = round(2**S / (H*W))``, then
  AP_RND/AP_SAT to the logit format: ``out = sat((sum * R + half) >> shift)`` with
  ``shift = frac_in + S - frac_out``.
"""

from __future__ import annotations

import numpy as np

from model.fixed import FixedFormat, requantize


def im2col(x: np.ndarray, kernel: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    """(H, W, C) -> (Ho*Wo, k*k*C) patches in (ky, kx, c) order, zero padded."""
    h, w, c = x.shape
    if pad:
        x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    ho = (h + 2 * pad - kernel) // stride + 1
    wo = (w + 2 * pad - kernel) // stride + 1
    cols = np.empty((ho, wo, kernel, kernel, c), dtype=x.dtype)
    for ky in range(kernel):
        for kx in range(kernel):
            cols[:, :, ky, kx, :] = x[ky:ky + stride * (ho - 1) + 1:stride,
                                      kx:kx + stride * (wo - 1) + 1:stride, :]
    return cols.reshape(ho * wo, kernel * kernel * c), ho, wo


def conv_accumulate(x_q: np.ndarray, w_q: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Exact integer conv (no bias): returns int64 (Ho, Wo, Cout).

    The products are summed in float64 BLAS, which is exact while every partial sum stays
    below 2**53; the bound is checked, so the result equals int64 arithmetic.
    """
    k = w_q.shape[0]
    cols, ho, wo = im2col(np.asarray(x_q, dtype=np.int64), k, stride, pad)
    wmat = np.asarray(w_q, dtype=np.int64).reshape(-1, w_q.shape[-1])
    bound = int(np.abs(cols).max(initial=0)) * int(np.abs(wmat).sum(axis=0).max(initial=0))
    if bound >= 2**53:
        acc = cols @ wmat  # exact int64 matmul (slow path)
    else:
        acc = np.rint(cols.astype(np.float64) @ wmat.astype(np.float64)).astype(np.int64)
    return acc.reshape(ho, wo, -1)


def conv2d(x_q: np.ndarray, x_fmt: FixedFormat, w_q: np.ndarray, w_fmt: FixedFormat,
           b_q: np.ndarray, b_fmt: FixedFormat, out_fmt: FixedFormat, stride: int, pad: int,
           relu: bool = True) -> np.ndarray:
    """Integer convolution + bias + AP_RND/AP_SAT requantization (+ ReLU)."""
    acc_frac = x_fmt.frac + w_fmt.frac
    if b_fmt.frac > acc_frac:
        raise ValueError("bias has more fractional bits than the accumulator")
    acc = conv_accumulate(x_q, w_q, stride, pad)
    acc = acc + (np.asarray(b_q, dtype=np.int64) << (acc_frac - b_fmt.frac))
    out = requantize(acc, acc_frac, out_fmt)
    return np.maximum(out, 0) if relu else out


def maxpool_ceil(x_q: np.ndarray, pool: int = 3, stride: int = 2) -> np.ndarray:
    """Caffe ceil-mode max-pool, no padding: windows over the edge use the pixels present."""
    from model.graph import pool_out_ceil

    h, w, c = x_q.shape
    ho, wo = pool_out_ceil(h, pool, stride), pool_out_ceil(w, pool, stride)
    out = np.empty((ho, wo, c), dtype=x_q.dtype)
    for i in range(ho):
        r0, r1 = i * stride, min(i * stride + pool, h)
        for j in range(wo):
            c0, c1 = j * stride, min(j * stride + pool, w)
            out[i, j] = x_q[r0:r1, c0:c1].max(axis=(0, 1))
    return out


def add(a_q: np.ndarray, a_fmt: FixedFormat, b_q: np.ndarray, b_fmt: FixedFormat,
        out_fmt: FixedFormat) -> np.ndarray:
    """Exact sum at the finer LSB, then AP_RND/AP_SAT to ``out_fmt``."""
    f = max(a_fmt.frac, b_fmt.frac)
    s = (np.asarray(a_q, np.int64) << (f - a_fmt.frac)) + (np.asarray(b_q, np.int64)
                                                           << (f - b_fmt.frac))
    return requantize(s, f, out_fmt)


def gap_reciprocal(pixels: int) -> tuple[int, int]:
    """(R, S): ``R = round(2**S / pixels)`` with S chosen so that 2**15 <= R < 2**16."""
    s = 16 + (pixels.bit_length() - 1)
    r = int(np.floor(2.0**s / pixels + 0.5))
    if r >= 1 << 16:  # pixels a power of two: R = 2**16 exactly; drop one bit of S
        s -= 1
        r = int(np.floor(2.0**s / pixels + 0.5))
    return r, s


def global_avgpool(x_q: np.ndarray, in_fmt: FixedFormat, out_fmt: FixedFormat) -> np.ndarray:
    """Sum over the map, times the 16-bit reciprocal, AP_RND/AP_SAT to ``out_fmt``: (C,)."""
    h, w, _ = x_q.shape
    r, s = gap_reciprocal(h * w)
    total = np.asarray(x_q, dtype=np.int64).sum(axis=(0, 1))
    return requantize(total * r, in_fmt.frac + s, out_fmt)


# ---------------------------------------------------------------- float reference path


def conv2d_float(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int,
                 relu: bool = True) -> np.ndarray:
    """Float32 convolution with the same geometry (the unquantized network)."""
    cols, ho, wo = im2col(np.asarray(x, dtype=np.float32), w.shape[0], stride, pad)
    y = cols @ w.reshape(-1, w.shape[-1]).astype(np.float32) + b.astype(np.float32)
    y = y.reshape(ho, wo, -1)
    return np.maximum(y, 0) if relu else y
