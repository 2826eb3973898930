"""Float weights for a spec, and the QKeras model that a quantization plan describes.

The QKeras model is what hls4ml converts. Its weights are the plan's integer weights
scaled to reals, so QKeras' own weight quantizers are the identity on them; its
activation quantizers carry the plan's output formats. Layer names match the graph
(``conv1``, ``fire2_squeeze1x1``, ..., ``<conv>_relu``, ``pool_conv1``, ``gap``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.errors import InputError, InputNotFound
from model.fixed import FixedFormat
from model.graph import Node
from model.quantize import FloatWeights, QuantPlan
from model.spec import NetworkSpec

CAFFE_BGR_MEAN = np.array([104.006, 116.669, 122.679])
INPUT_NAME = "frame"  # hls4ml reserves the layer name 'input'


def fold_mean_into_bias(kernel: np.ndarray, bias: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Bias of a padding-free conv that takes raw pixels instead of ``pixels - mean``.

    ``conv(x - m) = conv(x) - sum_{ky,kx,c} w[ky,kx,c,:] * m[c]`` holds exactly only when no
    zero padding enters a window, which is why conv1 has none.
    """
    shift = np.einsum("hwco,c->o", kernel.astype(np.float64), mean.astype(np.float64))
    return (bias.astype(np.float64) - shift).astype(np.float32)


def random_weights(nodes: list[Node], seed: int) -> FloatWeights:
    """He-normal kernels and small biases, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    out: FloatWeights = {}
    for n in nodes:
        if n.kind != "conv":
            continue
        fan_in = n.n_in
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), (n.kernel, n.kernel, n.in_shape[2],
                                                     n.out_shape[2]))
        b = rng.normal(0.05, 0.05, n.out_shape[2])
        if n.name == "conv1":  # raw 0..255 pixels: keep conv1's outputs at a few units
            w = w / 32.0
        out[n.name] = (w.astype(np.float32), b.astype(np.float32))
    return out


def float_weights(spec: NetworkSpec, nodes: list[Node], cache_dir: Path) -> FloatWeights:
    """Weights keyed by node name, with the Caffe mean folded into conv1 (raw-pixel input)."""
    if spec.weights == "random":
        return random_weights(nodes, spec.seed)
    if spec.weights.endswith(".npz"):
        return file_weights(spec.weights, nodes)
    from model.weights import fetch_squeezenet_v11

    raw = fetch_squeezenet_v11(cache_dir)
    out: FloatWeights = {}
    for n in nodes:
        if n.kind == "conv":
            w, b = raw[n.weight_key]
            out[n.name] = (np.asarray(w, np.float32), np.asarray(b, np.float32))
    w1, b1 = out["conv1"]
    out["conv1"] = (w1, fold_mean_into_bias(w1, b1, CAFFE_BGR_MEAN))
    return out


def file_weights(path: str | Path, nodes: list[Node]) -> FloatWeights:
    """Folded raw-pixel weights saved by ``model.weights.save_weights`` (make train, sqz
    finetune), checked against the network by ``load_weights``: exactly its convs, their
    shapes, a real floating-point dtype and finite values; errors name file and layer."""
    from model.weights import load_weights

    path = Path(path)
    if path.is_dir():
        raise InputError(f"weights file {path} is a directory, not a .npz file")
    if not path.is_file():
        raise InputNotFound(f"weights file not found: {path} (written by make train or "
                            "sqz finetune; relative paths are taken from the current "
                            "directory)")
    expected = {n.name: ((n.kernel, n.kernel, n.in_shape[2], n.out_shape[2]),
                         (n.out_shape[2],))
                for n in nodes if n.kind == "conv"}
    return load_weights(path, expected)


def build_qkeras(spec: NetworkSpec, nodes: list[Node], plan: QuantPlan):
    """The QKeras model of ``plan`` (imports TensorFlow; a few seconds on first call)."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D

    from model.layers import FixedGlobalAvgPool, MaxPool2DCeil

    layers = tf.keras.layers
    x_in = layers.Input((spec.height, spec.width, spec.channels), name=INPUT_NAME)
    t = {"input_1": x_in}
    for n in nodes:
        ins = [t[i] for i in n.inputs]
        lq = plan.layers[n.name]
        if n.kind == "conv":
            # Caffe pads the 3x3 expand convs by one pixel; stride 1 'same' is exactly that.
            padding = "same" if n.pad else "valid"
            if n.pad and (n.stride != 1 or n.pad != n.kernel // 2):
                raise NotImplementedError(f"{n.name}: only stride-1 'same' padding is built")
            # The weights are set already on their grid, so a quantizer is the identity on
            # them; formats QKeras cannot express (negative integer part) go without one.
            conv = QConv2D(
                n.out_shape[2], n.kernel, strides=n.stride, padding=padding, name=n.name,
                kernel_quantizer=_quantizer(lq.w_fmt), bias_quantizer=_quantizer(lq.b_fmt),
            )
            y = conv(ins[0])
            conv.set_weights([lq.w_fmt.to_real(lq.w_q).astype(np.float32),
                              lq.b_fmt.to_real(lq.b_q).astype(np.float32)])
            t[n.name] = QActivation(_activation_quantizer(n.name, lq.out_fmt),
                                    name=n.name + "_relu")(y)
        elif n.kind == "maxpool":
            t[n.name] = MaxPool2DCeil(3, 2, name=n.name)(ins[0])
        elif n.kind == "concat":
            t[n.name] = layers.Concatenate(axis=-1, name=n.name)(ins)
        elif n.kind == "add":
            s = layers.Add(name=n.name + "_sum")(ins)
            t[n.name] = QActivation(_activation_quantizer(n.name, lq.out_fmt), name=n.name)(s)
        elif n.kind == "gap":
            t[n.name] = FixedGlobalAvgPool(lq.out_fmt.width, lq.out_fmt.integer,
                                           name=n.name)(ins[0])
    return tf.keras.Model(x_in, t[nodes[-1].name], name=spec.name.replace(".", "_"))


def _quantizer(fmt: FixedFormat) -> str | None:
    return fmt.qkeras() if fmt.qkeras_expressible else None


def _activation_quantizer(name: str, fmt: FixedFormat) -> str:
    """The QKeras activation quantizer of ``fmt``; activations, unlike the weights (set
    on their grid already), cannot go without one."""
    if not fmt.qkeras_expressible:
        raise InputError(f"{name}: its activations need {fmt.ap()}, which QKeras 0.9.0 "
                         "cannot express (at most 30 integer bits); the weights before it "
                         "are too large for the hls4ml flow")
    return fmt.qkeras()


def keras_output_name(node: Node) -> str:
    """The Keras/hls4ml layer whose output equals the golden value of ``node``."""
    return node.name + "_relu" if node.kind == "conv" else node.name
