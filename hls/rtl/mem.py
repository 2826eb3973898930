"""Memory images for the RTL library's ROMs: ``$readmemh`` text files, one word per line.

The layouts are the ones ``firmware/rtl/README.md`` defines for ``sqz_mvu``:

- weights: SF = N_IN/SIMD synapse folds, NF = N_OUT/PE neuron folds; word ``nf*SF + sf``
  holds PE*SIMD two's-complement lanes, lane (p, s) at bits ``[(p*SIMD + s)*bits +: bits]``
  = ``w[in = sf*SIMD + s][out = nf*PE + p]``;
- biases: NF words of PE two's-complement lanes, lane p of word nf = ``b[nf*PE + p]``;
- shared weights (``SHARE_BITS`` > 0): the weight layout with unsigned ``SHARE_BITS``-bit
  codebook indices as lanes, and a codebook file of ``2**SHARE_BITS`` words, one
  two's-complement weight each (word i = entry i).

Words are written as fixed-width hex (leading zeros kept), no comments or address marks,
which every ``$readmemh`` reader accepts (Verilator, Icarus, Yosys, Vivado).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _lanes_checked(values: np.ndarray, bits: int, what: str) -> np.ndarray:
    """Signed integers that fit ``bits`` two's-complement bits, as int64; raises otherwise."""
    if bits < 2:
        raise ValueError(f"{what}: a signed lane needs at least 2 bits, got {bits}")
    v = np.asarray(values)
    fractional = not np.issubdtype(v.dtype, np.integer) and not np.array_equal(v, np.rint(v))
    if fractional:
        raise ValueError(f"{what}: values must be integers")
    v = v.astype(np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    bad = np.flatnonzero((v < lo) | (v > hi))
    if bad.size:
        raise ValueError(f"{what}: {bad.size} values outside the signed {bits}-bit range "
                         f"{lo}..{hi} (first: {v.reshape(-1)[bad[0]]})")
    return v


def _pack_row(lanes: np.ndarray, bits: int) -> int:
    """Lane i in bits ``[i*bits +: bits]``, two's complement."""
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(lanes.tolist()):
        word |= (int(v) & mask) << (i * bits)
    return word


def write_hex(words: list[int], width: int, path: str | Path) -> Path:
    """Write ``words`` (each < 2**width) as a ``$readmemh`` file; returns the path."""
    digits = max(1, -(-width // 4))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{w:0{digits}x}\n" for w in words))
    return path


def _indices_checked(idx: np.ndarray, bits: int) -> np.ndarray:
    v = np.asarray(idx)
    if not np.issubdtype(v.dtype, np.integer):
        raise ValueError(f"codebook indices must be integers, got {v.dtype}")
    v = v.astype(np.int64)
    bad = np.flatnonzero((v < 0) | (v >= 1 << bits))
    if bad.size:
        raise ValueError(f"codebook indices: {bad.size} outside 0..{(1 << bits) - 1} "
                         f"(first: {v.reshape(-1)[bad[0]]})")
    return v


def weight_words(w_q: np.ndarray, simd: int, pe: int, bits: int = 8,
                 indices: bool = False) -> list[int]:
    """The ``sqz_mvu`` weight ROM contents for ``w_q`` of shape (N_IN, N_OUT).

    With ``indices`` the lanes are unsigned ``bits``-bit codebook indices (weight sharing).
    """
    w = _indices_checked(w_q, bits) if indices else _lanes_checked(w_q, bits, "weights")
    if w.ndim != 2:
        raise ValueError(f"weights: expected shape (N_IN, N_OUT), got {w.shape}; "
                         "reshape a (K, K, C, N_OUT) kernel with .reshape(-1, N_OUT)")
    n_in, n_out = w.shape
    if simd < 1 or pe < 1 or n_in % simd or n_out % pe:
        raise ValueError(f"weights: SIMD={simd} must divide N_IN={n_in} and PE={pe} "
                         f"must divide N_OUT={n_out}")
    sf, nf = n_in // simd, n_out // pe
    # (nf, sf, pe, simd): word index nf*SF + sf, lane index p*SIMD + s
    blocks = w.reshape(sf, simd, nf, pe).transpose(2, 0, 3, 1).reshape(nf * sf, pe * simd)
    return [_pack_row(row, bits) for row in blocks]


def bias_words(b_q: np.ndarray, pe: int, bits: int) -> list[int]:
    """The ``sqz_mvu`` bias ROM contents for ``b_q`` of shape (N_OUT,)."""
    b = _lanes_checked(b_q, bits, "biases").reshape(-1)
    if pe < 1 or b.size % pe:
        raise ValueError(f"biases: PE={pe} must divide N_OUT={b.size}")
    return [_pack_row(row, bits) for row in b.reshape(-1, pe)]


def pack_weights_hex(w_q: np.ndarray, simd: int, pe: int, path: str | Path,
                     bits: int = 8) -> Path:
    """Write the weight ROM image of ``w_q`` (N_IN, N_OUT) for SIMD x PE folding."""
    return write_hex(weight_words(w_q, simd, pe, bits), pe * simd * bits, path)


def pack_indices_hex(idx: np.ndarray, simd: int, pe: int, bits: int,
                     path: str | Path) -> Path:
    """Write the index ROM image of a shared layer: ``idx`` (N_IN, N_OUT) in 0..2**bits-1."""
    return write_hex(weight_words(idx, simd, pe, bits, indices=True), pe * simd * bits, path)


def pack_codebook_hex(codebook: np.ndarray, share_bits: int, w_bits: int,
                      path: str | Path) -> Path:
    """Write a codebook image: exactly ``2**share_bits`` signed ``w_bits``-bit weights."""
    cb = _lanes_checked(codebook, w_bits, "codebook").reshape(-1)
    if cb.size != 1 << share_bits:
        raise ValueError(f"codebook: {cb.size} entries, SHARE_BITS={share_bits} needs "
                         f"{1 << share_bits}")
    return write_hex([_pack_row(np.array([v]), w_bits) for v in cb], w_bits, path)


def pack_bias_hex(b_q: np.ndarray, pe: int, bits: int, path: str | Path) -> Path:
    """Write the bias ROM image of ``b_q`` (N_OUT,): N_OUT/PE words of PE ``bits``-bit lanes."""
    return write_hex(bias_words(b_q, pe, bits), pe * bits, path)
