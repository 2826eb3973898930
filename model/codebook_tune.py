"""Codebook fine-tuning of a weight-shared network by distillation from the float model.

Deep Compression (Han et al. 2016) retrains the shared centroids after clustering: each
centroid moves by the sum of the gradients of the weights that point at it, while the
indices stay fixed. Here the same is done without labels: the student is the *hardware*
network (every kernel ``codebook[index]``, every conv / bypass output rounded and clamped
onto its activation format with a straight-through gradient), the teacher is the float
network, and the loss is the distillation loss of ``model.train`` (T^2 KL of the softened
class distributions) on the calibration frames, mirrored and blended (mixup) so that 64
photos cover more than 64 points. Trainable: the non-zero codebook entries and the biases
of the shared convs; the zero entry, the indices and so every pruned weight stay fixed.

At the end every codebook entry is rounded to its layer's 8-bit weight format (the
hardware's values), and the kernels are rebuilt from the indices: they lie on the new
codebooks, so ``model.quantize.calibrate`` stores exactly them and the golden model, the
hls4ml C simulation and the RTL run these integers. Deterministic for a seed (TensorFlow op
determinism, a seeded data order); the result is cached under the digest of its inputs.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model.files import digest_network, load_layers, save_layers
from model.fixed import FixedFormat
from model.graph import Node
from model.quantize import FloatWeights

TEMPERATURE = 2.0
CACHE_VERSION = b"codebook-tune-2"

__all__ = ["tune_codebooks", "training_frames"]


def training_frames(frames: list[np.ndarray], seed: int, mix: int = 4) -> np.ndarray:
    """uint8 (N, H, W, C): every frame, its mirror image, and ``mix`` blends per frame of
    the frame (or its mirror) with another frame, weights 0.25..0.75, from ``seed``."""
    base = [np.asarray(f, np.uint8) for f in frames]
    out = base + [f[:, ::-1] for f in base]
    rng = np.random.default_rng([seed, 911])
    n = len(base)
    if n > 1:
        for i in range(n):
            for _ in range(mix):
                j = int(rng.integers(0, n - 1))
                j += j >= i
                a = out[i + n * int(rng.integers(0, 2))]
                b = out[j + n * int(rng.integers(0, 2))]
                lam = float(rng.uniform(0.25, 0.75))
                out.append(np.rint(lam * a + (1 - lam) * b).astype(np.uint8))
    return np.ascontiguousarray(np.stack(out))


def _codebook(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the kernel's distinct non-zero values, sorted; each weight's index into
    [0, *values]), so that ``np.append(0, values)[index] == kernel``."""
    values = np.unique(kernel[kernel != 0])
    index = np.where(kernel != 0, np.searchsorted(values, kernel) + 1, 0)
    return values, index.astype(np.int32)


def _digest(nodes, teacher, student, formats, act_formats, frames, settings) -> str:
    """SHA-256 of everything ``tune_codebooks``' result depends on."""
    h = hashlib.sha256(CACHE_VERSION + repr(settings).encode())
    digest_network(h, nodes, {f"teacher/{k}": v for k, v in teacher.items()}
                   | {f"student/{k}": v for k, v in student.items()}, frames)
    h.update(repr(sorted((k, v.ap()) for k, v in formats.items())).encode())
    h.update(repr(sorted((k, v.ap()) for k, v in act_formats.items())).encode())
    return h.hexdigest()


def tune_codebooks(nodes: list[Node], teacher: FloatWeights, student: FloatWeights,
                   formats: dict[str, FixedFormat], act_formats: dict[str, FixedFormat],
                   frames: list[np.ndarray], epochs: int, lr: float, seed: int,
                   batch_size: int = 32, cache: Path | None = None,
                   log: Callable[[str], None] | None = print) -> FloatWeights:
    """``student`` (every conv kernel on a codebook of at most its size, as the weight
    rounding of ``hls.plan.prepare.round_weights`` leaves a shared network) with the
    non-zero codebook entries and the biases of the convs in ``formats`` fine-tuned for
    ``epochs`` epochs (Adam, ``lr``, linear decay) to match ``teacher``'s softened class
    distribution on ``training_frames(frames)``; entries rounded to ``formats`` at the
    end."""
    settings = (epochs, lr, seed, batch_size, TEMPERATURE)
    path = None
    if cache is not None:
        key = _digest(nodes, teacher, student, formats, act_formats, frames, settings)
        path = cache / f"{key[:32]}.npz"
        hit = load_layers(path, student, formats, _on_formats(formats))
        if hit is not None:
            if log:
                log(f"weights: codebook fine-tuning reused from {path}")
            return hit
    t0 = time.perf_counter()
    from model.train import _distillation_loss, _tf, enable_determinism

    tf = _tf()
    enable_determinism(seed)
    x = training_frames(frames, seed)
    books, indices, centroids, biases = {}, {}, {}, {}
    for name in formats:
        w, b = student[name]
        values, index = _codebook(np.asarray(w, np.float64))
        indices[name] = tf.constant(index)
        # trained as offsets in LSBs (of the weight format, of the output format), so that
        # one learning rate suits every layer
        books[name] = (tf.constant(values.astype(np.float32)),
                       tf.constant(np.asarray(b, np.float32)),
                       float(formats[name].lsb), float(act_formats[name].lsb))
        centroids[name] = tf.Variable(np.zeros(values.size, np.float32), name=f"{name}_dc")
        biases[name] = tf.Variable(np.zeros(np.shape(b), np.float32), name=f"{name}_db")

    def constants(wb):
        return tuple(tf.constant(np.asarray(a, np.float32)) for a in wb)

    fixed = {name: constants(wb) for name, wb in student.items() if name not in formats}
    float_w = {name: constants(wb) for name, wb in teacher.items()}

    def kernel_of(name):
        c0, _b0, w_lsb, _a_lsb = books[name]
        steps = c0 / w_lsb + centroids[name]      # on the weight grid, straight through
        steps = steps + tf.stop_gradient(tf.round(steps) - steps)
        table = tf.concat([tf.zeros([1]), w_lsb * steps], axis=0)
        return tf.gather(table, indices[name])

    def bias_of(name):
        _c0, b0, _w_lsb, a_lsb = books[name]
        return b0 + a_lsb * biases[name]

    def forward(frames_batch, hardware: bool):
        from model.layers import MaxPool2DCeil

        acts = {"frame": tf.cast(frames_batch, tf.float32)}
        for n in nodes:
            ins = [acts[i] if i in acts else acts["frame"] for i in n.inputs]
            if n.kind == "conv":
                if not hardware:
                    w, b = float_w[n.name]
                elif n.name in centroids:
                    w, b = kernel_of(n.name), bias_of(n.name)
                else:
                    w, b = fixed[n.name]
                src = ins[0]
                if n.pad:
                    src = tf.pad(src, [[0, 0], [n.pad, n.pad], [n.pad, n.pad], [0, 0]])
                y = tf.nn.relu(tf.nn.conv2d(src, w, n.stride, "VALID") + b)
            elif n.kind == "maxpool":
                y = MaxPool2DCeil(3, 2)(ins[0])
            elif n.kind == "concat":
                y = tf.concat(ins, axis=-1)
            elif n.kind == "add":
                y = ins[0] + ins[1]
            elif n.kind == "gap":
                y = tf.reduce_mean(ins[0], axis=[1, 2])
            else:
                raise NotImplementedError(f"{n.name}: unknown block kind {n.kind!r}")
            fmt = act_formats.get(n.name) if hardware and n.kind in ("conv", "add") else None
            if fmt is not None:   # AP_RND, AP_SAT onto the format; straight-through gradient
                top = fmt.qmax * fmt.lsb
                c = tf.clip_by_value(y, 0.0, top)
                y = c + tf.stop_gradient(tf.floor(c / fmt.lsb + 0.5) * fmt.lsb - c)
            acts[n.name] = y
        return acts[nodes[-1].name]

    targets = np.concatenate([forward(x[i:i + batch_size], False).numpy()
                              for i in range(0, len(x), batch_size)])
    loss_fn = _distillation_loss(tf, TEMPERATURE)
    steps = epochs * -(-len(x) // batch_size)
    schedule = tf.keras.optimizers.schedules.PolynomialDecay(lr, max(steps, 1), 0.0)
    opt = tf.keras.optimizers.Adam(schedule)
    variables = [centroids[k] for k in formats] + [biases[k] for k in formats]

    @tf.function
    def step(xb, tb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(tb, forward(xb, True)))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    rng = np.random.default_rng([seed, 4242])
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        losses = [float(step(tf.constant(x[order[i:i + batch_size]]),
                             tf.constant(targets[order[i:i + batch_size]])))
                  for i in range(0, len(x), batch_size)]
        if log:
            log(f"codebook fine-tuning: epoch {epoch + 1}/{epochs}, distillation loss "
                f"{np.mean(losses):.4f} ({time.perf_counter() - t0:.0f} s)")
    out = dict(student)
    for name, fmt in formats.items():
        w, _b = student[name]
        tuned = books[name][0].numpy().astype(np.float64) / fmt.lsb + centroids[name].numpy()
        table = np.append(0.0, np.clip(np.rint(tuned), fmt.qmin, fmt.qmax) * fmt.lsb)
        out[name] = (table[indices[name].numpy()].astype(w.dtype),
                     bias_of(name).numpy().astype(student[name][1].dtype))
    if path is not None:
        save_layers(path, out, formats)
    if log:
        log(f"weights: codebooks and biases of {len(formats)} convs fine-tuned on "
            f"{len(x)} frames from {len(frames)} calibration frames, {epochs} epochs "
            f"({time.perf_counter() - t0:.1f} s)")
    return out


def _on_formats(formats: dict[str, FixedFormat]):
    """``load_layers``' check of a cached result: every kernel on its format's grid."""
    def valid(name: str, w: np.ndarray) -> bool:
        steps = np.asarray(w, np.float64) / formats[name].lsb
        return bool(np.array_equal(steps, np.rint(steps)))
    return valid
