"""Open RTL generator: network graph + quantization plan + folding -> Verilog top + ROM files.

The top instantiates the hand-written library in ``firmware/rtl`` (one block per layer):
``sqz_window`` + ``sqz_mvu`` per convolution, ``sqz_maxpool``, ``sqz_fork`` where a
stream feeds two branches, ``sqz_concat``, ``sqz_gap``, ``sqz_dwc`` where neighbouring lane
counts differ, and ``sqz_fifo`` between blocks. It is rendered from one template file
(``firmware/rtl/sqz_top.v.j2``) in a single pass; weights and biases go to ``$readmemh``
files under the output directory, referenced by absolute path.

FIFO depths: every block boundary gets a FIFO of two pixels' beats; a max-pool's output
gets one of a whole output row (it emits a row in a burst on every other input row); the
1x1 branch of a Fire module gets one deep enough to hold the pixels that arrive while the
3x3 branch fills its line buffer (``hls.plan.folding.fifo_depths``), otherwise the fork stalls
and the pipeline deadlocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hls.plan.folding import LayerFolding, fifo_depths
from hls.rtl.mem import pack_bias_hex, pack_codebook_hex, pack_indices_hex, pack_weights_hex
from model import golden
from model.graph import Node
from model.paths import RTL_DIR
from model.quantize import QuantPlan

TEMPLATE = "sqz_top.v.j2"
ACT_BITS = 8
CHAIN_FIFO_DEPTH = 4


@dataclass
class Stream:
    name: str
    lanes: int
    bits: int
    channels: int
    pixels: int

    @property
    def width(self) -> int:
        return self.lanes * self.bits


@dataclass
class Instance:
    module: str
    name: str
    comment: str
    params: list[tuple[str, object]]
    streams: list[tuple[str, str]]


@dataclass
class RtlDesign:
    top: str
    instances: list[Instance] = field(default_factory=list)
    wires: list[Stream] = field(default_factory=list)
    in_stream: Stream | None = None
    out_stream: Stream | None = None
    mem_files: list[Path] = field(default_factory=list)

    @property
    def modules(self) -> list[str]:
        used = {i.module for i in self.instances}
        if "sqz_mvu" in used:
            used.add("sqz_fifo")  # the MVU's output FIFO
        return sorted(used)

    def sources(self) -> list[Path]:
        return [RTL_DIR / f"{m}.v" for m in self.modules]


def _q(path: Path) -> str:
    return f'"{path}"'


class _Builder:
    def __init__(self, top: str, nodes: list[Node], plan: QuantPlan,
                 folding: dict[str, LayerFolding], mem_dir: Path):
        self.d = RtlDesign(top)
        self.nodes = nodes
        self.plan = plan
        self.folding = folding
        self.mem_dir = mem_dir
        self.count = 0

    def wire(self, hint: str, lanes: int, bits: int, channels: int, pixels: int) -> Stream:
        self.count += 1
        s = Stream(f"w{self.count:03d}_{hint}", lanes, bits, channels, pixels)
        self.d.wires.append(s)
        return s

    def add(self, module: str, name: str, comment: str, params: dict,
            streams: dict[str, Stream]) -> None:
        self.d.instances.append(Instance(module, name, comment, list(params.items()),
                                         [(p, s.name) for p, s in streams.items()]))

    def fifo(self, s: Stream, depth: int, hint: str) -> Stream:
        out = self.wire(hint, s.lanes, s.bits, s.channels, s.pixels)
        self.add("sqz_fifo", f"fifo_{hint}", f"FIFO, {depth} words",
                 {"DATA_WIDTH": s.width, "DEPTH": max(depth, 2)},
                 {"s_axis": s, "m_axis": out})
        return out

    def adapt(self, s: Stream, lanes: int, hint: str) -> Stream:
        """A lane-width converter from ``s`` to ``lanes`` lanes (one must divide the other)."""
        if s.lanes == lanes:
            return s
        big, small = max(s.lanes, lanes), min(s.lanes, lanes)
        if big % small:
            raise ValueError(f"{hint}: cannot convert {s.lanes} lanes to {lanes} lanes "
                             "(neither divides the other); choose another folding")
        out = self.wire(f"{hint}_dwc", lanes, s.bits, s.channels, s.pixels)
        self.add("sqz_dwc", f"dwc_{hint}", f"{s.lanes} -> {lanes} lanes",
                 {"IN_LANES": s.lanes, "OUT_LANES": lanes, "C": s.channels,
                  "PIXELS": s.pixels}, {"s_axis": s, "m_axis": out})
        return out

    def conv(self, n: Node, src: Stream) -> Stream:
        f = self.folding[n.name]
        lq = self.plan.layers[n.name]
        in_fmt = self.plan.fmt_of(n.inputs[0])
        h, w, c = n.in_shape
        x = self.adapt(src, f.simd, n.name)
        if n.kernel > 1 or n.stride > 1 or n.pad:
            win = self.wire(f"{n.name}_win", f.simd, ACT_BITS, n.n_in, n.out_shape[0]
                            * n.out_shape[1])
            self.add("sqz_window", f"win_{n.name}",
                     f"{n.kernel}x{n.kernel}/{n.stride} window, pad {n.pad}",
                     {"IN_H": h, "IN_W": w, "C": c, "LANES": f.simd, "K": n.kernel,
                      "STRIDE": n.stride, "PAD": n.pad, "BITS": ACT_BITS},
                     {"s_axis": x, "m_axis": win})
            x = win
        w_file = self.mem_dir / f"{n.name}_w.hex"
        b_file = self.mem_dir / f"{n.name}_b.hex"
        share: dict = {}
        if lq.shared:  # index ROM + codebook registers
            cb_file = self.mem_dir / f"{n.name}_cb.hex"
            pack_indices_hex(lq.w_idx.reshape(-1, lq.w_idx.shape[-1]), f.simd, f.pe,
                             lq.share_bits, w_file)
            pack_codebook_hex(lq.w_codebook, lq.share_bits, lq.w_fmt.width, cb_file)
            self.d.mem_files.append(cb_file)
            share = {"SHARE_BITS": lq.share_bits, "CODEBOOK_FILE": _q(cb_file)}
        else:
            pack_weights_hex(lq.w_q.reshape(-1, lq.w_q.shape[-1]), f.simd, f.pe, w_file)
        pack_bias_hex(lq.b_q, f.pe, lq.b_fmt.width, b_file)
        self.d.mem_files += [w_file, b_file]
        acc_frac = in_fmt.frac + lq.w_fmt.frac
        out = self.wire(n.name, f.pe, ACT_BITS, n.out_shape[2], f.pixels)
        self.add("sqz_mvu", f"mvu_{n.name}",
                 f"{n.name}: {f.n_in}x{f.n_out}, PE {f.pe} x SIMD {f.simd}, "
                 f"{f.reuse_factor} cycles/pixel"
                 + (f", {lq.share_bits}-bit shared weights" if lq.shared else ""),
                 {"N_IN": f.n_in, "N_OUT": f.n_out, "SIMD": f.simd, "PE": f.pe,
                  "VECTORS": f.pixels, "IN_BITS": ACT_BITS, "W_BITS": lq.w_fmt.width,
                  "BIAS_BITS": lq.b_fmt.width, "BIAS_SHIFT": acc_frac - lq.b_fmt.frac,
                  "ACC_BITS": lq.acc_fmt.width, "SHIFT": acc_frac - lq.out_fmt.frac,
                  "OUT_BITS": lq.out_fmt.width, "WEIGHT_FILE": _q(w_file),
                  "BIAS_FILE": _q(b_file), **share},
                 {"s_axis": x, "m_axis": out})
        return out

    def build(self, in_shape: tuple[int, int, int]) -> RtlDesign:
        h, w, c = in_shape
        self.d.in_stream = Stream("s_axis", c, ACT_BITS, c, h * w)
        outputs: dict[str, Stream] = {"input_1": self.d.in_stream}
        consumers: dict[str, list[str]] = {}
        for n in self.nodes:
            for i in n.inputs:
                consumers.setdefault(i, []).append(n.name)
        depth_px = fifo_depths(self.nodes)
        taken: dict[str, list[Stream]] = {}

        def source(name: str, consumer: str) -> Stream:
            """The stream ``consumer`` reads; a fork splits a stream read twice."""
            users = consumers[name]
            if len(users) == 1:
                return outputs[name]
            if name not in taken:
                s = outputs[name]
                a = self.wire(f"{name}_fa", s.lanes, s.bits, s.channels, s.pixels)
                b = self.wire(f"{name}_fb", s.lanes, s.bits, s.channels, s.pixels)
                self.add("sqz_fork", f"fork_{name}", f"{name} to {', '.join(users)}",
                         {"DATA_WIDTH": s.width},
                         {"s_axis": s, "m_axis": a, "m_axis_b": b})
                taken[name] = [a, b]
            s = taken[name][users.index(consumer)]
            # The branch that waits for the other one's line buffer buffers the difference.
            extra = depth_px.get(consumer, CHAIN_FIFO_DEPTH) - CHAIN_FIFO_DEPTH
            if extra > 0 and self._is_fast_branch(consumer):
                beats = -(-s.channels // s.lanes)
                s = self.fifo(s, (depth_px[consumer] + 2) * beats, f"{consumer}_in")
            return s

        last = self.nodes[-1]
        for n in self.nodes:
            lq = self.plan.layers[n.name]
            if n.kind == "conv":
                y = self.conv(n, source(n.inputs[0], n.name))
            elif n.kind == "maxpool":
                x = source(n.inputs[0], n.name)
                ih, iw, ic = n.in_shape
                y = self.wire(n.name, x.lanes, ACT_BITS, ic, n.out_shape[0] * n.out_shape[1])
                self.add("sqz_maxpool", n.name, "3x3/2 ceil-mode max-pool",
                         {"IN_H": ih, "IN_W": iw, "C": ic, "LANES": x.lanes, "K": n.kernel,
                          "STRIDE": n.stride, "BITS": ACT_BITS},
                         {"s_axis": x, "m_axis": y})
            elif n.kind == "concat":
                a = source(n.inputs[0], n.name)
                b = source(n.inputs[1], n.name)
                lanes = min(a.lanes, b.lanes)
                a = self.adapt(a, lanes, f"{n.name}_a")
                b = self.adapt(b, lanes, f"{n.name}_b")
                y = self.wire(n.name, lanes, ACT_BITS, n.out_shape[2], a.pixels)
                self.add("sqz_concat", n.name, "channel concatenation",
                         {"CA": a.channels, "CB": b.channels, "LANES": lanes,
                          "PIXELS": a.pixels},
                         {"s_axis": a, "s_axis_b": b, "m_axis": y})
            elif n.kind == "gap":
                x = source(n.inputs[0], n.name)
                ih, iw, ic = n.in_shape
                in_fmt = self.plan.fmt_of(n.inputs[0])
                recip, s = golden.gap_reciprocal(ih * iw)
                y = Stream("m_axis", x.lanes, lq.out_fmt.width, ic, 1)
                self.add("sqz_gap", n.name, "global average pool",
                         {"IN_H": ih, "IN_W": iw, "C": ic, "LANES": x.lanes,
                          "OUT_LANES": x.lanes,
                          "ACC_BITS": ACT_BITS + (ih * iw - 1).bit_length(),
                          "RECIP": recip, "SHIFT": in_fmt.frac + s - lq.out_fmt.frac,
                          "OUT_BITS": lq.out_fmt.width},
                         {"s_axis": x, "m_axis": y})
                self.d.out_stream = y
            else:
                raise NotImplementedError(f"{n.name}: RTL for '{n.kind}' blocks is not built")
            if n is not last:
                # Blocks emit and take a pixel in bursts (an MVU writes its NF output beats
                # at the ends of its folds, and reads its input only in fold 0), so each
                # edge holds two pixels' beats; a few words would throttle neighbours.
                beats = -(-y.channels // y.lanes)
                depth = max(CHAIN_FIFO_DEPTH, 2 * beats)
                if n.kind == "maxpool":
                    # A max-pool emits a whole output row while it reads the input row that
                    # closes its windows, and nothing on the rows between: without a row
                    # of room it blocks its producer on one row and starves its consumer
                    # on the next, and the pair runs slower than either.
                    depth = max(depth, n.out_shape[1] * beats)
                y = self.fifo(y, depth, n.name)
            outputs[n.name] = y
        return self.d

    def _is_fast_branch(self, consumer: str) -> bool:
        node = next(n for n in self.nodes if n.name == consumer)
        return node.kind == "conv" and node.kernel == 1


def generate_rtl(top: str, nodes: list[Node], plan: QuantPlan,
                 folding: dict[str, LayerFolding], out_dir: Path,
                 source: str = "", description: str = "") -> RtlDesign:
    """Write ``<out_dir>/<top>.v`` and the ROM files; returns the design description."""
    import jinja2

    out_dir = Path(out_dir).resolve()
    mem_dir = out_dir / "mem"
    mem_dir.mkdir(parents=True, exist_ok=True)
    design = _Builder(top, nodes, plan, folding, mem_dir).build(nodes[0].in_shape)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(RTL_DIR)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    out_fmt = plan.layers[nodes[-1].name].out_fmt
    text = env.get_template(TEMPLATE).render(
        top=top, source=source, description=description, wires=design.wires,
        instances=design.instances, in_lanes=design.in_stream.lanes,
        in_width=design.in_stream.width, out_lanes=design.out_stream.lanes,
        out_width=design.out_stream.width, out_bits=out_fmt.width, out_format=out_fmt.ap(),
        classes=nodes[-1].out_shape[2])
    (out_dir / f"{top}.v").write_text(text)
    return design
