"""Deep Compression (Han et al.) of the float network: pruning, weight sharing, Huffman coding.

Three numpy stages on the conv kernels, each measured in exact bits:

1. ``prune``: magnitude pruning to an exact target sparsity, one global threshold or one
   per layer. Biases are never pruned. There is no ImageNet here to retrain on, so the
   numbers are for pruning *without* retraining (the paper retrains 3 epochs); ``prune``
   takes existing masks and ``apply_masks`` re-zeros pruned weights, so a later training
   loop can keep them at zero.
2. ``share_weights``: per-layer 1-D k-means over the non-zero weights (linear
   initialisation between min and max, as in Han et al.); pruned positions are not
   clustered and stay zero.
3. The storage account: sparse kernels as Deep Compression stores them, in Caffe's
   (out, in, kh, kw) order, one entry per non-zero with a value and a 4-bit relative index
   (the number of zeros skipped); a run of more than 15 zeros inserts a filler entry of
   value zero. Huffman codes (built from the real symbol counts) then shrink the weight
   indices and the relative indices.

Storage conventions (every row of the account): biases are 32-bit floats and never
compressed; a shared layer's codebook is 2**bits entries of 32 bits whose entry 0 is the
exact zero that filler entries point at (as in EIE), so k-means places 2**bits - 1 centres
on the non-zero weights; a Huffman-coded layer also stores its two canonical code tables
as one 8-bit code length per alphabet symbol.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from model.errors import InputError
from model.graph import Node

FloatWeights = dict[str, tuple[np.ndarray, np.ndarray]]
Masks = dict[str, np.ndarray]

GAP_BITS = 4           # relative-index width for conv layers in Deep Compression
BIAS_BITS = 32
CODEBOOK_BITS = 32
HUFFMAN_TABLE_BITS = 8  # one code length per symbol of a canonical Huffman code


# -- 1. pruning ------------------------------------------------------------------------

def _keep_mask(mags: np.ndarray, n_prune: int) -> np.ndarray:
    """True except at the ``n_prune`` smallest entries (ties: the earlier one goes)."""
    keep = np.ones(mags.size, dtype=bool)
    if n_prune > 0:
        order = np.argsort(mags, kind="stable")
        keep[order[:n_prune]] = False
    return keep


def prune(weights: FloatWeights, sparsity: float, per_layer: bool = False,
          masks: Masks | None = None) -> tuple[FloatWeights, Masks]:
    """Zero the smallest-magnitude kernel weights; return (pruned weights, keep masks).

    Exactly ``round(sparsity * n)`` kernel weights end up zero, ``n`` counted over all
    layers (one global threshold) or per layer (``per_layer``). Weights already pruned in
    ``masks`` stay pruned and count towards the target (if they exceed it, none is added).
    Masks are boolean, True = kept, shaped like the kernels; biases are returned unchanged.
    """
    if not 0.0 <= sparsity < 1.0:
        raise InputError(f"sparsity must be in [0, 1), got {sparsity}")
    names = list(weights)
    mags = {}
    for k in names:
        m = np.abs(weights[k][0]).astype(np.float64).ravel()
        if masks is not None and k in masks:
            m[~np.asarray(masks[k], dtype=bool).ravel()] = -1.0  # pruned before: first out
        mags[k] = m
    new_masks: Masks = {}
    if per_layer:
        for k in names:
            keep = _keep_mask(mags[k], round(sparsity * mags[k].size))
            keep &= mags[k] >= 0
            new_masks[k] = keep.reshape(weights[k][0].shape)
    else:
        flat = np.concatenate([mags[k] for k in names])
        keep = _keep_mask(flat, round(sparsity * flat.size)) & (flat >= 0)
        start = 0
        for k in names:
            n = mags[k].size
            new_masks[k] = keep[start:start + n].reshape(weights[k][0].shape)
            start += n
    return apply_masks(weights, new_masks), new_masks


def check_no_layer_emptied(masks: Masks, sparsity: float, per_layer: bool) -> None:
    """Refuse masks that prune every weight of a layer: that network computes nothing.

    Global thresholds do this to a layer whose weights are far smaller than the others'
    (e.g. conv1 of a network trained on 1/256-scaled pixels, with the scale folded in).
    """
    emptied = [k for k, m in masks.items() if m.size and not m.any()]
    if emptied:
        how = "per-layer" if per_layer else "global"
        hint = "" if per_layer else (" (their weights are far smaller than the others', "
                                     "e.g. an input scale folded into conv1); prune per "
                                     "layer instead")
        raise InputError(f"{how} pruning to {sparsity:.0%} removes every weight of "
                         f"{', '.join(emptied)}{hint}")


def apply_masks(weights: FloatWeights, masks: Masks) -> FloatWeights:
    """Kernels with the pruned positions set to zero (dtype kept); biases unchanged."""
    return {k: ((w * masks[k]).astype(w.dtype) if k in masks else w, b)
            for k, (w, b) in weights.items()}


def sparsity_of(masks: Masks) -> float:
    total = sum(m.size for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / total


# -- 2. weight sharing -----------------------------------------------------------------

@dataclass
class SharedLayer:
    """``codebook[idx] * mask`` is the shared kernel; ``zero_code`` indexes an exact 0."""

    codebook: np.ndarray   # float32, 2**bits entries
    idx: np.ndarray        # uint8 / uint16, the kernel's shape
    bits: int
    zero_code: int | None = None

    def reconstruct(self, mask: np.ndarray) -> np.ndarray:
        return (self.codebook[self.idx] * mask).astype(np.float32)


def share_weights(w: np.ndarray, bits: int, mask: np.ndarray | None = None,
                  reserve_zero: bool = False, random_state: int = 0) -> SharedLayer:
    """Cluster the non-zero (mask True) weights of one kernel into shared values.

    k-means in float64 with ``2**bits`` centres (``2**bits - 1`` with ``reserve_zero``,
    which makes codebook entry 0 an exact zero), initialised linearly between the smallest
    and largest kept weight, ``n_init=1``, fixed ``random_state``. Pruned positions are not
    clustered: their index is 0 and ``reconstruct`` keeps them zero. With no more distinct
    kept values than centres, the codebook holds those values exactly.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    if not 1 <= bits <= 16:
        raise InputError(f"bits must be in 1..16, got {bits}")
    mask = np.ones(w.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    size = 2**bits
    first = 1 if reserve_zero else 0
    k = size - first
    codebook = np.zeros(size, dtype=np.float64)
    idx = np.zeros(w.shape, dtype=np.uint8 if size <= 256 else np.uint16)
    x = w[mask].astype(np.float64)
    if x.size:
        uniq = np.unique(x)
        if uniq.size <= k:
            codebook[first:first + uniq.size] = uniq
            labels = np.searchsorted(uniq, x)
        else:
            init = np.linspace(x.min(), x.max(), k).reshape(-1, 1)
            # One thread: 1-D k-means is cheap, and OpenMP workers spin badly on a busy CPU.
            with threadpool_limits(1):
                km = KMeans(k, init=init, n_init=1, random_state=random_state).fit(x[:, None])
            codebook[first:] = km.cluster_centers_[:, 0]
            labels = km.labels_
        idx[mask] = labels + first
    return SharedLayer(codebook.astype(np.float32), idx, bits, 0 if reserve_zero else None)


def optimal_integer_clusters(values: np.ndarray, counts: np.ndarray,
                             k: int) -> tuple[np.ndarray, np.ndarray]:
    """Optimal 1-D clustering of sorted distinct integers into at most ``k`` integer centres.

    Minimises sum(count * (value - centre)**2) exactly, by dynamic programming over
    contiguous runs of the sorted values (an optimal 1-D clustering is contiguous); each
    run's centre is its count-weighted mean rounded to the nearest integer. O(k n^2) for
    n distinct values; n <= 256 for 8-bit weights. Returns (centres, label per value).
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    n = v.size
    if n <= k:
        return np.asarray(values, dtype=np.int64), np.arange(n)
    s0 = np.concatenate([[0.0], np.cumsum(c)])
    s1 = np.concatenate([[0.0], np.cumsum(c * v)])
    s2 = np.concatenate([[0.0], np.cumsum(c * v * v)])
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")   # run values[i..j]
    w0 = s0[j + 1] - s0[i]
    w1 = s1[j + 1] - s1[i]
    w2 = s2[j + 1] - s2[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.rint(np.where(w0 > 0, w1 / np.where(w0 > 0, w0, 1), 0.0))
    cost = np.where(i <= j, w2 - 2 * centre * w1 + centre * centre * w0, np.inf)
    # best[m][j]: the cheapest m+1 runs covering values[0..j]; start[m][j]: the last run's
    # first value
    best = np.empty((k, n))
    start = np.zeros((k, n), dtype=np.int64)
    best[0] = cost[0]
    for m in range(1, k):
        # previous runs end at i-1, the last run is values[i..j] (i >= 1)
        cand = best[m - 1][:-1, None] + cost[1:, :]        # (i-1 = 0..n-2, j)
        arg = np.argmin(cand, axis=0)
        best[m] = np.minimum(best[m - 1], cand[arg, np.arange(n)])
        start[m] = np.where(cand[arg, np.arange(n)] < best[m - 1], arg + 1, -1)
    centres, labels = [], np.empty(n, dtype=np.int64)
    m, j = k - 1, n - 1
    while j >= 0:
        while m > 0 and start[m][j] < 0:   # fewer runs were as good
            m -= 1
        first = int(start[m][j]) if m > 0 else 0
        centres.append(int(centre[first, j]))
        labels[first:j + 1] = len(centres) - 1
        j, m = first - 1, m - 1
    order = np.arange(len(centres))[::-1]
    labels = order[labels]
    return np.asarray(centres[::-1], dtype=np.int64), labels


def share_on_grid(w: np.ndarray, bits: int, mask: np.ndarray | None = None,
                  weight_bits: int = 8, importance: np.ndarray | None = None) -> SharedLayer:
    """Weight sharing for fixed-point hardware: clustering of the layer's integer weights.

    The kernel is first rounded to its ``weight_bits`` grid (``model.quantize
    .weight_format``, as the quantization plan will round it), then the distinct non-zero
    kept integers, weighted by how often they occur, are clustered optimally
    (``optimal_integer_clusters``) into ``2**bits - 1`` integer centres; entry 0 is the
    exact zero that pruned weights point at. Every codebook entry is on the grid, so the
    quantization plan reproduces the shared kernel exactly. (k-means from a linear
    initialisation, as for the float size account, leaves centres in the sparse tails and
    too few near zero, where most weights are; on integers that costs whole LSBs for
    thousands of weights, and float centres rounded afterwards move whole clusters by the
    same offset.)

    ``importance`` (broadcastable to ``w``, non-negative; e.g. ``input_hessian_diagonals``)
    weights each kernel weight in the clustering objective instead of counting it once:
    a distinct integer then weighs the sum of its weights' importances (Hessian-weighted
    k-means, Choi et al. 2017), so the codebook spends its entries where the layer's
    output is sensitive. The codebook stays on the grid either way.
    """
    from model.quantize import weight_format

    if not 1 <= bits <= weight_bits:
        raise InputError(f"bits must be in 1..{weight_bits}, got {bits}")
    mask = np.ones(w.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    fmt = weight_format(w[mask] if mask.any() else w, weight_bits)
    q = fmt.quantize(w)
    size = 2**bits
    codebook = np.zeros(size, dtype=np.int64)
    idx = np.zeros(w.shape, dtype=np.uint8 if size <= 256 else np.uint16)
    keep = mask & (q != 0)
    values, inverse, counts = np.unique(q[keep], return_inverse=True, return_counts=True)
    if values.size and importance is not None:
        imp = np.broadcast_to(np.asarray(importance, dtype=np.float64), w.shape)[keep]
        if np.any(imp < 0) or not np.all(np.isfinite(imp)):
            raise InputError("weight importances must be finite and non-negative")
        # a floor keeps every weight in the objective (inputs that were always 0 on the
        # calibration frames still get a centre near them)
        floor = 1e-6 * float(imp.mean()) if imp.mean() > 0 else 1.0
        counts = np.bincount(inverse.ravel(), weights=np.maximum(imp, floor),
                             minlength=values.size)
    if values.size:
        centres, labels = optimal_integer_clusters(values, counts, size - 1)
        codebook[1:1 + centres.size] = centres
        idx[keep] = labels[np.searchsorted(values, q[keep])] + 1
    return SharedLayer((codebook * fmt.lsb).astype(np.float32), idx, bits, 0)


@dataclass(frozen=True)
class SharingError:
    """What sharing costs one kernel, judged on its weights alone."""

    name: str
    weights: int
    distinct: int                 # distinct integers on its 8-bit grid, zero included
    ratio: dict[int, float]       # index bits -> squared error of sharing / of 8-bit rounding


def sharing_errors(weights: FloatWeights, bits: tuple[int, ...] = (4, 5, 6, 7),
                   weight_bits: int = 8) -> list[SharingError]:
    """Per kernel, the squared error of ``share_on_grid`` at each index width over the
    squared error of plain ``weight_bits`` rounding (1.0: sharing loses nothing, as when
    the kernel has at most ``2**b - 1`` distinct non-zero integers). A first guide to which
    layers can take fewer index bits (``compression.layer_bits``); what a layer's error
    does to the network's output is another matter, measured by ``sqz eval``."""
    from model.quantize import weight_format

    out = []
    for name, (w, _b) in weights.items():
        fmt = weight_format(w, weight_bits)
        q = fmt.quantize(w)
        e8 = float(np.sum((fmt.to_real(q) - w) ** 2))
        ratio = {}
        for b in bits:
            sl = share_on_grid(w, b, weight_bits=weight_bits)
            eb = float(np.sum((sl.codebook[sl.idx].astype(np.float64) - w) ** 2))
            ratio[b] = eb / e8 if e8 > 0 else (1.0 if eb == 0 else float("inf"))
        out.append(SharingError(name, int(w.size), int(np.unique(q).size), ratio))
    return out


def format_sharing_errors(rows: list[SharingError]) -> str:
    bits = sorted(rows[0].ratio) if rows else []
    lines = ["== weight sharing error per layer, on the unpruned weights alone (squared error "
             "of b-bit codebook indices / of 8-bit rounding; 1.00 = nothing lost)",
             f"  {'layer':<22} {'weights':>9} {'distinct':>8} "
             + " ".join(f"{f'{b}-bit':>7}" for b in bits)]
    lines += [f"  {r.name:<22} {r.weights:>9,d} {r.distinct:>8d} "
              + " ".join(f"{r.ratio[b]:>7.2f}" for b in bits) for r in rows]
    return "\n".join(lines)


def share_all(weights: FloatWeights, masks: Masks, bits: int,
              reserve_zero: bool = True) -> dict[str, SharedLayer]:
    return {k: share_weights(w, bits, masks[k], reserve_zero) for k, (w, _) in weights.items()}


def shared_weights(weights: FloatWeights, masks: Masks,
                   shared: dict[str, SharedLayer]) -> FloatWeights:
    """``weights`` with every layer in ``shared`` rebuilt from its codebook; the others
    unchanged."""
    return {k: ((shared[k].reconstruct(masks[k]), b) if k in shared else (w, b))
            for k, (w, b) in weights.items()}


def correct_biases(nodes: list[Node], original: FloatWeights, compressed: FloatWeights,
                   frames: list[np.ndarray]) -> FloatWeights:
    """Bias correction (Nagel et al. 2019): fold the expected shift that compression puts
    on every output channel back into its bias.

    With E[x_c] the mean input of channel c over ``frames`` (the original network's
    activations), output channel o moves by sum_{kh,kw,c} (w' - w)[kh,kw,c,o] E[x_c]; the
    bias takes the opposite. Shared weights move whole clusters by the same amount and the
    inputs are non-negative, so these shifts add up instead of averaging out.
    """
    from model.quantize import float_forward

    acts = [float_forward(nodes, original, f) for f in frames]
    out = dict(compressed)
    for n in nodes:
        if n.kind != "conv":
            continue
        src = n.inputs[0] if n.inputs[0] in acts[0] else "frame"
        mean_x = np.mean([a[src].reshape(-1, a[src].shape[-1]).mean(axis=0) for a in acts],
                         axis=0)
        w, b = original[n.name]
        w2, b2 = compressed[n.name]
        shift = np.einsum("hwco,c->o", w2.astype(np.float64) - w, mean_x)
        out[n.name] = (w2, (b2 - shift).astype(b2.dtype))
    return out


def input_hessian_diagonals(nodes: list[Node], weights: FloatWeights,
                            frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The diagonal of every conv's input Hessian on ``frames``: E[x_k**2] over the im2col
    rows of the float network's input to that conv (zero padding included), per kernel
    row k, shaped (kh, kw, cin, 1) to broadcast over the kernel.

    For a conv y = X W the output error of a weight change d is d^T H d with H = X^T X /
    N; its diagonal is what Hessian-weighted clustering (Choi, El-Khamy, Lee 2017,
    "Towards the limit of network quantization") weighs each weight's error by.
    """
    from model.golden import im2col
    from model.quantize import float_forward

    convs = [n for n in nodes if n.kind == "conv" and n.name in weights]
    sums = {n.name: np.zeros(n.kernel * n.kernel * n.in_shape[2]) for n in convs}
    rows = dict.fromkeys(sums, 0)
    for f in frames:
        acts = float_forward(nodes, weights, f)
        for n in convs:
            x = acts[n.inputs[0] if n.inputs[0] in acts else "frame"]
            cols = im2col(np.asarray(x, np.float32), n.kernel, n.stride, n.pad)[0]
            sums[n.name] += np.einsum("rk,rk->k", cols, cols, dtype=np.float64)
            rows[n.name] += cols.shape[0]
    return {n.name: (sums[n.name] / max(rows[n.name], 1)).reshape(
                n.kernel, n.kernel, n.in_shape[2], 1) for n in convs}


def compress_weights(weights: FloatWeights, sparsity: float = 0.0, per_layer: bool = False,
                     share_bits: int | dict[str, int] = 0, weight_bits: int = 8,
                     importance: dict[str, np.ndarray] | None = None
                     ) -> tuple[FloatWeights, Masks]:
    """The float weights a ``compression:`` spec section asks for: pruned, then shared on
    the ``weight_bits`` grid (``share_on_grid``), ready for the 8-bit hardware.
    ``share_bits``: index bits of every layer, or per layer (a layer it does not name, or
    names with 0, keeps its weights unshared).

    Entry 0 of every codebook is the exact zero, so pruned weights keep index 0; without
    pruning every mask is all True. ``importance`` (layer -> array broadcastable to its
    kernel, e.g. ``input_hessian_diagonals``) weights the clustering; layers it does not
    name count every weight once. Returns (weights, keep masks).
    """
    if sparsity > 0:
        weights, masks = prune(weights, sparsity, per_layer)
        check_no_layer_emptied(masks, sparsity, per_layer)
    else:
        masks = {k: np.ones(w.shape, dtype=bool) for k, (w, _) in weights.items()}
    bits = (share_bits if isinstance(share_bits, dict)
            else dict.fromkeys(weights, share_bits))
    imp = importance or {}
    shared = {k: share_on_grid(w, bits[k], masks[k], weight_bits, imp.get(k))
              for k, (w, _) in weights.items() if bits.get(k, 0)}
    return shared_weights(weights, masks, shared), masks


# -- 3. relative indices, Huffman, the size account --------------------------------------

def caffe_order(kernel: np.ndarray) -> np.ndarray:
    """An (kh, kw, in, out) kernel flattened in Caffe's blob order (out, in, kh, kw)."""
    return np.transpose(kernel, (3, 2, 0, 1)).ravel()


@dataclass
class RelIndex:
    """The stored entries of one sparse kernel, in flattened order."""

    gaps: np.ndarray       # zeros skipped before each entry, 0..2**gap_bits - 1
    filler: np.ndarray     # bool: entry is a filler zero, not a kept weight
    positions: np.ndarray  # flat position of each kept weight (fillers excluded)

    @property
    def entries(self) -> int:
        return int(self.gaps.size)

    @property
    def fillers(self) -> int:
        return int(self.filler.sum())


def relative_index(flat_mask: np.ndarray, gap_bits: int = GAP_BITS) -> RelIndex:
    """Deep Compression's relative indices of a flattened keep-mask.

    Each kept position stores the number of zeros since the previous entry; a run of
    ``z`` zeros longer than ``2**gap_bits - 1`` first inserts ``z // 2**gap_bits`` filler
    entries (each after ``2**gap_bits - 1`` skipped zeros). Trailing zeros cost nothing.
    """
    step = 2**gap_bits
    pos = np.flatnonzero(np.asarray(flat_mask, dtype=bool).ravel())
    runs = np.diff(np.concatenate([[-1], pos])) - 1
    n_fill = runs // step
    # per kept weight: n_fill fillers of gap step-1, then the weight with gap runs % step
    count = n_fill + 1
    gaps = np.full(int(count.sum()), step - 1, dtype=np.int64)
    filler = np.ones(gaps.size, dtype=bool)
    last = np.cumsum(count) - 1
    gaps[last] = runs % step
    filler[last] = False
    return RelIndex(gaps, filler, pos)


def huffman_code_lengths(counts) -> np.ndarray:
    """Optimal (Huffman) code length of each symbol, from its count; 0 for absent ones.

    Built with a heap of (count, tie-break, symbols) merges. A lone symbol gets length 1.
    For two or more used symbols the lengths satisfy Kraft's equality, sum 2**-l = 1.
    """
    counts = np.asarray(counts, dtype=np.int64).ravel()
    lengths = np.zeros(counts.size, dtype=np.int64)
    used = np.flatnonzero(counts > 0)
    if used.size == 1:
        lengths[used] = 1
    if used.size <= 1:
        return lengths
    heap = [(int(counts[s]), i, [int(s)]) for i, s in enumerate(used)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def huffman_bits(symbols: np.ndarray, alphabet: int) -> int:
    """Bits of ``symbols`` (ints in 0..alphabet-1) under their own Huffman code."""
    counts = np.bincount(np.asarray(symbols, dtype=np.int64).ravel(), minlength=alphabet)
    return int((counts * huffman_code_lengths(counts)).sum())


@dataclass
class LayerAccount:
    name: str
    weights: int
    biases: int
    kept: int
    fillers: int
    bits: dict[str, int]   # scheme -> bits of this layer


def layer_account(name: str, w: np.ndarray, b: np.ndarray, mask: np.ndarray | None,
                  shared: dict[int, SharedLayer] | None = None,
                  gap_bits: int = GAP_BITS) -> LayerAccount:
    """Exact bits of one conv layer under every storage scheme (see the module doc).

    Schemes: ``dense32``, ``dense8``; with a mask ``sparse32`` / ``sparse8`` (value +
    relative index per entry); per ``bits`` in ``shared``: ``shared{bits}`` (index +
    relative index per entry + codebook) and ``huffman{bits}`` (Huffman-coded indices and
    relative indices + both code tables + codebook).
    """
    bias = b.size * BIAS_BITS
    acc = LayerAccount(name, w.size, b.size, w.size, 0,
                       {"dense32": w.size * 32 + bias, "dense8": w.size * 8 + bias})
    if mask is None:
        return acc
    ri = relative_index(caffe_order(mask), gap_bits)
    acc.kept, acc.fillers = int(ri.positions.size), ri.fillers
    acc.bits["sparse32"] = ri.entries * (32 + gap_bits) + bias
    acc.bits["sparse8"] = ri.entries * (8 + gap_bits) + bias
    for bits, sh in sorted((shared or {}).items()):
        if ri.fillers and sh.zero_code is None:
            raise ValueError(f"{name}: filler entries need a zero codebook entry; share "
                             f"with reserve_zero=True")
        codes = np.full(ri.entries, sh.zero_code or 0, dtype=np.int64)
        codes[~ri.filler] = caffe_order(sh.idx)[ri.positions]
        size = 2**bits
        codebook = sh.codebook.size * CODEBOOK_BITS
        acc.bits[f"shared{bits}"] = ri.entries * (bits + gap_bits) + codebook + bias
        acc.bits[f"huffman{bits}"] = (huffman_bits(codes, size)
                                      + huffman_bits(ri.gaps, 2**gap_bits)
                                      + (size + 2**gap_bits) * HUFFMAN_TABLE_BITS
                                      + codebook + bias)
    return acc


def size_account(weights: FloatWeights, masks: Masks | None = None,
                 shared: dict[int, dict[str, SharedLayer]] | None = None,
                 gap_bits: int = GAP_BITS) -> list[LayerAccount]:
    """``layer_account`` for every layer; ``shared`` maps bits -> layer -> SharedLayer."""
    shared = shared or {}
    return [layer_account(k, w, b, None if masks is None else masks[k],
                          {bits: s[k] for bits, s in shared.items()}, gap_bits)
            for k, (w, b) in weights.items()]


def total_bits(account: list[LayerAccount], scheme: str) -> int:
    return sum(a.bits[scheme] for a in account)


def mbytes(bits: int) -> float:
    """MB as the paper counts them: 10**6 bytes."""
    return bits / 8 / 1e6


# -- accuracy proxy: agreement with the float model ------------------------------------

@dataclass
class Agreement:
    frames: int
    top1: int       # frames whose top-1 class equals the float model's
    top5_sets: int  # frames whose top-5 set equals the float model's
    top5_overlap: int  # sum over frames of |top-5 & float top-5|

    def format(self) -> str:
        n = self.frames
        return (f"top-1 {self.top1}/{n}, top-5 set {self.top5_sets}/{n}, "
                f"top-5 overlap {self.top5_overlap}/{5 * n}")


def top5(logits: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(logits).ravel(), kind="stable")[:5]


def agreement(reference: list[np.ndarray], logits: list[np.ndarray]) -> Agreement:
    a = Agreement(len(reference), 0, 0, 0)
    for ref, got in zip(reference, logits, strict=True):
        r, g = top5(ref), top5(got)
        a.top1 += int(r[0] == g[0])
        a.top5_sets += int(set(r) == set(g))
        a.top5_overlap += len(set(r) & set(g))
    return a


def linear8(weights: FloatWeights) -> FloatWeights:
    """Kernels on the project's 8-bit ``ap_fixed<8,I>`` grid (model.quantize)."""
    from model.quantize import weight_format

    out = {}
    for k, (w, b) in weights.items():
        fmt = weight_format(w, 8)
        out[k] = (fmt.to_real(fmt.quantize(w)).astype(np.float32), b)
    return out


def scheme_label(scheme: str) -> str:
    labels = {"dense32": "32-bit dense", "dense8": "8-bit dense (linear)",
              "sparse32": "pruned, 32-bit values", "sparse8": "pruned, 8-bit linear values"}
    if scheme in labels:
        return labels[scheme]
    if scheme.startswith("shared"):
        return f"pruned + {scheme[6:]}-bit shared"
    return f"pruned + {scheme[7:]}-bit shared + Huffman"


def paper_figure(scheme: str) -> str:
    """The SqueezeNet paper's figures, beside the row PAPER.md attributes them to."""
    return {"dense32": "4.8", "dense8": "0.66", "huffman8": "0.47"}.get(scheme, "")


# -- the whole pipeline and its report ---------------------------------------------------

@dataclass
class CompressionReport:
    name: str
    sparsity: float          # achieved, over the kernel weights
    target: float
    per_layer: bool
    bits: tuple[int, ...]
    account: list[LayerAccount]
    agreements: dict[str, Agreement]
    seconds: dict[str, float]

    @property
    def dense_bits(self) -> int:
        return total_bits(self.account, "dense32")

    def final_bits(self) -> int:
        return total_bits(self.account, f"huffman{self.bits[0]}")

    def recipe(self) -> str:
        """What ``final_bits`` measures, in one parenthesis, with the other index widths."""
        how = "one threshold per layer" if self.per_layer else "one global threshold"
        others = ", ".join(f"{b}-bit indices {mbytes(total_bits(self.account, f'huffman{b}')):.2f}"
                           f" MB" for b in self.bits[1:])
        return (f"[recipe: {self.sparsity:.0%} pruned by magnitude, {how}, no retraining; "
                f"{self.bits[0]}-bit k-means indices and {GAP_BITS}-bit relative indices, "
                f"both Huffman-coded; 32-bit codebooks and biases"
                + (f"; with {others}" if others else "") + "]")

    def schemes(self) -> list[str]:
        return (["dense32", "dense8", "sparse32", "sparse8"]
                + [f"shared{b}" for b in self.bits] + [f"huffman{b}" for b in self.bits])

    def format(self) -> str:
        b0 = self.bits[0]

        def mb(scheme: str) -> str:
            bits = [a.bits.get(scheme) for a in self.account]
            return "n/a" if None in bits else f"{mbytes(sum(bits)):.2f}"

        n_w = sum(a.weights for a in self.account)
        n_b = sum(a.biases for a in self.account)
        how = "one threshold per layer" if self.per_layer else "one global threshold"
        lines = [f"== Deep Compression of {self.name}: {n_w:,} kernel weights + {n_b:,} biases"]
        lines.append(f"pruning: magnitude, {how}, {self.sparsity:.2%} of the kernel weights "
                     f"zero (target {self.target:.0%}; biases untouched). WITHOUT retraining: "
                     f"there is no ImageNet here (the paper retrains 3 epochs after pruning).")
        lines.append("sharing: per-layer k-means (float64, linear init, n_init=1) over the "
                     "non-zero weights; pruned weights stay zero.")
        lines.append("storage: biases 32-bit float in every row; sparse rows store one entry "
                     "per kept weight in Caffe (out,in,kh,kw) order with a 4-bit relative "
                     "index, plus a filler zero per 16 skipped zeros; codebook 2**bits x 32 "
                     "bit, entry 0 = 0.0 for fillers (2**bits - 1 k-means centres); Huffman "
                     "rows add 8 bits per symbol of each code table. MB = 10**6 bytes.")
        lines.append("")
        lines.append(f"{'layer':<20}{'weights':>9}{'kept%':>7}{'fillers':>8}{'32-bit':>10}"
                     f"{'pruned32':>10}{f'shared{b0}':>10}{'+Huffman':>10}   (bytes)")
        for a in self.account:
            lines.append(f"{a.name:<20}{a.weights:>9}{a.kept / a.weights:>7.1%}{a.fillers:>8}"
                         f"{a.bits['dense32'] // 8:>10}{a.bits['sparse32'] // 8:>10}"
                         f"{a.bits[f'shared{b0}'] // 8:>10}{a.bits[f'huffman{b0}'] // 8:>10}")
        lines.append("")
        lines.append(f"{'storage':<36}{'bytes':>11}{'MB':>8}{'x smaller':>11}"
                     f"{'paper (PAPER.md)':>18}")
        for s in self.schemes():
            bits = total_bits(self.account, s)
            paper = paper_figure(s)
            lines.append(f"{scheme_label(s):<36}{bits / 8:>11,.0f}{mbytes(bits):>8.3f}"
                         f"{self.dense_bits / bits:>11.1f}{(paper + ' MB') if paper else '':>18}")
        lines.append("paper figures as PAPER.md attributes them: 4.8 MB 32-bit; 0.66 MB 8-bit "
                     "sharing alone; 0.47 MB pruning + 8-bit sharing (6-bit smaller still).")
        lines.append(f"note: the {n_w + n_b:,} parameters at 8 bits without pruning are "
                     f"{mbytes(8 * (n_w + n_b)):.2f} MB, so 0.66 MB cannot be sharing alone; "
                     f"it lies near pruned + 8-bit ({mb('huffman8')}-{mb('shared8')} MB here) "
                     f"and 0.47 MB near pruned + 6-bit ({mb('huffman6')}-{mb('shared6')} MB).")
        lines.append("")
        frames = next(iter(self.agreements.values())).frames
        lines.append(f"agreement with the unmodified float model on {frames} bundled photos "
                     f"(no ImageNet labels offline; no retraining):")
        for label, ag in self.agreements.items():
            lines.append(f"  {label:<44}{ag.format()}")
        lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))
        return "\n".join(lines)


def compress_network(name: str, nodes: list[Node], weights: FloatWeights, frames: list[np.ndarray],
                     sparsity: float = 0.63, per_layer: bool = False,
                     bits: tuple[int, ...] = (8, 6, 4),
                     sweep: tuple[float, ...] = (0.2, 0.4, 0.5)) -> CompressionReport:
    """Prune, share at each of ``bits`` (the first is the headline), account and compare.

    Agreement with the float model is measured on ``frames`` for 8-bit linear weights,
    pruning alone (also at each ``sweep`` sparsity, and with the other threshold mode)
    and pruning + sharing at each of ``bits``.
    """
    import time

    from model.quantize import float_forward

    out = nodes[-1].name

    def logits(ws: FloatWeights) -> list[np.ndarray]:
        return [float_forward(nodes, ws, f)[out] for f in frames]

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    ref = logits(weights)
    pruned, masks = prune(weights, sparsity, per_layer)
    seconds["prune"] = time.perf_counter() - t0
    shared: dict[int, dict[str, SharedLayer]] = {}
    for b in bits:
        t = time.perf_counter()
        shared[b] = share_all(weights, masks, b)
        seconds[f"k-means {b}-bit"] = time.perf_counter() - t
    t = time.perf_counter()
    account = size_account(weights, masks, shared)
    seconds["account"] = time.perf_counter() - t
    t = time.perf_counter()
    mode = "per-layer" if per_layer else "global"
    other, _ = prune(weights, sparsity, not per_layer)
    ags = {"8-bit dense (linear, no pruning)": agreement(ref, logits(linear8(weights)))}
    for level in sweep:
        swept = prune(weights, level, per_layer)[0]
        ags[f"pruned {level:.0%} ({mode})"] = agreement(ref, logits(swept))
    ags[f"pruned {sparsity:.0%} ({mode})"] = agreement(ref, logits(pruned))
    other_mode = "global" if per_layer else "per-layer"
    ags[f"(pruned {sparsity:.0%} {other_mode}, for comparison)"] = agreement(ref, logits(other))
    for b in bits:
        ags[f"pruned + {b}-bit shared"] = agreement(
            ref, logits(shared_weights(weights, masks, shared[b])))
    seconds["agreement"] = time.perf_counter() - t
    return CompressionReport(name, sparsity_of(masks), sparsity, per_layer, tuple(bits),
                             account, ags, seconds)
