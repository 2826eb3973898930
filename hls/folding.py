"""Folding (parallelism) as data: one reuse factor per conv block, and FIFO depths.

hls4ml's Resource strategy computes a conv block's dot products with
``n_in * n_out / RF`` multipliers, each used RF times per output pixel, so the block needs
about ``out_pixels * RF`` cycles per frame and keeps its weights in a ROM RF words deep.
The reuse factor must lie in hls4ml's valid set: hls4ml 1.3.0 emits a call to the
non-existent ``nnet::DenseResource_rf_gt_nin`` for an RF above n_in that is not a multiple
of n_in, and its QoR rule wants RF to divide n_in * n_out.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.graph import Node


def valid_reuse_factors(n_in: int, n_out: int) -> list[int]:
    """Reuse factors hls4ml 1.3.0 accepts for an (n_in x n_out) Resource-strategy kernel."""
    total = n_in * n_out
    divisors = set()
    d = 1
    while d * d <= total:
        if total % d == 0:
            divisors.update((d, total // d))
        d += 1
    valid = []
    for rf in sorted(divisors):
        if rf < n_in:
            mult_limit = -(-total // rf)
            if mult_limit % n_out == 0:
                valid.append(rf)
        elif rf % n_in == 0:
            valid.append(rf)
    return valid


@dataclass(frozen=True)
class LayerFolding:
    name: str
    reuse_factor: int
    multipliers: int
    cycles: int          # estimated cycles per frame of this block


def layer_cycles(node: Node, rf: int) -> int:
    """A block reads every input pixel once and spends RF cycles per output pixel."""
    h, w, _ = node.out_shape
    ih, iw, _ = node.in_shape
    return max(h * w * rf, ih * iw)


def choose_folding(nodes: list[Node], target_cycles: int) -> dict[str, LayerFolding]:
    """Per conv: the largest valid RF whose block meets ``target_cycles`` per frame.

    Larger RF means fewer multipliers and deeper, narrower weight ROMs (better BRAM
    packing). A block that cannot meet the target even at RF = 1 gets RF = 1 and becomes
    the pipeline's bottleneck; the report shows it.
    """
    out: dict[str, LayerFolding] = {}
    for n in nodes:
        if n.kind != "conv":
            continue
        valid = valid_reuse_factors(n.n_in, n.out_shape[2])
        fitting = [rf for rf in valid if layer_cycles(n, rf) <= target_cycles]
        rf = fitting[-1] if fitting else valid[0]
        mults = -(-n.n_in * n.out_shape[2] // rf)
        out[n.name] = LayerFolding(n.name, rf, mults, layer_cycles(n, rf))
    return out


def fifo_depths(nodes: list[Node], chain_depth: int = 8) -> dict[str, int]:
    """Stream depth per block output, from the producer/consumer timing.

    A plain chain needs only a few words (every block consumes in the order it is fed).
    A Fire module forks the squeeze output into a 1x1 and a 3x3 branch that the concat
    joins pixel by pixel; the 3x3 branch emits its first pixel only after its line buffer
    holds (K-1) padded rows plus K pixels, so the 1x1 branch must buffer that many pixels
    or the fork stalls and the pipeline deadlocks. hls4ml's default (H*W words per stream)
    would cost megabytes at 227x227.
    """
    depths = {n.name: chain_depth for n in nodes}
    by_name = {n.name: n for n in nodes}
    for n in nodes:
        if n.kind not in ("concat", "add"):
            continue
        a, b = (by_name.get(i) for i in n.inputs)
        lat = {}
        for x in (a, b):
            if x is None:
                continue
            k, pad = x.kernel, x.pad
            w_pad = x.in_shape[1] + 2 * pad
            lat[x.name] = (k - 1) * w_pad + k if x.kind == "conv" else 0
        if n.kind == "add":  # bypass: the fire input waits for the whole Fire module
            w = n.out_shape[1]
            lat[n.inputs[1]] = 2 * (w + 2) + 3
            lat[n.inputs[0]] = 0
        slow = max(lat.values())
        for name, own in lat.items():
            if name in depths:
                depths[name] = max(depths[name], slow - own + chain_depth)
    return depths
