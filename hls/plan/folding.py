"""Folding (parallelism) as data: PE x SIMD per conv block, shared by both hardware flows.

A conv block computes each output pixel's dot products (n_in = K*K*C inputs, n_out
outputs) with PE x SIMD multipliers: SIMD inputs and PE outputs per cycle, so one pixel
takes SF * NF cycles (SF = n_in / SIMD, NF = n_out / PE) and its weights sit in a ROM
SF * NF words deep and PE * SIMD * 8 bits wide. The open RTL (``sqz_mvu``) is exactly that;
hls4ml's Resource strategy with ``ReuseFactor = SF * NF`` instantiates the same number of
multipliers and the same ROM shape, so one folding file drives both flows.

hls4ml 1.3.0 accepts a reuse factor only from its valid set (an RF above n_in that is not a
multiple of n_in emits a call to the non-existent ``nnet::DenseResource_rf_gt_nin``). SF*NF
is in that set whenever SIMD = 1 or PE = n_out, so the folding search raises PE first (up to
n_out, SIMD = 1) and then SIMD — the reverse of FINN's order, for hls4ml's sake.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.errors import DoesNotFitError
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
    pe: int
    simd: int
    n_in: int
    n_out: int
    pixels: int          # output pixels per frame
    in_pixels: int       # input pixels per frame (a block reads each once)

    @property
    def sf(self) -> int:
        return self.n_in // self.simd

    @property
    def nf(self) -> int:
        return self.n_out // self.pe

    @property
    def reuse_factor(self) -> int:
        return self.sf * self.nf

    @property
    def multipliers(self) -> int:
        return self.pe * self.simd

    @property
    def cycles(self) -> int:
        """Cycles per frame at full rate: SF*NF per output pixel, or the input rate."""
        return max(self.pixels * self.reuse_factor, self.in_pixels)

    @property
    def macs(self) -> int:
        return self.pixels * self.n_in * self.n_out


def _lane_options(count: int, any_divisor: bool = False) -> list[int]:
    """Lane counts for ``count`` channels: powers of two dividing it, and ``count`` itself.

    Keeping to powers of two (or the whole channel count) means any two neighbouring
    streams have lane counts where one divides the other, so a width converter joins them.
    The last conv feeds only the global pool, which takes any lane count that divides its
    channels: there every divisor is allowed (1000 classes: 125, 200, 250, ...).
    """
    if any_divisor:
        return [d for d in range(1, count + 1) if count % d == 0]
    opts = {count}
    p = 1
    while p <= count:
        if count % p == 0:
            opts.add(p)
        p *= 2
    return sorted(opts)


def _fold(n: Node, pe: int, simd: int) -> LayerFolding:
    return LayerFolding(n.name, pe, simd, n.n_in, n.out_shape[2],
                        n.out_shape[0] * n.out_shape[1], n.in_shape[0] * n.in_shape[1])


def choose_folding(nodes: list[Node], target_cycles: int) -> dict[str, LayerFolding]:
    """Per conv: the least parallel PE x SIMD whose block meets ``target_cycles``.

    PE rises through the lane options of n_out with SIMD = 1, then SIMD through those of
    the input channels with PE = n_out. A block that cannot meet the target even fully
    parallel stays fully parallel and is the pipeline's bottleneck (the report shows it).
    """
    out: dict[str, LayerFolding] = {}
    feeds_gap = {n.inputs[0] for n in nodes if n.kind == "gap"}
    for n in nodes:
        if n.kind != "conv":
            continue
        steps = [(pe, 1) for pe in _lane_options(n.out_shape[2], n.name in feeds_gap)]
        steps += [(n.out_shape[2], s) for s in _lane_options(n.in_shape[2]) if s > 1]
        chosen = steps[-1]
        for pe, simd in steps:
            if _fold(n, pe, simd).cycles <= target_cycles:
                chosen = (pe, simd)
                break
        fold = _fold(n, *chosen)
        if fold.reuse_factor not in valid_reuse_factors(n.n_in, n.out_shape[2]):
            raise AssertionError(f"{n.name}: RF {fold.reuse_factor} not valid for hls4ml")
        out[n.name] = fold
    return out


def fold_within_budget(nodes: list[Node], target_cycles: int,
                       max_multipliers: int) -> tuple[dict[str, LayerFolding], int]:
    """``choose_folding`` at the target, relaxed in 5% steps until the multipliers fit.

    Returns the folding and the target it met. A budget that even the fully folded
    pipeline (PE = SIMD = 1 everywhere) exceeds raises ValueError with the numbers.
    """
    target = target_cycles
    while True:
        folding = choose_folding(nodes, target)
        mults = sum(f.multipliers for f in folding.values())
        if mults <= max_multipliers:
            return folding, target
        if all(f.multipliers == 1 for f in folding.values()):
            raise DoesNotFitError(f"even one multiplier per conv needs {mults} multipliers, "
                             f"more than the budget of {max_multipliers}")
        target = int(target * 1.05) + 1
