"""Second-order weight rounding (GPTQ, Frantar et al. 2023; the closed-form relative of
AdaQuant / Vitis AI fast-finetune): label-free, from the float model on calibration photos.

Rounding each 8-bit weight to its nearest grid point minimises the weight error, not the
error of the layer's *output*. For a conv with im2col inputs X (N x K) and float kernel W
(K x C_out), GPTQ minimises ||X W - X Q||^2 over grid kernels Q, one input row k at a time:
row k is rounded to the grid, and its rounding error is spread over the rows not yet
rounded through the inverse Hessian H^-1 (H = X^T X / N), so that the output barely moves.
Rows are taken in order of decreasing H_kk ("act order"); H is damped by 1% of its mean
diagonal. Everything is float64 numpy and deterministic (no random state at all).

The grid of a layer is either
- uniform: the layer's ``ap_fixed<8,I>`` format (``model.quantize.weight_format`` of the
  float kernel), rounded and clamped as ``FixedFormat.quantize`` does; or
- a codebook (Deep Compression's weight sharing, ``model.compress.share_on_grid``): the
  nearest of the layer's shared values (entry 0 the exact zero), with pruned positions
  forced to zero; their error is spread like any other, as SparseGPT does.

The inputs X of each layer are those the hardware gives it (``gptq_network``: earlier
kernels already rounded, activations on their 8-bit grids), and its bias then absorbs the
mean difference from the float layer's output. The result is a kernel *on the grid*:
``model.quantize`` rounds it to itself, and the golden model, the hls4ml C simulation and
the RTL take its integers unchanged.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.files import load_layers, save_layers
from model.fixed import FixedFormat
from model.golden import im2col
from model.graph import Node
from model.quantize import float_node

FloatWeights = dict[str, tuple[np.ndarray, np.ndarray]]

DAMPING = 0.01   # fraction of the mean diagonal of H added to its diagonal

__all__ = ["Grid", "uniform_grid", "codebook_grid", "gptq_kernel", "gptq_network"]


@dataclass(frozen=True)
class Grid:
    """The values one layer's weights may take: ``round_row(values, row)`` maps one input
    row (C_out floats of kernel row ``row`` in im2col order) onto the grid."""

    round_row: Callable[[np.ndarray, int], np.ndarray]
    what: str
    key: bytes = b""   # what defines the grid, for the result cache of ``gptq_network``

    def round_kernel(self, flat: np.ndarray) -> np.ndarray:
        """Every row of a K x C_out kernel to its nearest grid values (no error feedback)."""
        flat = np.asarray(flat, dtype=np.float64)
        return np.stack([self.round_row(flat[k], k) for k in range(flat.shape[0])])


def uniform_grid(fmt: FixedFormat, keep: np.ndarray | None = None) -> Grid:
    """The ``fmt`` grid, rounded and clamped as ``FixedFormat.quantize`` rounds weights;
    rows of ``keep`` (K x C_out booleans, False = pruned) force pruned weights to 0."""

    def round_row(v: np.ndarray, row: int) -> np.ndarray:
        q = fmt.to_real(fmt.quantize(v))
        return q if keep is None else np.where(keep[row], q, 0.0)

    mask = b"" if keep is None else np.packbits(np.asarray(keep, bool)).tobytes()
    return Grid(round_row, fmt.ap(), fmt.ap().encode() + mask)


def codebook_grid(values: np.ndarray, keep: np.ndarray | None = None) -> Grid:
    """The nearest of ``values`` (must contain 0.0); rows of ``keep`` (K x C_out booleans,
    False = pruned) force their pruned weights to 0. Ties go to the smaller value."""
    book = np.unique(np.asarray(values, dtype=np.float64))
    if not np.any(book == 0.0):
        raise ValueError("a codebook grid needs the exact zero among its values")
    mids = (book[1:] + book[:-1]) / 2

    def round_row(v: np.ndarray, row: int) -> np.ndarray:
        q = book[np.searchsorted(mids, v, side="left")]
        return q if keep is None else np.where(keep[row], q, 0.0)

    mask = b"" if keep is None else np.packbits(np.asarray(keep, bool)).tobytes()
    return Grid(round_row, f"{book.size}-value codebook", book.tobytes() + b"|" + mask)


def gptq_kernel(w: np.ndarray, hessian: np.ndarray, grid: Grid,
                damping: float = DAMPING) -> np.ndarray:
    """``w`` (K x C_out float) rounded onto ``grid`` row by row with GPTQ's error feedback
    through ``hessian`` (K x K, X^T X / N). Returns K x C_out float64 values on the grid."""
    k = w.shape[0]
    h = np.array(hessian, dtype=np.float64)
    if h.shape != (k, k):
        raise ValueError(f"hessian is {h.shape}, the kernel has {k} input rows")
    diag = np.diag(h).copy()
    dead = diag <= 0                 # inputs that are always 0: no error to spread
    h[dead, :] = 0.0
    h[:, dead] = 0.0
    h[dead, dead] = 1.0
    mean = float(np.mean(np.diag(h)))
    h[np.diag_indices(k)] += damping * mean
    order = np.argsort(-np.diag(h), kind="stable")
    h = h[np.ix_(order, order)]
    work = np.array(w, dtype=np.float64)[order]
    # upper Cholesky factor U of H^-1 (H^-1 = U^T U): row i holds the error feedback of
    # input i onto the inputs after it
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    out = np.empty_like(work)
    for i in range(k):
        q = grid.round_row(work[i], int(order[i]))
        out[i] = q
        err = (work[i] - q) / u[i, i]
        if i + 1 < k:
            work[i + 1:] -= np.outer(u[i, i + 1:], err)
    result = np.empty_like(out)
    result[order] = out
    return result


def _fake_quant(x: np.ndarray, fmt: FixedFormat | None) -> np.ndarray:
    """``x`` rounded (AP_RND) and clamped (AP_SAT) to ``fmt``, in float; None: unchanged."""
    if fmt is None:
        return x
    step = fmt.lsb
    q = np.clip(np.floor(x / step + 0.5), fmt.qmin, fmt.qmax) * step
    return q.astype(np.float32)


@dataclass
class LayerStats:
    """Moments of one conv's im2col input rows over the calibration frames: ``x`` as the
    hardware sees them (earlier kernels rounded, activations on their grids), ``f`` as the
    float network sees them."""

    hxx: np.ndarray    # E[x x^T]  (K x K), GPTQ's Hessian
    mean_x: np.ndarray
    mean_f: np.ndarray


def layer_stats(n: Node, hw_inputs: list[np.ndarray], float_inputs: list[np.ndarray]
                ) -> LayerStats:
    k = n.kernel * n.kernel * n.in_shape[2]
    hxx = np.zeros((k, k))
    sx, sf = np.zeros(k), np.zeros(k)
    rows = 0
    for x, f in zip(hw_inputs, float_inputs, strict=True):
        cx = im2col(np.asarray(x, np.float32), n.kernel, n.stride, n.pad)[0].astype(np.float64)
        cf = im2col(np.asarray(f, np.float32), n.kernel, n.stride, n.pad)[0].astype(np.float64)
        hxx += cx.T @ cx
        sx += cx.sum(axis=0)
        sf += cf.sum(axis=0)
        rows += cx.shape[0]
    rows = max(rows, 1)
    return LayerStats(hxx / rows, sx / rows, sf / rows)


CACHE_VERSION = b"gptq-1"


def _cache_key(nodes, weights, frames, grids, act_formats, correct_bias) -> str:
    """SHA-256 of everything ``gptq_network``'s result depends on."""
    from model.files import digest_network

    h = hashlib.sha256(CACHE_VERSION + repr((DAMPING, correct_bias)).encode())
    digest_network(h, nodes, weights, frames)
    for name in sorted(grids):
        h.update(name.encode() + grids[name].key)
    h.update(repr(sorted((k, v.ap()) for k, v in act_formats.items())).encode())
    return h.hexdigest()


def _on_grid(grids: dict[str, Grid]):
    """``load_layers``' check of a cached result: every kernel on its grid."""
    def valid(name: str, w: np.ndarray) -> bool:
        flat = w.reshape(-1, w.shape[-1]).astype(np.float64)
        return bool(np.array_equal(grids[name].round_kernel(flat), flat))
    return valid


def gptq_network(nodes: list[Node], weights: FloatWeights, frames: list[np.ndarray],
                 grids: dict[str, Grid], act_formats: dict[str, FixedFormat] | None = None,
                 correct_bias: bool = True, log=None,
                 cache: Path | None = None) -> FloatWeights:
    """Every conv kernel of ``weights`` (the float network) named in ``grids`` rounded onto
    its grid, in network order.

    Two forward passes run side by side on ``frames``: the float network, and the
    hardware's (kernels already rounded, biases corrected, each conv / bypass output
    rounded to ``act_formats``). Each float kernel is rounded by ``gptq_kernel`` with the
    Hessian of the inputs the hardware gives it. With ``correct_bias`` its bias then takes
    the mean difference of the float layer's output (float inputs) and the rounded layer's
    (hardware inputs), which also absorbs the mean shift of the layers before it (bias
    correction, Nagel et al. 2019). Kernels keep their dtype (float32); other biases are
    unchanged.

    With ``cache`` (a folder), the result is kept there under the SHA-256 of all its inputs
    and reused by the next run with the same inputs.

    Measured on v1.1 (243 evaluation photos, agreement / top-5 overlap with float): also
    fitting the target kernel to the hardware's inputs (least squares of the float
    output, as AdaQuant does) gave 94.7% / 93.9% against 96.3% / 94.7% for this.
    """
    if not frames:
        raise ValueError("GPTQ needs at least one calibration frame")
    t0 = time.perf_counter()
    act_formats = act_formats or {}
    path = None
    if cache is not None:
        key = _cache_key(nodes, weights, frames, grids, act_formats, correct_bias)
        path = cache / f"{key[:32]}.npz"
        hit = load_layers(path, weights, grids, _on_grid(grids))
        if hit is not None:
            if log is not None:
                log(f"weights: GPTQ rounding of {len(grids)} conv kernels reused from {path}")
            return hit
    readers: dict[str, int] = {}
    for n in nodes:
        for i in n.inputs:
            readers[i] = readers.get(i, 0) + 1
    out = dict(weights)
    first = [np.asarray(f, np.float32) for f in frames]
    f_acts: dict[str, list[np.ndarray]] = {"frame": first}
    h_acts: dict[str, list[np.ndarray]] = {"frame": first}
    for n in nodes:
        srcs = [i if i in f_acts else "frame" for i in n.inputs]
        f_ins = [f_acts[s] for s in srcs]
        h_ins = [h_acts[s] for s in srcs]
        if n.kind == "conv" and n.name in grids:
            w, b = weights[n.name]
            wmat = w.reshape(-1, w.shape[-1]).astype(np.float64)
            st = layer_stats(n, h_ins[0], f_ins[0])
            q = gptq_kernel(wmat, st.hxx, grids[n.name])
            b2 = b
            if correct_bias:
                b2 = (b + st.mean_f @ wmat - st.mean_x @ q).astype(b.dtype)
            out[n.name] = (q.reshape(w.shape).astype(w.dtype), b2)
        fmt = act_formats.get(n.name) if n.kind in ("conv", "add") else None
        count = len(frames)
        f_acts[n.name] = [float_node(n, [a[j] for a in f_ins], weights) for j in range(count)]
        h_acts[n.name] = [_fake_quant(float_node(n, [a[j] for a in h_ins], out), fmt)
                          for j in range(count)]
        for s in set(srcs):  # drop what no later block reads
            readers[s] = readers.get(s, 1) - srcs.count(s)
            if readers[s] <= 0 and s != "frame":
                del f_acts[s], h_acts[s]
    if path is not None:
        save_layers(path, out, grids)
    if log is not None:
        log(f"weights: GPTQ rounding of {len(grids)} conv kernels on {len(frames)} "
            f"calibration frames ({time.perf_counter() - t0:.1f} s)")
    return out


def output_error(w: np.ndarray, q: np.ndarray, hessian: np.ndarray) -> float:
    """Mean squared output error per output channel, trace((W-Q)^T H (W-Q)) / C_out."""
    d = np.asarray(w, np.float64) - np.asarray(q, np.float64)
    return float(np.einsum("ko,kl,lo->", d, hessian, d) / max(d.shape[1], 1))


def relative_error(w: np.ndarray, q: np.ndarray, hessian: np.ndarray) -> float:
    """``output_error`` relative to the output power of ``w`` (0 = exact)."""
    ref = output_error(w, np.zeros_like(w), hessian)
    return output_error(w, q, hessian) / ref if ref > 0 else math.inf
