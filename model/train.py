"""Training of any network spec: float or quantization-aware, deterministic and resumable.

The trainable Keras model has exactly the geometry of :mod:`model.graph` (conv1 without
padding, 'same' 3x3 expand convs, Caffe ceil-mode 3x3/2 max-pools via
:class:`model.layers.MaxPool2DCeil`, concatenation, optional simple bypass, global average
pool) plus what training needs and the hardware does not:

- a fixed input scale of 1/256 (layer ``input_scale``): the inputs stay the raw 0..255
  pixels of the camera path, and the scale is a power of two, so folding it into conv1's
  kernel afterwards is exact. (Letting conv1's BatchNorm absorb the raw scale would work
  for the forward pass, but conv1's kernel gradient would be ~256x larger than every other
  layer's, which plain SGD at one learning rate handles badly.)
- BatchNorm after every conv, before the ReLU (``<conv>_bn``); without it this network
  does not learn at the paper's learning rate (see ../shared/DESIGN.md).
- 50% dropout in front of conv10 (the paper's dropout after fire9), training only.

:func:`fold_batchnorm` then folds every BatchNorm (and the input scale) into the preceding
conv: ``w' = w * g``, ``b' = (b - mean) * g + beta`` with ``g = gamma / sqrt(var + eps)``,
giving the plain ``{node name: (kernel, bias)}`` weights the rest of the project uses
(``model.quantize.calibrate``, the golden model, hls4ml, the RTL). The quantization-aware
variant (``quantized=True``) uses QKeras ``QConv2D`` with ``quantized_bits(8, ...)`` weight
quantizers and ``quantized_relu(8, I)`` activations, trained end to end through QKeras'
straight-through estimators; its formats are coarse (the exact per-layer formats come
afterwards from calibration of the folded weights).

:func:`train` is deterministic for a seed (``tf.keras.utils.set_random_seed`` and op
determinism; the data order of epoch e is a permutation drawn from ``(seed, e)``, dropout
masks come from a stateless generator keyed by a step counter that is part of the model),
checkpoints model and optimizer after every epoch and resumes from the last finished epoch
with the same result as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.errors import InputError
from model.graph import Node
from model.quantize import FloatWeights
from model.spec import NetworkSpec

INPUT_SCALE = 2.0**-8          # raw pixels 0..255 -> [0, 1); a power of two: exact fold
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9              # short schedules: moving statistics settle within ~50 steps
DEFAULT_LR = {"sgd": 0.04, "adam": 1e-3}   # 0.04: the paper's (SGD, momentum 0.9)
SCHEDULES = ("linear", "constant")
OPTIMIZERS = ("sgd", "adam")
STATE_FILE = "state.json"

_DETERMINISM_ON = False


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _make_step_dropout():
    tf = _tf()

    class StepDropout(tf.keras.layers.Layer):
        """Dropout whose mask at training step t is ``stateless_uniform(seed=(seed, t))``.

        The step counter is a (non-trainable) weight of the layer, so it is checkpointed with
        the model: a resumed run draws exactly the masks an uninterrupted one would.
        """

        def __init__(self, rate: float, seed: int = 0, **kwargs):
            super().__init__(**kwargs)
            self.rate = float(rate)
            self.seed = int(seed)

        def build(self, input_shape):
            self.step = self.add_weight("step", shape=(), dtype=tf.int64, trainable=False,
                                        initializer="zeros")
            super().build(input_shape)

        def call(self, inputs, training=None):
            if not training or self.rate == 0.0:
                return inputs
            seed = tf.stack([tf.constant(self.seed, tf.int64), self.step])
            self.step.assign_add(1)
            keep = tf.random.stateless_uniform(tf.shape(inputs), seed) >= self.rate
            return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))

        def get_config(self):
            return {**super().get_config(), "rate": self.rate, "seed": self.seed}

    return StepDropout


def enable_determinism(seed: int) -> None:
    """Seed Python, numpy and TensorFlow and make TensorFlow's ops deterministic."""
    tf = _tf()
    global _DETERMINISM_ON
    tf.keras.utils.set_random_seed(int(seed))
    if not _DETERMINISM_ON:
        tf.config.experimental.enable_op_determinism()
        _DETERMINISM_ON = True


def _weight_quantizer(integer: int) -> str:
    return f"quantized_bits(8,{integer},alpha=1)"


def build_trainable(spec: NetworkSpec, nodes: list[Node], weights: FloatWeights | None = None,
                    quantized: bool = False, act_integer: int | dict[str, int] = 3,
                    weight_integer: int | dict[str, int] | None = None, dropout: float = 0.5,
                    seed: int | None = None):
    """The Keras model of ``nodes`` with BatchNorm, dropout and the 1/256 input scale.

    Input: float (or uint8) raw pixels (batch, H, W, C) 0..255; output: the logits of the
    global average pool (batch, classes). ``weights`` (plain ``{name: (kernel, bias)}`` for
    raw-pixel input) initialise the convs, with every BatchNorm the identity in inference
    mode (gamma 1, beta 0, mean 0, var 1 - eps); without them the kernels are He-normal
    from ``seed``. ``quantized`` builds QKeras ``QConv2D`` (``quantized_bits(8, I_w)``) and
    ``quantized_relu(8, I_a)`` activations; ``act_integer`` / ``weight_integer`` give the
    integer bits, one for all layers or per conv name (weights default: the smallest that
    holds the given kernel, else 0, i.e. [-1, 1)).
    """
    tf = _tf()
    layers = tf.keras.layers
    seed = spec.seed if seed is None else seed
    if quantized:
        from qkeras import QActivation, QConv2D
    from model.layers import MaxPool2DCeil

    def per_layer(value, name, default):
        if isinstance(value, dict):
            return value.get(name, default)
        return default if value is None else value

    x_in = layers.Input((spec.height, spec.width, spec.channels), name="frame")
    t = {"input_1": layers.Rescaling(INPUT_SCALE, name="input_scale")(x_in)}
    convs = [n for n in nodes if n.kind == "conv"]
    for n in nodes:
        ins = [t[i] for i in n.inputs]
        if n.kind == "conv":
            if n.pad and (n.stride != 1 or n.pad != n.kernel // 2):
                raise NotImplementedError(f"{n.name}: only stride-1 'same' padding is built")
            src = ins[0]
            if n.name == convs[-1].name and dropout > 0:
                src = _make_step_dropout()(dropout, seed=seed + 7919, name="dropout")(src)
            init = tf.keras.initializers.HeNormal(seed=seed * 1000 + convs.index(n))
            kw = {"strides": n.stride, "padding": "same" if n.pad else "valid", "name": n.name,
                      "kernel_initializer": init, "bias_initializer": "zeros"}
            if quantized:
                w_default = 0
                if weights is not None:
                    from model.quantize import weight_format

                    k = weights[n.name][0] / (INPUT_SCALE if n.name == "conv1" else 1.0)
                    w_default = max(weight_format(k, 8).integer - 1, 0)
                wi = per_layer(weight_integer, n.name, w_default)
                y = QConv2D(n.out_shape[2], n.kernel, kernel_quantizer=_weight_quantizer(wi),
                            **kw)(src)
            else:
                y = layers.Conv2D(n.out_shape[2], n.kernel, **kw)(src)
            y = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                          name=n.name + "_bn")(y)
            if quantized:
                ai = per_layer(act_integer, n.name, 3)
                t[n.name] = QActivation(f"quantized_relu(8,{ai})", name=n.name + "_relu")(y)
            else:
                t[n.name] = layers.ReLU(name=n.name + "_relu")(y)
        elif n.kind == "maxpool":
            t[n.name] = MaxPool2DCeil(3, 2, name=n.name)(ins[0])
        elif n.kind == "concat":
            t[n.name] = layers.Concatenate(axis=-1, name=n.name)(ins)
        elif n.kind == "add":
            t[n.name] = layers.Add(name=n.name)(ins)
        elif n.kind == "gap":
            t[n.name] = layers.GlobalAveragePooling2D(name=n.name)(ins[0])
        else:
            raise NotImplementedError(f"{n.name}: unknown block kind {n.kind!r}")
    model = tf.keras.Model(x_in, t[nodes[-1].name], name=spec.name.replace(".", "_") + "_train")
    if weights is not None:
        set_plain_weights(model, nodes, weights)
    return model


def set_plain_weights(model, nodes: list[Node], weights: FloatWeights) -> None:
    """Load plain (raw-pixel) conv weights; every BatchNorm becomes the identity."""
    for n in nodes:
        if n.kind != "conv":
            continue
        k, b = weights[n.name]
        if n.name == "conv1":
            k = np.asarray(k, np.float64) / INPUT_SCALE  # exact: a power of two
        model.get_layer(n.name).set_weights([np.asarray(k, np.float32),
                                             np.asarray(b, np.float32)])
        c = n.out_shape[2]
        model.get_layer(n.name + "_bn").set_weights([
            np.ones(c, np.float32), np.zeros(c, np.float32), np.zeros(c, np.float32),
            np.full(c, 1.0 - BN_EPSILON, np.float32)])


def init_bn_from_data(model, nodes: list[Node], x: np.ndarray) -> None:
    """Data-dependent identity BatchNorm: on ``x``, every BN is close to the identity in
    training mode too, and exactly the identity in inference mode.

    With per-channel mean m and variance v of the conv output on ``x``: moving mean m,
    moving variance v, gamma = sqrt(v + eps), beta = m. Inference then gives
    ``(z - m) / sqrt(v + eps) * sqrt(v + eps) + m = z``; training (batch statistics close
    to m, v) starts near the same function.
    """
    tf = _tf()
    convs = [n for n in nodes if n.kind == "conv"]
    probe = tf.keras.Model(model.input, [model.get_layer(n.name).output for n in convs])
    outs = probe.predict(x, batch_size=128, verbose=0)
    if len(convs) == 1:  # a one-output model returns the array itself, not a list
        outs = [outs]
    for n, z in zip(convs, outs, strict=True):
        z = z.reshape(-1, z.shape[-1]).astype(np.float64)
        m, v = z.mean(axis=0), z.var(axis=0)
        model.get_layer(n.name + "_bn").set_weights([
            np.sqrt(v + BN_EPSILON).astype(np.float32), m.astype(np.float32),
            m.astype(np.float32), v.astype(np.float32)])


def fold_batchnorm(model, nodes: list[Node]) -> FloatWeights:
    """Plain conv weights {name: (kernel (kh, kw, cin, cout), bias)} of the trained model.

    Each BatchNorm folds into its conv: ``w' = w * g``, ``b' = (b - mean) * g + beta`` with
    ``g = gamma / sqrt(var + eps)``; the 1/256 input scale folds into conv1's kernel, so the
    result takes raw 0..255 pixels. A QKeras conv contributes its quantized kernel (what the
    quantization-aware training saw). In float64, returned as float32.
    """
    out: FloatWeights = {}
    for n in nodes:
        if n.kind != "conv":
            continue
        conv = model.get_layer(n.name)
        k, b = (np.asarray(v, np.float64) for v in conv.get_weights())
        quantizer = getattr(conv, "kernel_quantizer_internal", None)
        if quantizer is not None:
            k = np.asarray(quantizer(k.astype(np.float32)), np.float64)
        bn = model.get_layer(n.name + "_bn")
        gamma, beta, mean, var = (np.asarray(v, np.float64) for v in bn.get_weights())
        g = gamma / np.sqrt(var + bn.epsilon)
        k = k * g
        b = (b - mean) * g + beta
        if n.name == "conv1":
            k = k * INPUT_SCALE
        out[n.name] = (k.astype(np.float32), b.astype(np.float32))
    return out


# ------------------------------------------------------------------------------ training


@dataclass
class TrainResult:
    model: object                       # the Keras model (BatchNorm not folded)
    weights: FloatWeights               # folded plain weights
    history: list[dict] = field(default_factory=list)   # one dict per finished epoch
    epochs_done: int = 0
    resumed_from: int = 0               # epochs restored from a checkpoint
    seconds: float = 0.0                # training time of this call


def _fingerprint(spec: NetworkSpec, x: np.ndarray, y: np.ndarray, settings: dict) -> str:
    h = hashlib.sha256()
    h.update(repr(spec).encode())
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(repr((x.shape, str(x.dtype))).encode())
    h.update(memoryview(np.ascontiguousarray(x)).cast("B"))
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def _make_optimizer(tf, name: str, schedule: str, lr: float, total_steps: int):
    if schedule == "linear":  # the paper: decreased linearly (to zero at the last step)
        rate = tf.keras.optimizers.schedules.PolynomialDecay(
            lr, decay_steps=max(total_steps, 1), end_learning_rate=0.0, power=1.0)
    else:
        rate = lr
    if name == "sgd":
        return tf.keras.optimizers.SGD(rate, momentum=0.9)
    return tf.keras.optimizers.Adam(rate)


def train(spec: NetworkSpec, nodes: list[Node], x: np.ndarray, y: np.ndarray,
          x_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
          epochs: int = 2, batch_size: int = 64, lr_schedule: str = "linear",
          lr: float | None = None, optimizer: str = "sgd", seed: int | None = None,
          checkpoint_dir: str | Path | None = None, resume: bool = True,
          quantized: bool = False, weights: FloatWeights | None = None,
          act_integer: int | dict[str, int] = 3, dropout: float = 0.5,
          stop_after: int | None = None, verbose: int | None = None,
          masks: dict[str, np.ndarray] | None = None,
          temperature: float | None = None,
          log: Callable[[str], None] = print) -> TrainResult:
    """Train the network of ``spec`` on uint8 images ``x`` (N, H, W, C) with labels ``y``.

    SGD with momentum 0.9 and the paper's learning rate 0.04 decreasing linearly to zero
    (``lr_schedule='linear'``), or Adam (default lr 1e-3), constant or linear. ``weights``
    starts from given plain weights (see :func:`finetune`). With ``checkpoint_dir`` the
    model and optimizer are saved after every epoch; with ``resume`` a run with the same
    spec, data and settings continues from the last finished epoch (a finished run is just
    reloaded), others start afresh. ``stop_after`` ends this call after that many epochs in
    total (the schedule still spans ``epochs``): an interruption on purpose. ``masks``
    (``{conv name: bool array shaped like its kernel}``, False = pruned) keep pruned
    weights at zero: they are re-zeroed after every optimizer step (Deep Compression's
    retraining of a pruned network). With ``temperature``, ``y`` holds a teacher's logits
    (N, classes) instead of labels and the loss is knowledge distillation (Hinton et al.):
    T^2 times the KL divergence of the student's softmax(logits / T) from the teacher's;
    the reported metric is then top-1 agreement with the teacher.
    """
    tf = _tf()
    if lr_schedule not in SCHEDULES:
        raise InputError(f"lr_schedule must be one of {SCHEDULES}, got {lr_schedule!r}")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    x = np.asarray(x)
    want = (spec.height, spec.width, spec.channels)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != want:
        raise ValueError(f"training images must be uint8 (N, {want[0]}, {want[1]}, {want[2]}),"
                         f" got {x.dtype} {x.shape}")
    if temperature is not None:
        y = np.asarray(y, np.float32)
        if y.shape != (x.shape[0], spec.classes) or not np.all(np.isfinite(y)):
            raise ValueError(f"teacher logits must be finite (N, {spec.classes}) floats, got "
                             f"{y.shape}")
        if not temperature > 0:
            raise InputError(f"temperature must be > 0, got {temperature}")
    else:
        y = np.asarray(y, np.int64)
        if y.shape != (x.shape[0],) or (y.size and (y.min() < 0 or y.max() >= spec.classes)):
            raise ValueError(f"labels must be (N,) integers in 0..{spec.classes - 1}")
    if epochs < 1 or batch_size < 1 or x.shape[0] == 0:
        raise InputError("need epochs >= 1, batch_size >= 1 and at least one image")
    seed = spec.seed if seed is None else int(seed)
    lr = DEFAULT_LR[optimizer] if lr is None else float(lr)
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose
    steps_per_epoch = -(-x.shape[0] // batch_size)
    settings = {"epochs": epochs, "batch_size": batch_size, "schedule": lr_schedule, "lr": lr,
                    "optimizer": optimizer, "seed": seed, "quantized": quantized,
                    "dropout": dropout,
                    "act_integer": act_integer, "start": _weights_digest(weights),
                    "masks": _masks_digest(masks)}
    if temperature is not None:
        settings["temperature"] = float(temperature)

    enable_determinism(seed)
    model = build_trainable(spec, nodes, weights, quantized=quantized, act_integer=act_integer,
                            dropout=dropout, seed=seed)
    if weights is not None:
        sample = x[np.random.default_rng([seed, 1 << 20]).permutation(x.shape[0])[:512]]
        init_bn_from_data(model, nodes, sample)
    callbacks = []
    if masks:
        callbacks.append(_keep_pruned(tf, model, nodes, masks))
    opt = _make_optimizer(tf, optimizer, lr_schedule, lr, epochs * steps_per_epoch)
    if temperature is not None:
        model.compile(optimizer=opt, loss=_distillation_loss(tf, float(temperature)),
                      metrics=[_teacher_agreement(tf)])
    else:
        model.compile(optimizer=opt,
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    opt.build(model.trainable_variables)  # slots exist before a restore fills them
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt)

    start, history = 0, []
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    fingerprint = _fingerprint(spec, x, y, settings) if ckpt_dir is not None else ""
    if ckpt_dir is not None:
        state = _read_state(ckpt_dir)
        if resume and state and state.get("fingerprint") == fingerprint:
            ckpt.read(str(ckpt_dir / state["checkpoint"])).assert_consumed()
            start, history = int(state["epoch"]), list(state["history"])
            log(f"resumed from {ckpt_dir / state['checkpoint']} (epoch {start}/{epochs})")
        elif state:
            why = "resume disabled" if not resume else "different spec, data or settings"
            log(f"ignoring the checkpoint in {ckpt_dir} ({why}); starting afresh")
            for old in [*ckpt_dir.glob("epoch-*"), ckpt_dir / STATE_FILE]:
                old.unlink(missing_ok=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    stop = epochs if stop_after is None else min(epochs, int(stop_after))
    t0 = time.perf_counter()
    val = (x_val, np.asarray(y_val, np.int64)) if x_val is not None else None
    for epoch in range(start, stop):
        order = np.random.default_rng([seed, epoch]).permutation(x.shape[0])
        if verbose:
            log(f"epoch {epoch + 1}/{epochs}")
        h = model.fit(x[order], y[order], batch_size=batch_size, epochs=1, shuffle=False,
                      validation_data=val, verbose=verbose, callbacks=callbacks)
        record = {k: float(v[-1]) for k, v in h.history.items()}
        record["epoch"] = epoch + 1
        history.append(record)
        if ckpt_dir is not None:
            name = f"epoch-{epoch + 1:04d}"
            ckpt.write(str(ckpt_dir / name))
            _write_state(ckpt_dir, {"epoch": epoch + 1, "epochs": epochs,
                                    "checkpoint": name, "fingerprint": fingerprint,
                                    "settings": settings, "history": history})
            for old in ckpt_dir.glob("epoch-*"):
                if not old.name.startswith(name):
                    old.unlink()
    return TrainResult(model, fold_batchnorm(model, nodes), history, max(start, stop), start,
                       time.perf_counter() - t0)


def _distillation_loss(tf, t: float):
    """T^2 KL(softmax(teacher / T) || softmax(student / T)), per example."""
    def distillation(teacher, student):
        p = tf.nn.softmax(teacher / t)
        return t * t * tf.reduce_sum(
            p * (tf.nn.log_softmax(teacher / t) - tf.nn.log_softmax(student / t)), axis=-1)
    return distillation


def _teacher_agreement(tf):
    def agreement(teacher, student):
        return tf.cast(tf.equal(tf.argmax(teacher, -1), tf.argmax(student, -1)), tf.float32)
    return agreement


def _keep_pruned(tf, model, nodes: list[Node], masks: dict[str, np.ndarray]):
    """A callback that multiplies every masked conv kernel by its mask after each step."""
    pairs = []
    for n in nodes:
        if n.kind != "conv" or n.name not in masks:
            continue
        kernel = model.get_layer(n.name).kernel
        m = np.asarray(masks[n.name], dtype=bool)
        if m.shape != tuple(kernel.shape):
            raise ValueError(f"{n.name}: mask shape {m.shape} differs from the kernel's "
                             f"{tuple(kernel.shape)}")
        pairs.append((kernel, tf.constant(m, dtype=kernel.dtype)))
    unknown = sorted(set(masks) - {n.name for n in nodes if n.kind == "conv"})
    if unknown:
        raise ValueError(f"masks for unknown conv layers: {', '.join(unknown)}")

    def apply(*_args) -> None:
        for kernel, m in pairs:
            kernel.assign(kernel * m)

    apply()  # the starting weights already obey the masks
    return tf.keras.callbacks.LambdaCallback(on_train_batch_end=apply)


def _masks_digest(masks: dict[str, np.ndarray] | None) -> str:
    if not masks:
        return "none"
    h = hashlib.sha256()
    for k in sorted(masks):
        h.update(k.encode())
        h.update(np.packbits(np.asarray(masks[k], dtype=bool)).tobytes())
    return h.hexdigest()[:16]


def _weights_digest(weights: FloatWeights | None) -> str:
    if weights is None:
        return "random"
    h = hashlib.sha256()
    for name in sorted(weights):
        for a in weights[name]:
            h.update(name.encode())
            h.update(np.ascontiguousarray(a, np.float32).tobytes())
    return h.hexdigest()[:16]


def _read_state(ckpt_dir: Path) -> dict | None:
    path = ckpt_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except ValueError:
        return None
    if not (ckpt_dir / (state.get("checkpoint", "?") + ".index")).is_file():
        return None
    return state


def _write_state(ckpt_dir: Path, state: dict) -> None:
    tmp = ckpt_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, default=str))
    tmp.replace(ckpt_dir / STATE_FILE)


def finetune(spec: NetworkSpec, nodes: list[Node], weights: FloatWeights, x: np.ndarray,
             y: np.ndarray, lr: float, **kwargs) -> TrainResult:
    """Fine-tune given plain weights (e.g. the pretrained v1.1) on labelled data.

    The same loop as :func:`train`, starting from ``weights`` with data-dependent identity
    BatchNorms (:func:`init_bn_from_data`): the starting model in inference mode is exactly
    the given network. Pass a small ``lr`` (pretrained nets: e.g. 1e-4 with Adam or 1e-3
    with SGD); the default schedule is constant. With ``quantized=True`` and no
    ``act_integer``, the activation formats come from calibrating the given weights on 32
    training images, and the weight formats from the given kernels.
    """
    kwargs.setdefault("lr_schedule", "constant")
    if kwargs.get("quantized") and "act_integer" not in kwargs:
        # Activation formats of the given network, from calibration on training images.
        from model.quantize import calibrate

        seed = spec.seed if kwargs.get("seed") is None else int(kwargs["seed"])
        pick = np.random.default_rng([seed, 1 << 21]).permutation(len(x))[:32]
        plan = calibrate(nodes, weights, list(np.asarray(x)[pick]), spec)
        kwargs["act_integer"] = {n.name: plan.layers[n.name].out_fmt.integer
                                 for n in nodes if n.kind == "conv"}
    return train(spec, nodes, x, y, weights=weights, lr=lr, **kwargs)


# ---------------------------------------------------------------------------- evaluation


@dataclass
class QuantEval:
    float_accuracy: float
    int8_accuracy: float
    agreement: float            # fraction of images whose top-1 class is the same
    images: int
    plan: object                # the calibrated model.quantize.QuantPlan


def evaluate_quantized(spec: NetworkSpec, nodes: list[Node], weights: FloatWeights,
                       x: np.ndarray, y: np.ndarray, calib_frames) -> QuantEval:
    """Float (``float_forward``) and 8-bit (``run_golden``, bit-exact) top-1 accuracy.

    The quantization plan is calibrated with ``model.quantize.calibrate`` on
    ``calib_frames`` (uint8 frames; e.g. a few dozen training images).
    """
    from model.quantize import calibrate, float_forward, run_golden

    frames = [np.asarray(f) for f in calib_frames]
    plan = calibrate(nodes, weights, frames, spec)
    last = nodes[-1].name
    y = np.asarray(y, np.int64)
    f_ok = q_ok = same = 0
    for img, label in zip(x, y, strict=True):
        f_top = int(np.argmax(float_forward(nodes, weights, img)[last]))
        logits_q = run_golden(nodes, plan, np.asarray(img, np.uint8))[last]
        q_top = int(np.argmax(logits_q))  # first maximum, as the float argmax
        f_ok += f_top == label
        q_ok += q_top == label
        same += f_top == q_top
    n = max(len(y), 1)
    return QuantEval(f_ok / n, q_ok / n, same / n, len(y), plan)


def keras_accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of the Keras model in inference mode."""
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(y)))
