"""Streams between blocks: their lane counts and the one FIFO policy both backends build.

Every block boundary is an AXI-Stream of ``lanes`` elements per beat; a pixel of ``C``
channels takes ``ceil(C / lanes)`` beats. ``stream_lanes`` gives each block output's lane
count (a conv emits PE lanes; a max-pool and the global pool keep their input's; a concat
takes the widest of its inputs where that divides both, see ``join_lanes``). ``fifo_plan``
is the single FIFO policy: the depth of every FIFO in pixels and in beats. The open RTL
top instantiates exactly these FIFOs (``hls.rtl.passes``), the hls4ml project gets them
as stream depth pragmas (``hls.hls4ml_backend.convert``), and the memory report counts
them (``hls.plan.memory``).

The policy, from the producer/consumer timing:
- every block output except the network's last gets a FIFO of two pixels' beats (at least
  four beats): blocks emit and take a pixel in bursts (an MVU writes its NF output beats at
  the ends of its folds and reads its input only in fold 0), so a few words would throttle
  the neighbours;
- a max-pool's output holds one output row: it emits a row in a burst while it reads the
  input row that closes its windows, and nothing on the rows between;
- where a stream forks into two branches that a concat (or a bypass add) joins again, the
  branch that reaches the join first buffers the pixels that arrive while the other branch
  fills its line buffer (``(K-1)`` padded rows plus ``K`` pixels for a KxK conv), plus
  slack; otherwise the fork stalls and the pipeline deadlocks. hls4ml's default (H*W words
  per stream) would cost megabytes at 227x227.
- inside each MVU, an output FIFO absorbs the results in flight behind its credit counter:
  its pipeline holds ``LEVELS + 7`` beats at full rate (``LEVELS = ceil(log2(SIMD))``), so
  it gets the next power of two above ``LEVELS + 8`` words.
"""

from __future__ import annotations

from dataclasses import dataclass

from hls.plan.folding import LayerFolding
from hls.plan.folding import stream_lanes_of as stream_lanes  # the rule lives with the search
from model.graph import Node
from model.quantize import QuantPlan

INPUT = "input_1"          # the graph's name for the network input stream
ACT_BITS = 8               # activation width on every stream between blocks
CHAIN_PIXELS = 2           # block output FIFO: two pixels' beats ...
CHAIN_MIN_BEATS = 4        # ... and never fewer than four beats
JOIN_SLACK_PIXELS = 10     # beyond the two branches' latency difference
HLS_MIN_DEPTH = 2          # an HLS dataflow stream passes one word per cycle from depth 2


def sqz_fifo_words(depth: int) -> int:
    """Words ``sqz_fifo`` with ``DEPTH = depth`` really holds: a 2**clog2(depth)-word RAM plus
    its output register."""
    return (1 << max(depth - 1, 1).bit_length()) + 1


def mvu_fifo_depth(simd: int) -> int:
    """The ``OUT_FIFO_DEPTH`` of an MVU with ``simd`` lanes (see the module docstring)."""
    levels = 0 if simd < 2 else (simd - 1).bit_length()
    return 1 << (levels + 8 - 1).bit_length()


@dataclass(frozen=True)
class Fifo:
    """One FIFO of the pipeline.

    ``consumer`` is None for a block's output FIFO (before any fork); for a branch FIFO it
    names the block that reads it (after the fork). ``kind`` is ``output``, ``branch`` or
    ``mvu`` (the MVU's internal output FIFO, ``producer`` = the conv).
    """

    producer: str
    consumer: str | None
    kind: str
    lanes: int
    channels: int
    pixels: int      # depth in pixels (0 for an MVU's FIFO, which holds result beats)
    beats: int       # depth in beats: the RTL instance's DEPTH
    bits: int = ACT_BITS

    @property
    def width(self) -> int:
        return self.lanes * self.bits

    @property
    def words(self) -> int:
        """Words the RTL FIFO holds (its RAM rounded up to a power of two, plus a register)."""
        return sqz_fifo_words(self.beats)

    @property
    def hls_depth(self) -> int:
        """The hls4ml stream depth (one word per pixel) for this FIFO's stream."""
        if self.kind == "mvu":
            raise ValueError(f"{self.producer}: an MVU's internal FIFO has no hls4ml stream")
        return max(self.pixels, HLS_MIN_DEPTH)


@dataclass(frozen=True)
class FifoPlan:
    fifos: tuple[Fifo, ...]

    def output(self, producer: str) -> Fifo | None:
        return next((f for f in self.fifos if f.kind == "output" and f.producer == producer),
                    None)

    def branch(self, producer: str, consumer: str) -> Fifo | None:
        return next((f for f in self.fifos if f.kind == "branch" and f.producer == producer
                     and f.consumer == consumer), None)

    def mvu(self, conv: str) -> Fifo:
        return next(f for f in self.fifos if f.kind == "mvu" and f.producer == conv)

    def hls_depth(self, producer: str, consumer: str | None = None) -> int:
        """The hls4ml stream depth of ``producer``'s output (``consumer`` None) or of the
        fork copy read by ``consumer``; streams the plan holds no FIFO for get the minimum."""
        f = self.output(producer) if consumer is None else self.branch(producer, consumer)
        return f.hls_depth if f else HLS_MIN_DEPTH


def consumers(nodes: list[Node]) -> dict[str, list[str]]:
    """Readers of every stream, in graph order; a stream read twice is forked."""
    out: dict[str, list[str]] = {}
    for n in nodes:
        for i in n.inputs:
            out.setdefault(i, []).append(n.name)
    return out


def _join_latency(x: Node) -> int:
    """Pixels a branch block swallows before it emits its first pixel (0 for a direct edge)."""
    if x.kind != "conv":
        return 0
    return (x.kernel - 1) * (x.in_shape[1] + 2 * x.pad) + x.kernel


def _branches(nodes: list[Node], readers: dict[str, list[str]]) -> dict[tuple[str, str], int]:
    """(fork producer, branch consumer) -> pixels of every branch FIFO a join needs."""
    by_name = {n.name: n for n in nodes}
    out: dict[tuple[str, str], int] = {}
    for j in nodes:
        if j.kind == "concat":
            lat = {i: _join_latency(by_name[i]) for i in j.inputs}
        elif j.kind == "add":
            # bypass: the Fire input waits for the whole Fire module, whose 3x3 expand
            # dominates; the direct edge emits at once
            w = j.out_shape[1]
            lat = {j.inputs[0]: 0, j.inputs[1]: 2 * (w + 2) + 3}
        else:
            continue
        slow = max(lat.values())
        for i, own in lat.items():
            if own == slow:
                continue
            # the fast branch starts at a fork: either the join reads the forked stream
            # itself (a bypass), or the fast block reads it
            if len(readers.get(i, [])) > 1:
                edge = (i, j.name)
            else:
                edge = (by_name[i].inputs[0], i)
            out[edge] = max(out.get(edge, 0), slow - own + JOIN_SLACK_PIXELS)
    return out


def fifo_plan(nodes: list[Node], folding: dict[str, LayerFolding],
              plan: QuantPlan | None = None) -> FifoPlan:
    """Every FIFO of the pipeline, from the graph and the folding (see the module docstring);
    with the quantization ``plan``, each FIFO is as wide as its block's output format (the
    classifier conv's is ``logit_bits``, ``model.quantize.output_bits``), else ``ACT_BITS``."""
    lanes = stream_lanes(nodes, folding)
    width = {} if plan is None else {n: lq.out_fmt.width for n, lq in plan.layers.items()}
    readers = consumers(nodes)
    by_name = {n.name: n for n in nodes}
    fifos: list[Fifo] = []
    for n in nodes:
        if n.kind == "conv":
            f = folding[n.name]
            fifos.append(Fifo(n.name, None, "mvu", f.pe, n.out_shape[2], 0,
                              mvu_fifo_depth(f.simd), width.get(n.name, ACT_BITS)))
        if n is nodes[-1]:
            continue  # the last block drives the top-level output port
        bpp = -(-n.out_shape[2] // lanes[n.name])
        pixels = max(CHAIN_PIXELS, -(-CHAIN_MIN_BEATS // bpp))
        if n.kind == "maxpool":
            pixels = max(pixels, n.out_shape[1])
        fifos.append(Fifo(n.name, None, "output", lanes[n.name], n.out_shape[2], pixels,
                          pixels * bpp, width.get(n.name, ACT_BITS)))
    for (src, dst), pixels in _branches(nodes, readers).items():
        channels = by_name[src].out_shape[2] if src in by_name else nodes[0].in_shape[2]
        bpp = -(-channels // lanes[src])
        fifos.append(Fifo(src, dst, "branch", lanes[src], channels, pixels, pixels * bpp,
                          width.get(src, ACT_BITS)))
    return FifoPlan(tuple(fifos))
