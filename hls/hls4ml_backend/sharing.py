"""Weight sharing in the hls4ml project: index ROMs plus a per-layer codebook.

hls4ml has no notion of shared weights, so after conversion each conv layer the plan
marks as shared (``LayerQuant.shared``, from ``spec.compression.share_bits``) is rewritten
inside the hls4ml graph, before anything is written:

- its weight variable keeps hls4ml's own element order (whatever transposition the
  Resource strategy applied) but holds the codebook index of every weight, typed
  ``ap_uint<share_bits>``: the ROM hls4ml builds from it is ``share_bits`` wide instead
  of 8;
- a second weight variable ``cb<N>`` holds the codebook (``2**share_bits`` weights of the
  layer's weight format), written, included and loaded like any other hls4ml weight;
- the layer's multiplication uses ``nnet::product::sqz_codebook`` from
  ``firmware/nnet_sqz_shared.h`` (``a * cb[w]``), so the products, and everything after
  them, are the ones of the dense layer: the golden model does not change.
"""

from __future__ import annotations

import numpy as np

from model.graph import Node
from model.paths import FIRMWARE
from model.quantize import QuantPlan

SHARED_HEADER = FIRMWARE / "nnet_sqz_shared.h"
_INCLUDE = "nnet_utils/nnet_sqz_shared.h"
_DEFAULT_PRODUCT = "using product = nnet::product::mult<x_T, y_T>;"


def _hls_fixed(fmt):
    from hls4ml.model.types import FixedPrecisionType

    return FixedPrecisionType(width=fmt.width, integer=fmt.integer, signed=fmt.signed)


def codebook_indices(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """The index of every integer in ``values`` within ``codebook`` (first match).

    Raises if a value has no entry: the layer's weights are not the ones the codebook
    was built from.
    """
    first: dict[int, int] = {}
    for i, v in enumerate(codebook.tolist()):
        first.setdefault(int(v), i)
    flat = np.asarray(values, dtype=np.int64).ravel()
    missing = sorted({int(v) for v in np.unique(flat)} - set(first))
    if missing:
        raise ValueError(f"weights {missing[:5]} are not in the codebook")
    lut = np.vectorize(first.__getitem__, otypes=[np.int64])
    return lut(flat).reshape(np.shape(values)) if flat.size else flat.reshape(np.shape(values))


def apply_weight_sharing(hls_model, nodes: list[Node], plan: QuantPlan) -> list[str]:
    """Rewrite every shared conv layer of ``hls_model`` (see the module doc); names done."""
    import hls4ml
    from hls4ml.backends.fpga.fpga_types import APTypeConverter
    from hls4ml.backends.vivado.passes.transform_types import TransformTypes
    from hls4ml.model.types import IntegerPrecisionType

    shared = [n for n in nodes if n.kind == "conv" and plan.layers[n.name].shared]
    if not shared:
        return []
    for name in ("Vivado", "Vitis"):
        hls4ml.backends.get_backend(name).register_source(SHARED_HEADER)
    done = []
    for n in shared:
        lq = plan.layers[n.name]
        layer = hls_model.graph.get(n.name)
        if layer is None:
            raise RuntimeError(f"{n.name}: missing from the hls4ml graph")
        cfg = layer.get_attr("config_cpp")
        if cfg is None or cfg.count(_DEFAULT_PRODUCT) != 1:
            raise RuntimeError(f"{n.name}: expected one '{_DEFAULT_PRODUCT}' in hls4ml's "
                               "layer config; this hls4ml version lays it out differently")
        w = layer.weights["weight"]
        scale = 2.0 ** lq.w_fmt.frac
        ints = np.rint(np.asarray(w.data, dtype=np.float64) * scale)
        if not np.array_equal(ints / scale, np.asarray(w.data, dtype=np.float64)):
            raise RuntimeError(f"{n.name}: hls4ml's weights are off the {lq.w_fmt.ap()} grid")
        if not np.array_equal(np.sort(ints, axis=None), np.sort(lq.w_q, axis=None)):
            raise RuntimeError(f"{n.name}: hls4ml's weights are not the plan's weights")
        idx = codebook_indices(ints, lq.w_codebook)
        w.data = idx
        w.min, w.max = int(idx.min()), int(idx.max())
        # The layer's variables are already in hls4ml's backend (HLS/AP) form: convert the
        # new index precision and the codebook variable the way its TransformTypes pass does.
        w.update_precision(APTypeConverter().convert(
            IntegerPrecisionType(width=lq.share_bits, signed=False)))
        layer.add_weights_variable(name="codebook", var_name="cb{index}",
                                   type_name="codebook{index}_t", precision=_hls_fixed(lq.w_fmt),
                                   data=lq.w_codebook.astype(np.float64) / scale)
        TransformTypes().transform(hls_model, layer)
        cb = layer.weights["codebook"]
        product = (f"using product = nnet::product::sqz_codebook<{cb.type.name}, "
                   f"{cb.name}>::mult<x_T, y_T>;")
        layer.set_attr("config_cpp", cfg.replace(_DEFAULT_PRODUCT, product))
        includes = list(layer.get_attr("include_header") or [])
        if _INCLUDE not in includes:
            layer.set_attr("include_header", includes + [_INCLUDE])
        done.append(n.name)
    return done
