"""On-chip memory budget: weights, line buffers and FIFOs, packed into BRAM primitives.

Counts come from the shapes the hardware really has, not from bytes alone: a Resource-
strategy weight ROM is RF words deep and ``n_in * n_out / RF * 8`` bits wide, and a BRAM18
holds one of 16Kx1, 8Kx2, 4Kx4, 2Kx9, 1Kx18 or 512x36, so a wide, shallow ROM wastes depth.
Small memories (a ROM with RF = 1, streams of at most 64 words) land in registers or LUTRAM
and are counted as such. The numbers are an estimate of what the vendor tool will infer;
``make synth`` gives the tool's own count where the tool exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from hls.plan.folding import LayerFolding
from hls.plan.parts import Part, part_info
from hls.plan.streams import FifoPlan
from model.graph import Node
from model.quantize import QuantPlan

BRAM18_BITS = 18 * 1024
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
LUTRAM_MAX_DEPTH = 64
PAPER_BOUND_BYTES = 10 * 1000 * 1000  # "FPGAs often have less than 10 MB on chip"


def bram18_blocks(depth: int, width: int) -> int:
    """BRAM18 primitives for a depth x width memory, best aspect ratio, no cascading tricks."""
    if depth <= 0 or width <= 0:
        return 0
    return min(-(-width // w) * -(-depth // d) for d, w in BRAM18_SHAPES)


@dataclass
class MemoryRow:
    layer: str
    kind: str            # weights, biases, line buffer, fifo
    depth: int
    width: int
    where: str           # BRAM, LUTRAM/SRL, registers
    bram18: int

    @property
    def bits(self) -> int:
        return self.depth * self.width


def conv_bram18(f: LayerFolding, rom_bits: int, in_bits: int = 8) -> int:
    """BRAM18 of a conv block that depend on its folding: the weight ROM (RF words of
    PE * SIMD * ``rom_bits``) and, with more than one output fold, the input vector buffer
    (SF words of SIMD * ``in_bits``; ``sqz_mvu`` asks for block RAM there). The same
    counts as ``memory_rows`` gives."""
    rf = f.reuse_factor
    blocks = bram18_blocks(rf, f.multipliers * rom_bits) if rf > 1 else 0
    if f.nf > 1 and f.sf > 1:
        blocks += bram18_blocks(f.sf, f.simd * in_bits)
    return blocks


def memory_rows(nodes: list[Node], plan: QuantPlan, folding: dict[str, LayerFolding],
                fifos: FifoPlan, sharing: bool = True) -> list[MemoryRow]:
    """Every on-chip memory of the pipeline; ``sharing=False`` counts shared layers as if
    they stored their 8-bit weights (the baseline the BRAM saved is measured against)."""
    rows: list[MemoryRow] = []

    def place(layer: str, kind: str, depth: int, width: int, rom: bool = False,
              ram_depth: int | None = None) -> None:
        """``ram_depth``: the part of ``depth`` in the memory array (a FIFO's output
        register is not)."""
        ram = depth if ram_depth is None else ram_depth
        if ram <= 1 or (not rom and ram <= LUTRAM_MAX_DEPTH):
            where = "registers" if ram <= 1 else "LUTRAM/SRL"
            rows.append(MemoryRow(layer, kind, depth, width, where, 0))
        else:
            rows.append(MemoryRow(layer, kind, depth, width, "BRAM", bram18_blocks(ram, width)))

    for n in nodes:
        lq = plan.layers[n.name]
        act_bits = lq.out_fmt.width * n.out_shape[2]
        if n.kind == "conv":
            rf = folding[n.name].reuse_factor
            total = n.weight_count
            if lq.shared and sharing:
                # Indices in the ROM; the codebook in registers (a LUT multiplexer per lane).
                place(n.name, "weights", rf, total // rf * lq.share_bits, rom=True)
                rows.append(MemoryRow(n.name, "codebook", 1,
                                      2**lq.share_bits * lq.w_fmt.width, "registers", 0))
            else:
                place(n.name, "weights", rf, total // rf * lq.w_fmt.width, rom=True)
            rows.append(MemoryRow(n.name, "biases", 1, n.bias_count * lq.b_fmt.width,
                                  "registers", 0))
            f = folding[n.name]
            if f.nf > 1:  # the MVU replays its input vector for every output fold
                place(n.name, "input buffer", f.sf, f.simd * plan.fmt_of(n.inputs[0]).width,
                      rom=True)
            if n.kernel > 1:
                in_fmt = plan.fmt_of(n.inputs[0])
                w_pad = n.in_shape[1] + 2 * n.pad
                place(n.name, "line buffer", (n.kernel - 1) * w_pad,
                      n.in_shape[2] * in_fmt.width)
        elif n.kind == "maxpool":
            place(n.name, "line buffer", 2 * n.out_shape[1], act_bits)
        elif n.kind == "gap":
            rows.append(MemoryRow(n.name, "accumulators", 1,
                                  n.in_shape[2] * (lq.out_fmt.width + 8), "registers", 0))
    # The FIFO policy's FIFOs as the RTL instantiates them (sqz_fifo: a power-of-two RAM
    # plus an output register); hls4ml's streams get the same depths in pixels.
    for f in fifos.fifos:
        label = {"output": f.producer, "mvu": f"{f.producer} (MVU out)",
                 "branch": f"{f.consumer} (in)"}[f.kind]
        place(label, "fifo", f.words, f.width, ram_depth=f.words - 1)
    return rows


@dataclass
class MemoryReport:
    rows: list[MemoryRow]
    part: Part
    multipliers: int     # multiplier lanes (8-bit MACs per cycle)
    dsps: int = 0        # DSP slices (two lanes share one where the folding packs them)
    dense_bram18: int | None = None   # the same design with 8-bit weights (sharing only)

    @property
    def weight_bytes(self) -> int:
        return sum(r.bits for r in self.rows if r.kind == "weights") // 8

    @property
    def total_bytes(self) -> int:
        return sum(r.bits for r in self.rows) // 8

    @property
    def bram18(self) -> int:
        return sum(r.bram18 for r in self.rows)

    def fits(self) -> list[str]:
        """Reasons the design does not fit the part (empty if it fits)."""
        problems = []
        if self.bram18 > self.part.bram18:
            problems.append(f"BRAM: needs {self.bram18} BRAM18 ({self.bram18 / 2:.0f} BRAM36), "
                            f"{self.part.name} has {self.part.bram18} ({self.part.bram36})")
        if self.dsps > self.part.dsp:
            problems.append(f"DSP: needs {self.dsps} DSP slices ({self.multipliers} multiplier "
                            f"lanes), {self.part.name} has "
                            f"{self.part.dsp} DSP slices")
        return problems

    def format(self, per_layer: bool = True) -> str:
        lines = []
        if per_layer:
            lines.append(f"{'layer':<22} {'memory':<12} {'depth':>6} {'width':>6} "
                         f"{'bytes':>9} {'BRAM18':>6}  where")
            for r in self.rows:
                lines.append(f"{r.layer:<22} {r.kind:<12} {r.depth:>6} {r.width:>6} "
                             f"{r.bits // 8:>9} {r.bram18:>6}  {r.where}")
        by_kind: dict[str, list[int]] = {}
        for r in self.rows:
            k = by_kind.setdefault(r.kind, [0, 0])
            k[0] += r.bits // 8
            k[1] += r.bram18
        for kind, (b, blocks) in by_kind.items():
            lines.append(f"  {kind:<13} {b:>10,d} bytes  {blocks:>5} BRAM18")
        p = self.part
        lines.append(f"on-chip total: {self.total_bytes:,d} bytes "
                     f"({self.total_bytes / PAPER_BOUND_BYTES:.1%} of the paper's 10 MB bound); "
                     f"weights {self.weight_bytes:,d} bytes")
        if self.dense_bram18 is not None:
            lines.append(f"weight sharing: {self.bram18} BRAM18 with shared weights, "
                         f"{self.dense_bram18} with 8-bit weights: "
                         f"{self.dense_bram18 - self.bram18} BRAM18 saved")
        lines.append(f"BRAM18: {self.bram18} / {p.bram18} ({self.bram18 / p.bram18:.1%}) on "
                     f"{p.name}; DSP: {self.dsps} / {p.dsp} ({self.dsps / p.dsp:.1%}) for "
                     f"{self.multipliers} multiplier lanes")
        return "\n".join(lines)


def memory_report(nodes: list[Node], plan: QuantPlan, folding: dict[str, LayerFolding],
                  fifo: FifoPlan, part: str, sharing: bool = True) -> MemoryReport:
    """The memory budget of the plan on ``part``; with shared-weight layers it also gives
    the BRAM18 of the same design storing 8-bit weights (``dense_bram18``)."""
    rep = MemoryReport(memory_rows(nodes, plan, folding, fifo, sharing), part_info(part),
                       sum(f.multipliers for f in folding.values()),
                       sum(f.dsps for f in folding.values()))
    if sharing and any(lq.shared for lq in plan.layers.values()):
        rep.dense_bram18 = sum(r.bram18 for r in memory_rows(nodes, plan, folding, fifo, False))
    return rep
