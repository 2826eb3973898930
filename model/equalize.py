"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"): rescale the
output channels of a ReLU conv and the matching input channels of the convs that read it,
so that every channel uses its layer's one 8-bit weight format equally well.

For a channel c, ReLU(x / s) = ReLU(x) / s for s > 0 and max-pool and concat pass a
per-channel scale through, so dividing the producer's kernel and bias of channel c by s_c
and multiplying the consumers' input channel c by s_c leaves the float network's output
unchanged. With r1 the producer's largest |weight| of channel c and r2 the consumers'
largest |weight| on input channel c, s_c = sqrt(r1 / r2) makes both ranges sqrt(r1 * r2).
A few sweeps over the network converge.

Only the conv -> (max-pool) -> conv and conv -> concat -> conv paths are equalized; a
channel that reaches a bypass add, the global average pool or the network output keeps its
scale (the logits must not change).
"""

from __future__ import annotations

import numpy as np

from model.graph import Node

FloatWeights = dict[str, tuple[np.ndarray, np.ndarray]]

__all__ = ["equalize", "equalizable_pairs"]


def _readers(nodes: list[Node]) -> dict[str, list[Node]]:
    out: dict[str, list[Node]] = {}
    for n in nodes:
        for i in n.inputs:
            out.setdefault(i, []).append(n)
    return out


def equalizable_pairs(nodes: list[Node]) -> dict[str, list[tuple[str, int]]]:
    """Producer conv -> [(consumer conv, channel offset in its input)] for every ReLU conv
    whose output reaches only convs, through max-pools and concats."""
    readers = _readers(nodes)
    by_name = {n.name: n for n in nodes}
    pairs: dict[str, list[tuple[str, int]]] = {}
    for n in nodes:
        if n.kind != "conv" or not n.relu:
            continue
        found: list[tuple[str, int]] = []
        frontier = [(n.name, 0)]
        ok = True
        while frontier and ok:
            name, offset = frontier.pop()
            for r in readers.get(name, []):
                if r.kind == "conv":
                    found.append((r.name, offset))
                elif r.kind == "maxpool":
                    frontier.append((r.name, offset))
                elif r.kind == "concat":
                    before = sum(by_name[i].out_shape[2]
                                 for i in r.inputs[:r.inputs.index(name)])
                    frontier.append((r.name, offset + before))
                else:  # add, gap: the scale would reach the output
                    ok = False
                    break
            if not readers.get(name):
                ok = False  # the network's output
        if ok and found:
            pairs[n.name] = found
    return pairs


def equalize(nodes: list[Node], weights: FloatWeights, sweeps: int = 4,
             eps: float = 1e-12) -> FloatWeights:
    """The equalized weights (new arrays; the float network computes the same logits)."""
    out = {k: (w.astype(np.float64), b.astype(np.float64)) for k, (w, b) in weights.items()}
    pairs = equalizable_pairs(nodes)
    for _ in range(sweeps):
        for prod, consumers in pairs.items():
            w1, b1 = out[prod]
            ch = w1.shape[-1]
            r1 = np.abs(w1).reshape(-1, ch).max(axis=0)
            r2 = np.zeros(ch)
            for cons, off in consumers:
                w2 = out[cons][0]
                r2 = np.maximum(r2, np.abs(w2[:, :, off:off + ch, :]).max(axis=(0, 1, 3)))
            s = np.where((r1 > eps) & (r2 > eps), np.sqrt(np.maximum(r1, eps)
                                                          / np.maximum(r2, eps)), 1.0)
            out[prod] = (w1 / s, b1 / s)
            for cons, off in consumers:
                w2, b2 = out[cons]
                w2 = w2.copy()
                w2[:, :, off:off + ch, :] *= s[None, None, :, None]
                out[cons] = (w2, b2)
    return {k: (w.astype(weights[k][0].dtype), b.astype(weights[k][1].dtype))
            for k, (w, b) in out.items()}
