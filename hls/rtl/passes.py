"""RTL generation as passes over a block graph (FINN-style), each small and tested alone.

``lower`` turns every layer into library blocks (``sqz_window`` + ``sqz_mvu`` per
convolution, ``sqz_maxpool``, ``sqz_concat``, ``sqz_gap``) connected by one stream per layer
output; a block input records the lane count it needs. ``insert_fifos`` puts the FIFO
policy's FIFOs (``hls.plan.streams.fifo_plan``) on the streams; ``insert_forks`` splits a
stream read twice with ``sqz_fork``; ``insert_dwcs`` adds an ``sqz_dwc`` lane-width converter
where a stream's lanes differ from what its reader needs. ``build_design`` runs them in
that order, which gives every edge the shape output FIFO -> fork -> branch FIFO -> width
converter -> block. Rendering (``hls.rtl.generate``) reads the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hls.plan.folding import LayerFolding
from hls.plan.streams import ACT_BITS, INPUT, FifoPlan, stream_lanes
from model import golden
from model.graph import Node
from model.quantize import QuantPlan


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
    """One library block. ``inputs`` / ``outputs`` map a port prefix (``s_axis``,
    ``s_axis_b``, ``m_axis``, ...) to a stream name; ``needs`` the lanes an input port must
    get (a converter is inserted when the stream has others); ``layer`` the graph node it
    belongs to."""

    module: str
    name: str
    comment: str
    layer: str
    params: dict[str, object]
    inputs: dict[str, str]
    outputs: dict[str, str]
    needs: dict[str, int] = field(default_factory=dict)

    @property
    def ports(self) -> list[tuple[str, str]]:
        return list(self.inputs.items()) + list(self.outputs.items())


@dataclass
class RtlDesign:
    top: str
    instances: list[Instance] = field(default_factory=list)
    streams: dict[str, Stream] = field(default_factory=dict)
    in_stream: str = "s_axis"
    out_stream: str = "m_axis"
    order: dict[str, int] = field(default_factory=dict)   # layer -> graph position
    mem_files: list[Path] = field(default_factory=list)

    # ---- queries
    @property
    def wires(self) -> list[Stream]:
        """Internal streams (everything but the top-level ports), in creation order."""
        return [s for s in self.streams.values()
                if s.name not in (self.in_stream, self.out_stream)]

    @property
    def modules(self) -> list[str]:
        used = {i.module for i in self.instances}
        if "sqz_mvu" in used:
            used.add("sqz_fifo")  # the MVU's output FIFO
        return sorted(used)

    def sources(self) -> list[Path]:
        from model.paths import RTL_DIR

        return [RTL_DIR / f"{m}.v" for m in self.modules]

    def readers(self, stream: str) -> list[tuple[Instance, str]]:
        """(instance, input port) pairs reading ``stream``, in graph order of their layers."""
        found = [(i, p) for i in self.instances for p, s in i.inputs.items() if s == stream]
        return sorted(found, key=lambda ip: self.order.get(ip[0].layer, len(self.order)))

    def writer(self, stream: str) -> Instance | None:
        return next((i for i in self.instances if stream in i.outputs.values()), None)

    def by_name(self, name: str) -> Instance:
        return next(i for i in self.instances if i.name == name)

    # ---- edits
    def new_stream(self, hint: str, like: Stream, lanes: int | None = None) -> Stream:
        s = Stream(f"w{len(self.streams):03d}_{hint}", like.lanes if lanes is None else lanes,
                   like.bits, like.channels, like.pixels)
        self.streams[s.name] = s
        return s

    def insert_after(self, anchor: Instance | None, inst: Instance) -> None:
        pos = 0 if anchor is None else self.instances.index(anchor) + 1
        self.instances.insert(pos, inst)

    def insert_before(self, anchor: Instance, inst: Instance) -> None:
        self.instances.insert(self.instances.index(anchor), inst)


def _q(path: Path) -> str:
    return f'"{path}"'


def gap_acc_bits(pixels: int, in_bits: int = ACT_BITS) -> int:
    """Accumulator bits of ``sqz_gap`` for a ``pixels``-pixel map: the exact sum of
    ``in_bits``-bit inputs, and more than ``in_bits`` (the module needs a bit above the
    input even for a 1x1 map)."""
    return in_bits + max(1, (pixels - 1).bit_length())


def _eight_bit_input(n: Node, fmt) -> None:
    """The window, MVU and max-pool blocks take ``ACT_BITS``-bit elements."""
    if fmt.width != ACT_BITS:
        raise NotImplementedError(f"{n.name}: its input is {fmt.width} bits wide; the RTL "
                                  f"{n.kind} block takes {ACT_BITS}-bit elements")


def mem_paths(mem_dir: Path, layer: str) -> dict[str, Path]:
    """The ROM image files of a conv layer (weights or indices, biases, codebook)."""
    return {"weights": mem_dir / f"{layer}_w.hex", "biases": mem_dir / f"{layer}_b.hex",
            "codebook": mem_dir / f"{layer}_cb.hex"}


# ------------------------------------------------------------------------------- lower

def lower(top: str, nodes: list[Node], plan: QuantPlan, folding: dict[str, LayerFolding],
          fifos: FifoPlan, mem_dir: Path) -> RtlDesign:
    """One stream per layer output and the blocks of every layer; no FIFO, fork or
    converter yet (a stream may have several readers and lanes other than they need)."""
    d = RtlDesign(top, order={n.name: k for k, n in enumerate(nodes)})
    lanes = stream_lanes(nodes, folding)
    h, w, c = nodes[0].in_shape
    d.streams[d.in_stream] = Stream(d.in_stream, c, ACT_BITS, c, h * w)
    layer_out = {INPUT: d.in_stream}
    last = nodes[-1]
    for n in nodes:
        lq = plan.layers[n.name]
        pixels = n.out_shape[0] * n.out_shape[1]
        if n is last:
            if n.kind != "gap":
                raise NotImplementedError(f"{n.name}: the RTL top ends with a global pool")
            out = Stream(d.out_stream, lanes[n.name], lq.out_fmt.width, n.out_shape[2], 1)
            d.streams[out.name] = out
        else:
            out = d.new_stream(n.name, Stream("", lanes[n.name], lq.out_fmt.width,
                                              n.out_shape[2], pixels))
        src = [layer_out[i] for i in n.inputs]
        if n.kind == "conv":
            _lower_conv(d, n, plan, folding[n.name], fifos, mem_dir, src[0], out)
        elif n.kind == "maxpool":
            _eight_bit_input(n, plan.fmt_of(n.inputs[0]))
            ih, iw, ic = n.in_shape
            d.instances.append(Instance(
                "sqz_maxpool", n.name, f"{n.kernel}x{n.kernel}/{n.stride} ceil-mode max-pool",
                n.name, {"IN_H": ih, "IN_W": iw, "C": ic, "LANES": lanes[n.name],
                         "K": n.kernel, "STRIDE": n.stride, "BITS": ACT_BITS},
                {"s_axis": src[0]}, {"m_axis": out.name}, {"s_axis": lanes[n.name]}))
        elif n.kind == "concat":
            ca, cb = (d.streams[s].channels for s in src)
            d.instances.append(Instance(
                "sqz_concat", n.name, "channel concatenation", n.name,
                {"CA": ca, "CB": cb, "LANES": lanes[n.name], "PIXELS": pixels},
                {"s_axis": src[0], "s_axis_b": src[1]}, {"m_axis": out.name},
                {"s_axis": lanes[n.name], "s_axis_b": lanes[n.name]}))
        elif n.kind == "gap":
            ih, iw, ic = n.in_shape
            in_fmt = plan.fmt_of(n.inputs[0])
            recip, shift = golden.gap_reciprocal(ih * iw)
            d.instances.append(Instance(
                "sqz_gap", n.name, "global average pool", n.name,
                {"IN_H": ih, "IN_W": iw, "C": ic, "LANES": lanes[n.name],
                 "OUT_LANES": lanes[n.name], "IN_BITS": in_fmt.width,
                 "ACC_BITS": gap_acc_bits(ih * iw, in_fmt.width),
                 "RECIP": recip, "SHIFT": in_fmt.frac + shift - lq.out_fmt.frac,
                 "OUT_BITS": lq.out_fmt.width},
                {"s_axis": src[0]}, {"m_axis": out.name}, {"s_axis": lanes[n.name]}))
        else:
            raise NotImplementedError(f"{n.name}: RTL for '{n.kind}' blocks is not built")
        layer_out[n.name] = out.name
    return d


def _lower_conv(d: RtlDesign, n: Node, plan: QuantPlan, f: LayerFolding, fifos: FifoPlan,
                mem_dir: Path, src: str, out: Stream) -> None:
    lq = plan.layers[n.name]
    in_fmt = plan.fmt_of(n.inputs[0])
    _eight_bit_input(n, in_fmt)
    h, w, c = n.in_shape
    x = src
    if n.kernel > 1 or n.stride > 1 or n.pad:
        win = d.new_stream(f"{n.name}_win", Stream("", f.simd, ACT_BITS, n.n_in, f.pixels))
        d.instances.append(Instance(
            "sqz_window", f"win_{n.name}", f"{n.kernel}x{n.kernel}/{n.stride} window, pad {n.pad}",
            n.name, {"IN_H": h, "IN_W": w, "C": c, "LANES": f.simd, "K": n.kernel,
                     "STRIDE": n.stride, "PAD": n.pad, "BITS": ACT_BITS},
            {"s_axis": x}, {"m_axis": win.name}, {"s_axis": f.simd}))
        x = win.name
    files = mem_paths(mem_dir, n.name)
    share: dict[str, object] = {}
    if lq.shared:
        share = {"SHARE_BITS": lq.share_bits, "CODEBOOK_FILE": _q(files["codebook"])}
        d.mem_files.append(files["codebook"])
    d.mem_files += [files["weights"], files["biases"]]
    acc_frac = in_fmt.frac + lq.w_fmt.frac
    mvu = Instance(
        "sqz_mvu", f"mvu_{n.name}",
        f"{n.name}: {f.n_in}x{f.n_out}, PE {f.pe} x SIMD {f.simd}, "
        f"{f.reuse_factor} cycles/pixel, {f.dsps} DSP"
        + (" (two lanes per DSP)" if f.packed else "")
        + (f", {lq.share_bits}-bit shared weights" if lq.shared else ""),
        n.name,
        {"N_IN": f.n_in, "N_OUT": f.n_out, "SIMD": f.simd, "PE": f.pe, "VECTORS": f.pixels,
         "IN_BITS": ACT_BITS, "W_BITS": lq.w_fmt.width, "BIAS_BITS": lq.b_fmt.width,
         "BIAS_SHIFT": acc_frac - lq.b_fmt.frac, "ACC_BITS": lq.acc_fmt.width,
         "SHIFT": acc_frac - lq.out_fmt.frac, "OUT_BITS": lq.out_fmt.width,
         "OUT_FIFO_DEPTH": fifos.mvu(n.name).beats, "DSP_PACK": int(f.packed),
         "WEIGHT_FILE": _q(files["weights"]), "BIAS_FILE": _q(files["biases"]), **share},
        {"s_axis": x}, {"m_axis": out.name}, {} if x != src else {"s_axis": f.simd})
    d.instances.append(mvu)


# ------------------------------------------------------------------------- FIFOs

def _fifo(d: RtlDesign, name: str, layer: str, src: str, depth: int, comment: str) -> Instance:
    s = d.streams[src]
    out = d.new_stream(name.removeprefix("fifo_"), s)
    return Instance("sqz_fifo", name, f"{comment}, {depth} words", layer,
                    {"DATA_WIDTH": s.width, "DEPTH": depth}, {"s_axis": src},
                    {"m_axis": out.name})


def insert_fifos(d: RtlDesign, fifos: FifoPlan) -> RtlDesign:
    """Every block output FIFO (on the layer's stream, before any fork) and every branch
    FIFO (on the one edge into the consumer layer) of the plan."""
    layer_stream = {}
    for inst in d.instances:
        for s in inst.outputs.values():
            layer_stream[inst.layer] = s  # the layer's last block writes its output
    for f in fifos.fifos:
        if f.kind != "output":
            continue
        src = layer_stream[f.producer]
        readers = d.readers(src)
        fifo = _fifo(d, f"fifo_{f.producer}", f.producer, src, f.beats, "FIFO")
        d.insert_after(d.writer(src), fifo)
        for inst, port in readers:
            inst.inputs[port] = fifo.outputs["m_axis"]
        layer_stream[f.producer] = fifo.outputs["m_axis"]
    for f in fifos.fifos:
        if f.kind != "branch":
            continue
        src = layer_stream.get(f.producer, d.in_stream)
        edge = [(i, p) for i, p in d.readers(src) if i.layer == f.consumer]
        if len(edge) != 1:
            raise ValueError(f"FIFO plan: no single edge {f.producer} -> {f.consumer}")
        inst, port = edge[0]
        fifo = _fifo(d, f"fifo_{f.consumer}_in", f.consumer, src, f.beats,
                     f"branch FIFO {f.producer} -> {f.consumer}")
        d.insert_before(inst, fifo)
        inst.inputs[port] = fifo.outputs["m_axis"]
    return d


# ------------------------------------------------------------------------- forks

def insert_forks(d: RtlDesign) -> RtlDesign:
    """A ``sqz_fork`` on every stream with two readers (its first reader in graph order
    takes ``m_axis``, the second ``m_axis_b``)."""
    for s in list(d.streams.values()):
        readers = d.readers(s.name)
        if len(readers) < 2:
            continue
        if len(readers) > 2:
            raise NotImplementedError(f"{s.name}: a stream read by {len(readers)} blocks "
                                      "(sqz_fork has two outputs)")
        hint = s.name.split("_", 1)[1] if s.name.startswith("w") else s.name
        a = d.new_stream(f"{hint}_fa", s)
        b = d.new_stream(f"{hint}_fb", s)
        layers = ", ".join(dict.fromkeys(i.layer for i, _ in readers))
        fork = Instance("sqz_fork", f"fork_{hint}", f"{hint} to {layers}",
                        d.writer(s.name).layer if d.writer(s.name) else hint,
                        {"DATA_WIDTH": s.width}, {"s_axis": s.name},
                        {"m_axis": a.name, "m_axis_b": b.name})
        d.insert_after(d.writer(s.name), fork)
        for (inst, port), out in zip(readers, (a, b), strict=True):
            inst.inputs[port] = out.name
    return d


# ------------------------------------------------------------------ width converters

def insert_dwcs(d: RtlDesign) -> RtlDesign:
    """An ``sqz_dwc`` before every input whose stream has other lanes than it needs."""
    for inst in list(d.instances):
        for port, need in inst.needs.items():
            s = d.streams[inst.inputs[port]]
            if s.lanes == need:
                continue
            big, small = max(s.lanes, need), min(s.lanes, need)
            if big % small:
                raise ValueError(f"{inst.layer}: cannot convert {s.lanes} lanes to {need} "
                                 "lanes (neither divides the other); choose another folding")
            hint = inst.layer
            if inst.module == "sqz_concat":  # two inputs: name the converters apart
                hint += "_a" if port == "s_axis" else "_b"
            out = d.new_stream(f"{hint}_dwc", s, lanes=need)
            d.insert_before(inst, Instance(
                "sqz_dwc", f"dwc_{hint}", f"{s.lanes} -> {need} lanes", inst.layer,
                {"IN_LANES": s.lanes, "OUT_LANES": need, "C": s.channels, "PIXELS": s.pixels},
                {"s_axis": s.name}, {"m_axis": out.name}))
            inst.inputs[port] = out.name
    return d


def build_design(top: str, nodes: list[Node], plan: QuantPlan,
                 folding: dict[str, LayerFolding], fifos: FifoPlan, mem_dir: Path) -> RtlDesign:
    """All passes in order: lower, FIFOs, forks, width converters."""
    d = lower(top, nodes, plan, folding, fifos, mem_dir)
    return insert_dwcs(insert_forks(insert_fifos(d, fifos)))
