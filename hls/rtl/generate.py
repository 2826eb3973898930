"""Open RTL generator: network graph + quantization plan + folding -> Verilog top + ROM files.

The top instantiates the hand-written library in ``firmware/rtl`` (one block per layer),
built by the passes of ``hls.rtl.passes`` with the FIFOs of the plan's FIFO policy
(``hls.plan.streams.fifo_plan``), and is rendered from one template file
(``firmware/rtl/sqz_top.v.j2``) in a single pass; weights and biases go to ``$readmemh``
files under the output directory, referenced by absolute path.
"""

from __future__ import annotations

from pathlib import Path

from hls.plan.folding import LayerFolding
from hls.plan.streams import FifoPlan, fifo_plan
from hls.rtl.mem import pack_bias_hex, pack_codebook_hex, pack_indices_hex, pack_weights_hex
from hls.rtl.passes import RtlDesign, build_design, mem_paths
from model.graph import Node
from model.locks import hold
from model.paths import RTL_DIR
from model.quantize import QuantPlan

TEMPLATE = "sqz_top.v.j2"


def write_memories(nodes: list[Node], plan: QuantPlan, folding: dict[str, LayerFolding],
                   mem_dir: Path) -> None:
    """The ``$readmemh`` images of every conv: weights (or shared-weight indices and the
    codebook) in the PE x SIMD layout of ``sqz_mvu``, and biases."""
    mem_dir.mkdir(parents=True, exist_ok=True)
    for n in nodes:
        if n.kind != "conv":
            continue
        f, lq, files = folding[n.name], plan.layers[n.name], mem_paths(mem_dir, n.name)
        if lq.shared:
            pack_indices_hex(lq.w_idx.reshape(-1, lq.w_idx.shape[-1]), f.simd, f.pe,
                             lq.share_bits, files["weights"])
            pack_codebook_hex(lq.w_codebook, lq.share_bits, lq.w_fmt.width, files["codebook"])
        else:
            pack_weights_hex(lq.w_q.reshape(-1, lq.w_q.shape[-1]), f.simd, f.pe,
                             files["weights"])
        pack_bias_hex(lq.b_q, f.pe, lq.b_fmt.width, files["biases"])


def render_top(design: RtlDesign, nodes: list[Node], plan: QuantPlan, source: str = "",
               description: str = "", debug_counters: bool = False) -> str:
    """The Verilog text of the top (``debug_counters`` adds per-stream counters for the
    throughput debugger)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(RTL_DIR)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    out_fmt = plan.layers[nodes[-1].name].out_fmt
    s_in, s_out = design.streams[design.in_stream], design.streams[design.out_stream]
    return env.get_template(TEMPLATE).render(
        top=design.top, source=source, description=description, wires=design.wires,
        instances=design.instances, in_lanes=s_in.lanes, in_width=s_in.width,
        out_lanes=s_out.lanes, out_width=s_out.width, out_bits=out_fmt.width,
        out_format=out_fmt.ap(), classes=nodes[-1].out_shape[2],
        debug_counters=debug_counters)


def generate_rtl(top: str, nodes: list[Node], plan: QuantPlan,
                 folding: dict[str, LayerFolding], out_dir: Path,
                 source: str = "", description: str = "",
                 fifos: FifoPlan | None = None, debug_counters: bool = False) -> RtlDesign:
    """Write ``<out_dir>/<top>.v`` and the ROM files; returns the design description."""
    out_dir = hold(out_dir)   # one run at a time writes this folder (model.locks)
    mem_dir = out_dir / "mem"
    fifos = fifos or fifo_plan(nodes, folding, plan)
    design = build_design(top, nodes, plan, folding, fifos, mem_dir)
    write_memories(nodes, plan, folding, mem_dir)
    text = render_top(design, nodes, plan, source, description, debug_counters)
    (out_dir / f"{top}.v").write_text(text)
    return design
