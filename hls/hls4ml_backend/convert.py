"""hls4ml conversion: the QKeras model plus the quantization plan -> an io_stream project.

Every layer's precision is set explicitly from the plan (hls4ml's defaults, such as
``ap_fixed<16,6>`` for untyped tensors, do not match the golden arithmetic), the conv
blocks use the Resource strategy with the folding's reuse factors (weights in BRAM ROMs),
and every stream gets the depth of the plan's FIFO policy (``hls.plan.streams``) instead
of H*W.
After conversion the precisions hls4ml actually resolved are checked against the plan,
so a silent override cannot slip through.
"""

from __future__ import annotations

from pathlib import Path

from hls.plan.folding import LayerFolding, hls_reuse_factor
from hls.plan.streams import FifoPlan, fifo_plan
from model.builder import INPUT_NAME, keras_output_name
from model.errors import InputError
from model.graph import Node
from model.paths import HLS_PROJECT_NAME
from model.quantize import QuantPlan
from model.spec import NetworkSpec, check_part

PROJECT_NAME = HLS_PROJECT_NAME


def layer_precisions(nodes: list[Node], plan: QuantPlan) -> dict[str, dict[str, str]]:
    """hls4ml ``Precision`` entries per Keras layer name, from the plan."""
    p: dict[str, dict[str, str]] = {INPUT_NAME: {"result": plan.input_fmt.hls()}}
    for n in nodes:
        lq = plan.layers[n.name]
        if n.kind == "conv":
            p[n.name] = {
                "weight": lq.w_fmt.hls(), "bias": lq.b_fmt.hls(),
                "accum": lq.acc_fmt.hls(), "result": lq.pre_fmt.hls(),
            }
            p[n.name + "_relu"] = {"result": lq.out_fmt.hls()}
            # hls4ml lists a linear activation for a QConv2D without one; it is removed by
            # its optimizer, but typed anyway so nothing falls back to a default precision.
            p[n.name + "_linear"] = {"result": lq.pre_fmt.hls()}
        elif n.kind == "add":
            a, b = (plan.fmt_of(i) for i in n.inputs)
            frac = max(a.frac, b.frac)
            integer = max(a.integer, b.integer) + 1
            p[n.name + "_sum"] = {"result": f"ufixed<{integer + frac},{integer},RND,SAT>"}
            p[n.name] = {"result": lq.out_fmt.hls()}
        elif n.kind == "gap":
            p[n.name] = {"result": lq.out_fmt.hls()}
        else:
            p[n.name] = {"result": lq.out_fmt.hls()}
    return p


def hls_config(model, nodes: list[Node], plan: QuantPlan, folding: dict[str, LayerFolding],
               backend: str, trace: bool = True) -> dict:
    import hls4ml

    cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=backend)
    cfg["Model"]["Strategy"] = "Resource"
    cfg["Model"]["ReuseFactor"] = 1
    precisions = layer_precisions(nodes, plan)
    layer_cfg = cfg["LayerName"]
    unknown = sorted(set(precisions) - set(layer_cfg) - {k for k in precisions
                                                         if k.endswith("_linear")})
    if unknown:
        raise RuntimeError(f"hls4ml config has no entry for layers {unknown}")
    for name, entry in layer_cfg.items():
        if name not in precisions:
            raise RuntimeError(f"hls4ml created layer {name!r} that the plan does not type")
        entry["Precision"] = dict(precisions[name])
        entry["Trace"] = trace
        if name in folding:
            entry["ReuseFactor"] = hls_reuse_factor(folding[name])
            entry["Strategy"] = "Resource"
    return cfg


def convert(spec: NetworkSpec, nodes: list[Node], plan: QuantPlan, model,
            folding: dict[str, LayerFolding], output_dir: Path, backend: str | None = None,
            trace: bool = True, fifos: FifoPlan | None = None):
    """Convert and type-check; returns the hls4ml ModelGraph (not yet written/compiled)."""
    import hls4ml

    from hls.hls4ml_backend.extensions import register_custom_layers
    from hls.hls4ml_backend.sharing import apply_weight_sharing

    register_custom_layers()
    backend = backend or spec.target.backend
    # hls4ml writes the part and the output folder into project.tcl / build_prj.tcl as
    # they are: both are checked here, at the boundary, whatever built the spec.
    check_part("target.part", spec.target.part)
    check_tcl_safe_path(Path(output_dir))
    cfg = hls_config(model, nodes, plan, folding, backend, trace)
    hls_model = hls4ml.converters.convert_from_keras_model(
        model,
        hls_config=cfg,
        output_dir=str(output_dir),
        project_name=PROJECT_NAME,
        backend=backend,
        io_type="io_stream",
        part=spec.target.part,
        clock_period=round(1000.0 / spec.target.clock_mhz, 3),
    )
    check_precisions(hls_model, nodes, plan)
    apply_fifo_depths(hls_model, nodes, fifos or fifo_plan(nodes, folding, plan))
    apply_weight_sharing(hls_model, nodes, plan)
    return hls_model


def check_tcl_safe_path(path: Path) -> Path:
    """A path hls4ml will write into Tcl: no character Tcl substitutes or ends a word on
    inside double quotes ($ [ ] \\ " { }) and no control character."""
    text = str(path.resolve())
    bad = sorted({c for c in text if c in '$[]\\"{}' or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise InputError(f"HLS project folder {text!r} holds {''.join(bad)!r}, which Tcl "
                         "would interpret; use a checkout path without $ [ ] \\ \" { } or "
                         "control characters")
    return path


def _same_type(prec, fmt, modes: bool) -> bool:
    """hls4ml precision == plan format (and AP_RND/AP_SAT where a value is computed)."""
    same = (int(prec.width), int(prec.integer), bool(prec.signed)) == (
        fmt.width, fmt.integer, fmt.signed)
    if modes:
        same = same and str(prec.rounding_mode) == "RND" and str(prec.saturation_mode) == "SAT"
    return same


def check_precisions(hls_model, nodes: list[Node], plan: QuantPlan) -> None:
    """Raise if hls4ml resolved any planned tensor to another type than the plan's.

    Outputs must also carry AP_RND/AP_SAT (they are computed); weights and biases only
    need the grid (they are constants already on it).
    """
    expected = {}
    for n in nodes:
        lq = plan.layers[n.name]
        expected[keras_output_name(n)] = lq.out_fmt
        if n.kind == "conv":
            expected[n.name] = lq.pre_fmt
    wrong = []
    for name, want in expected.items():
        layer = hls_model.graph.get(name)
        if layer is None:
            wrong.append(f"{name}: missing from the hls4ml graph")
            continue
        prec = layer.get_output_variable().type.precision
        if not _same_type(prec, want, modes=True):
            wrong.append(f"{name}: hls4ml has {prec.definition_cpp()}, plan says {want.ap()}")
        if name in plan.layers and plan.layers[name].kind == "conv":
            lq = plan.layers[name]
            for key, fmt in (("weight", lq.w_fmt), ("bias", lq.b_fmt)):
                wp = layer.get_weights(key).type.precision
                if not _same_type(wp, fmt, modes=False):
                    wrong.append(f"{name}.{key}: hls4ml has {wp.definition_cpp()}, "
                                 f"plan says {fmt.ap()}")
    if wrong:
        raise RuntimeError("hls4ml types differ from the quantization plan:\n  "
                           + "\n  ".join(wrong))


def stream_edges(hls_model, nodes: list[Node]) -> dict[str, tuple[str, str | None]]:
    """hls4ml stream variable name -> (producer block, consumer block or None).

    A block's output stream (its last Keras layer) maps to (block, None); a copy made by
    hls4ml's ``Clone`` layer where a stream forks maps to (block, the block that reads the
    copy, past any layer hls4ml inserts in front of it such as ``ZeroPadding2D``). Streams
    inside a block (a conv's pre-activation, its padding) and the network input map to
    ("", None): the plan holds no FIFO there.
    """
    blocks = {keras_output_name(n): n.name for n in nodes}
    names = {n.name for n in nodes}
    layers = list(hls_model.get_layers())
    readers: dict[str, list] = {}
    for layer in layers:
        for i in layer.inputs:
            readers.setdefault(i, []).append(layer)

    def reading_block(out_name: str) -> str:
        layer = readers[out_name][0]
        while layer.name not in names:  # inserted in front of the block (padding)
            layer = readers[layer.outputs[0]][0]
        return layer.name

    edges: dict[str, tuple[str, str | None]] = {}
    for layer in layers:
        for out_name in layer.outputs:
            var = layer.get_output_variable(out_name)
            if layer.class_name == "Clone":
                edges[var.name] = (blocks[layer.inputs[0]], reading_block(out_name))
            elif layer.name in blocks:
                edges[var.name] = (blocks[layer.name], None)
            else:
                edges[var.name] = ("", None)
    return edges


def apply_fifo_depths(hls_model, nodes: list[Node], fifos: FifoPlan) -> dict[str, int]:
    """Set every stream's depth pragma from the FIFO plan; returns {variable: depth}."""
    edges = stream_edges(hls_model, nodes)
    depths = {}
    for layer in hls_model.get_layers():
        for var in layer.get_variables():
            if getattr(var, "pragma", None) and var.pragma[0] == "stream":
                producer, consumer = edges.get(var.name, ("", None))
                depth = fifos.hls_depth(producer, consumer)
                var.pragma = ("stream", depth)
                depths[var.name] = depth
    return depths
