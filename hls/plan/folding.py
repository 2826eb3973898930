"""Folding (parallelism) as data: PE x SIMD per conv block, shared by both hardware flows.

A conv block computes each output pixel's dot products (n_in = K*K*C inputs, n_out
outputs) with PE x SIMD multiplier lanes: SIMD inputs and PE outputs per cycle, so one pixel
takes SF * NF cycles (SF = n_in / SIMD, NF = n_out / PE) and its weights sit in a ROM
SF * NF words deep and PE * SIMD * 8 bits wide. The open RTL (``sqz_mvu``) is exactly that;
with an even PE it packs two lanes that share an activation into one DSP48E2 (two 8-bit
MACs per DSP), so such a block costs PE * SIMD / 2 DSP slices.

The search (``fold_to_budget``) makes the pipeline as fast as the part allows: it finds the
smallest bottleneck (cycles per frame) for which every block has a folding within the
part's DSP slices (and block RAM), each block taking the cheapest folding that meets it;
a cap (the spec's optional ``target_cycles_per_frame``) stops it spending resources below
that many cycles. PE and SIMD are chosen independently.

hls4ml 1.3.0 accepts a reuse factor only from its valid set (an RF above n_in that is not a
multiple of n_in emits a call to the non-existent ``nnet::DenseResource_rf_gt_nin``), so
the hls4ml project takes the valid reuse factor nearest to the RTL's SF * NF
(``hls_reuse_factor``); ``make perf`` shows both side by side.
"""

from __future__ import annotations

from collections.abc import Callable
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
    packed: bool = False  # two lanes per DSP48E2 (PE even, 8-bit operands)

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
        """Multiplier lanes (8-bit MACs per cycle)."""
        return self.pe * self.simd

    @property
    def dsps(self) -> int:
        """DSP slices: one per lane, or one per packed pair of lanes."""
        return self.pe * self.simd // 2 if self.packed else self.pe * self.simd

    @property
    def cycles(self) -> int:
        """Cycles per frame at full rate: SF*NF per output pixel, or the input rate."""
        return max(self.pixels * self.reuse_factor, self.in_pixels)

    @property
    def macs(self) -> int:
        return self.pixels * self.n_in * self.n_out


def hls_reuse_factor(f: LayerFolding) -> int:
    """The reuse factor of hls4ml's valid set nearest to the RTL's SF * NF (the smaller one,
    i.e. the faster, on a tie)."""
    valid = valid_reuse_factors(f.n_in, f.n_out)
    return min(valid, key=lambda rf: (abs(rf - f.reuse_factor), rf))


def _lane_options(count: int, any_divisor: bool = False, whole: bool = True) -> list[int]:
    """Lane counts for ``count`` channels: powers of two dividing it, and ``count`` itself.

    Keeping to powers of two (or the whole channel count) means a stream and its reader
    nearly always have lane counts where one divides the other, so a width converter joins
    them (``fold_to_budget`` checks every edge and falls back to powers of two alone). The
    last conv feeds only the global pool, which takes any lane count that divides its
    channels: there every divisor is allowed (1000 classes: 125, 200, 250, ...).
    """
    if any_divisor:
        return [d for d in range(1, count + 1) if count % d == 0]
    opts = {count} if whole else set()
    p = 1
    while p <= count:
        if count % p == 0:
            opts.add(p)
        p *= 2
    return sorted(opts)


def _fold(n: Node, pe: int, simd: int, packing: bool = True) -> LayerFolding:
    return LayerFolding(n.name, pe, simd, n.n_in, n.out_shape[2],
                        n.out_shape[0] * n.out_shape[1], n.in_shape[0] * n.in_shape[1],
                        packed=packing and pe % 2 == 0)


def fold_options(nodes: list[Node], whole: bool = True,
                 packing: bool = True) -> dict[str, list[LayerFolding]]:
    """Every folding the RTL accepts per conv: PE over the lane options of the outputs, SIMD
    over those of the input channels (the conv reading the network input may take all its
    channels per beat; ``whole=False`` keeps to powers of two elsewhere)."""
    feeds_gap = {n.inputs[0] for n in nodes if n.kind == "gap"}
    first = nodes[0].inputs[0]
    out: dict[str, list[LayerFolding]] = {}
    for n in nodes:
        if n.kind != "conv":
            continue
        pes = _lane_options(n.out_shape[2], n.name in feeds_gap, whole)
        simds = _lane_options(n.in_shape[2], whole=whole or n.inputs[0] == first)
        out[n.name] = [_fold(n, pe, s, packing) for pe in pes for s in simds]
    return out


def join_lanes(lanes: list[int], channels: list[int]) -> int:
    """Lanes of a concat / add output: the widest input's, where it divides every input's
    channels (a narrow branch is widened by a converter), else the narrowest input's. Taking
    the narrowest always would make a wide branch wait: 128 channels at 2 lanes is 64 beats
    a pixel."""
    wide = max(lanes)
    return wide if all(c % wide == 0 for c in channels) else min(lanes)


def stream_lanes_of(nodes: list[Node], folding: dict[str, LayerFolding]) -> dict[str, int]:
    """Lanes per beat of every block's output stream (and of the network input)."""
    lanes = {nodes[0].inputs[0]: nodes[0].in_shape[2]}
    by_name = {n.name: n for n in nodes}
    for n in nodes:
        if n.kind == "conv":
            lanes[n.name] = folding[n.name].pe
        elif n.kind in ("concat", "add"):
            lanes[n.name] = join_lanes([lanes[i] for i in n.inputs],
                                       [by_name[i].out_shape[2] if i in by_name
                                        else nodes[0].in_shape[2] for i in n.inputs])
        elif n.kind in ("maxpool", "gap"):
            lanes[n.name] = lanes[n.inputs[0]]
        else:
            raise NotImplementedError(f"{n.name}: no stream rule for '{n.kind}' blocks")
    return lanes


def lanes_compatible(nodes: list[Node], folding: dict[str, LayerFolding]) -> bool:
    """Whether every stream's lanes and its reader's divide one another (a width converter
    can join them) under ``folding``."""
    lanes = stream_lanes_of(nodes, folding)

    def joins(a: int, b: int) -> bool:
        return max(a, b) % min(a, b) == 0

    for n in nodes:
        src = [lanes[i] for i in n.inputs]
        if n.kind == "conv" and not joins(src[0], folding[n.name].simd):
            return False
        if n.kind in ("concat", "add") and not all(joins(x, lanes[n.name]) for x in src):
            return False
    return True


def stream_cycles(nodes: list[Node], folding: dict[str, LayerFolding]) -> dict[str, int]:
    """Cycles per frame a concat, add, max-pool or global pool needs to pass its stream at
    one beat per cycle (its lanes set by the folding of the convs before it)."""
    lanes = stream_lanes_of(nodes, folding)
    out = {}
    for n in nodes:
        if n.kind in ("concat", "add"):
            beats = -(-n.out_shape[2] // lanes[n.name])
            out[n.name] = n.out_shape[0] * n.out_shape[1] * beats
        elif n.kind in ("maxpool", "gap"):
            beats = -(-n.in_shape[2] // lanes[n.name])
            out[n.name] = n.in_shape[0] * n.in_shape[1] * beats
    return out


def _lane_source(nodes: list[Node], name: str, folding: dict[str, LayerFolding]) -> str | None:
    """The conv whose PE sets the lanes of block ``name``'s stream (None: the input)."""
    by_name = {n.name: n for n in nodes}
    while name in by_name and by_name[name].kind != "conv":
        n = by_name[name]
        if n.kind in ("concat", "add"):  # the widest input sets them
            name = max(n.inputs, key=lambda i: (folding[i].pe if i in folding else 0,
                                                by_name[i].out_shape[2] if i in by_name else 0))
        else:
            name = n.inputs[0]
    return name if name in by_name else None


def _cheapest(options: dict[str, list[LayerFolding]], cycles: int,
              cost: Callable[[LayerFolding], tuple]) -> dict[str, LayerFolding] | None:
    """Per conv the cheapest folding within ``cycles`` (None if a conv cannot meet it)."""
    out = {}
    for name, opts in options.items():
        ok = [f for f in opts if f.cycles <= cycles]
        if not ok:
            return None
        out[name] = min(ok, key=cost)
    return out


def _fast_enough_streams(nodes: list[Node], options: dict[str, list[LayerFolding]],
                         cycles: int, cost: Callable[[LayerFolding], tuple]
                         ) -> dict[str, LayerFolding] | None:
    """``_cheapest`` at ``cycles``, then wider outputs (a larger PE) for the convs whose
    lanes carry a concat, max-pool or global pool stream too slowly."""
    opts = dict(options)
    for _ in range(len(nodes)):
        folding = _cheapest(opts, cycles, cost)
        if folding is None:
            return None
        slow = [k for k, c in stream_cycles(nodes, folding).items() if c > cycles]
        if not slow:
            return folding
        for k in slow:
            conv = _lane_source(nodes, k, folding)
            if conv is None:
                return None
            wider = [f for f in opts[conv] if f.pe > folding[conv].pe]
            if not wider:
                return None
            opts[conv] = wider
    return None


def fold_to_budget(nodes: list[Node], dsp_budget: int, cap: int | None = None,
                   bram_of: Callable[[LayerFolding], int] | None = None,
                   bram_budget: int | None = None,
                   packing: bool = True) -> dict[str, LayerFolding]:
    """The folding with the smallest bottleneck that fits ``dsp_budget`` DSP slices (and,
    given ``bram_of`` per-conv block RAM and ``bram_budget``, the block RAM). With ``cap``
    the bottleneck is max(cap, the fastest that fits): resources are not spent below
    ``cap`` cycles per frame. Each block takes the cheapest folding that meets the
    bottleneck (fewest DSP slices, then block RAM, then lanes). Raises DoesNotFitError when
    even the slowest folding does not fit.
    """
    def bram(f: LayerFolding) -> int:
        return bram_of(f) if bram_of else 0

    def cost(f: LayerFolding) -> tuple:
        return (f.dsps, bram(f), f.multipliers, f.simd)

    def fits(folding: dict[str, LayerFolding]) -> bool:
        if sum(f.dsps for f in folding.values()) > dsp_budget:
            return False
        return bram_budget is None or sum(bram(f) for f in folding.values()) <= bram_budget

    option_sets = [fold_options(nodes, True, packing), fold_options(nodes, False, packing)]
    candidates = sorted({f.cycles for opts in option_sets[0].values() for f in opts})
    if cap is not None:  # nothing faster than the cap; the cap itself first
        candidates = sorted({c for c in candidates if c > cap} | {cap})
    for cycles in candidates:
        for options in option_sets:
            folding = _fast_enough_streams(nodes, options, cycles, cost)
            if folding and fits(folding) and lanes_compatible(nodes, folding):
                return folding
    slowest = _cheapest(option_sets[1], candidates[-1], cost) or {}
    raise DoesNotFitError(
        f"even the slowest folding needs {sum(f.dsps for f in slowest.values())} DSP slices"
        + (f" and {sum(bram(f) for f in slowest.values())} BRAM18 for weights"
           if bram_of else "")
        + f"; the budget is {dsp_budget} DSP" + (f", {bram_budget} BRAM18" if bram_of else ""))


def choose_folding(nodes: list[Node], target_cycles: int,
                   packing: bool = True) -> dict[str, LayerFolding]:
    """Per conv the cheapest folding that meets ``target_cycles`` (no resource budget); a
    block that cannot meet it even fully parallel is as fast as it can be."""
    return fold_to_budget(nodes, 2**62, cap=target_cycles, packing=packing)
