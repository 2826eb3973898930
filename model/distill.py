"""Label-free fine-tuning by distillation from the float model (Hinton et al. 2015; the
end-to-end form of Vitis AI's fast-finetune): the student network, pruned as the spec's
``compression`` asks, learns to give the float network's class distribution on unlabelled
photos, with its pruned weights held at zero.

The photos are the calibration set (never the evaluation set); each becomes several
frames: the spec's resize (256x256 for Caffe preprocessing), then ``copies`` random
227x227 crops, every other one mirrored (offsets and flips from the spec's seed). The
teacher's logits come from the float network on the same frames. Training is
``model.train.train`` with a distillation loss: deterministic for a seed, checkpointed
after every epoch and resumed with the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from model.graph import Node
from model.quantize import FloatWeights
from model.spec import NetworkSpec

TEMPERATURE = 2.0


def augmented_frames(rgbs: list[np.ndarray], spec: NetworkSpec, copies: int,
                     seed: int, mix: int = 0) -> np.ndarray:
    """uint8 (len(rgbs) * (copies + mix), H, W, C) training frames: per photo the spec's
    resize, then ``copies`` crops of the network's size at seeded offsets, odd ones
    mirrored (copy 0 is the centre crop the spec's preprocessing gives, unmirrored); then
    ``mix`` blends of one of them with a crop of another photo, weights 0.25..0.75 (mixup:
    the teacher's answers on in-between images, which 64 photos alone do not cover)."""
    from model.photos import default_resize, to_network_input

    size = spec.height
    resize = spec.resize or default_resize(size, spec.preprocess)
    rng = np.random.default_rng([seed, 77])
    out = []
    for rgb in rgbs:
        big = to_network_input(rgb, resize, spec.preprocess, resize)   # BGR, resize x resize
        for c in range(copies):
            if c == 0:
                top = left = (resize - size) // 2
            else:
                top, left = (int(v) for v in rng.integers(0, resize - size + 1, size=2))
            crop = big[top:top + size, left:left + size]
            if c % 2:
                crop = crop[:, ::-1]
            if spec.channels == 1:
                crop = crop.mean(axis=2, keepdims=True).round().astype(np.uint8)
            out.append(np.ascontiguousarray(crop))
    if mix and len(rgbs) > 1:
        plain = len(out)
        for i in range(len(rgbs)):
            for _ in range(mix):
                j = int(rng.integers(0, len(rgbs) - 1))
                j += j >= i                                   # another photo
                a = out[i * copies + int(rng.integers(0, copies))]
                b = out[j * copies + int(rng.integers(0, copies))]
                lam = float(rng.uniform(0.25, 0.75))
                out.append(np.rint(lam * a + (1 - lam) * b).astype(np.uint8))
        assert len(out) == plain + len(rgbs) * mix
    return np.stack(out)


def teacher_logits(nodes: list[Node], weights: FloatWeights, frames: np.ndarray
                   ) -> np.ndarray:
    """The float network's logits (N, classes), float32 (``model.quantize.float_forward``)."""
    from model.quantize import float_forward

    out = nodes[-1].name
    return np.stack([float_forward(nodes, weights, f)[out] for f in frames]).astype(np.float32)


def distill(spec: NetworkSpec, nodes: list[Node], teacher: FloatWeights,
            student: FloatWeights, masks: dict[str, np.ndarray] | None,
            frames: np.ndarray, epochs: int, lr: float, batch_size: int = 32,
            checkpoint_dir: Path | None = None, resume: bool = True,
            log: Callable[[str], None] = print):
    """Train ``student`` (kept at zero where ``masks`` is False) to match ``teacher``'s
    softened class distribution on ``frames``; returns ``model.train.TrainResult`` (its
    ``weights`` are the folded plain weights)."""
    from model.train import train

    targets = teacher_logits(nodes, teacher, frames)
    return train(spec, nodes, frames, targets, epochs=epochs, batch_size=batch_size,
                 lr_schedule="linear", lr=lr, optimizer="adam", weights=student,
                 masks=masks, checkpoint_dir=checkpoint_dir, resume=resume,
                 temperature=TEMPERATURE, dropout=0.0, log=log)
