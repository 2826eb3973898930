"""Fixed-point formats: one backend-neutral type, rendered for each consumer.

A ``FixedFormat`` is the exact meaning of an ``ap_fixed<W,I>`` / ``ap_ufixed<W,I>`` value:
an integer ``q`` of ``width`` bits (two's complement when signed) scaled by ``2**-frac``
with ``frac = width - integer``. The golden model computes on the integers ``q``; the
renderers below give the same type to hls4ml and QKeras.

Rounding is always AP_RND (round half towards +infinity: add half an LSB, then floor) and
overflow always AP_SAT (clamp to the representable range), in the golden model and in
every hls4ml type this project writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FixedFormat:
    """``width`` bits, ``integer`` of them left of the binary point (sign included)."""

    width: int
    integer: int
    signed: bool = True

    def __post_init__(self) -> None:
        # The quantizer (model.quantize) only builds valid formats; these guard the type.
        if not 1 <= self.width <= 64:
            raise ValueError(f"fixed-point width must be 1..64, got {self.width} "
                             f"(integer bits {self.integer})")
        if self.signed and self.width < 2:
            raise ValueError("a signed fixed-point format needs at least 2 bits")

    @property
    def frac(self) -> int:
        return self.width - self.integer

    @property
    def qmin(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    def hls(self, rounding: bool = True) -> str:
        """hls4ml precision string, e.g. ``fixed<8,3,RND,SAT>`` (RND = AP_RND, SAT = AP_SAT)."""
        base = "fixed" if self.signed else "ufixed"
        if rounding:
            return f"{base}<{self.width},{self.integer},RND,SAT>"
        return f"{base}<{self.width},{self.integer}>"

    def ap(self) -> str:
        """The C++ type, e.g. ``ap_ufixed<8,4,AP_RND,AP_SAT>``."""
        base = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{base}<{self.width},{self.integer},AP_RND,AP_SAT>"

    @property
    def qkeras_expressible(self) -> bool:
        """QKeras 0.9.0 computes ``2**integer`` with an int32 ``K.pow``: a negative
        exponent fails, and from 2**31 on it overflows (measured: ``quantized_bits(8,31)``
        and ``quantized_relu(8,31)`` are wrong, at 32 they give NaN). So QKeras' integer
        parameter (``integer - 1`` when signed) must lie in 0..30."""
        return 0 <= self.integer - (1 if self.signed else 0) <= 30

    def qkeras(self) -> str:
        """QKeras quantizer string with the same grid and range (``alpha=1``: no scale)."""
        if not self.qkeras_expressible:
            raise ValueError(f"{self.ap()} has no QKeras quantizer (QKeras' integer bits "
                             "must be 0..30)")
        if self.signed:
            return f"quantized_bits({self.width},{self.integer - 1},alpha=1)"
        return f"quantized_relu({self.width},{self.integer})"

    def to_dict(self) -> dict:
        return {"width": self.width, "integer": self.integer, "signed": self.signed}

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real values -> integers ``q`` on this grid: round half to even, then saturate.

        Used once, for weights and biases (QKeras then receives the already quantized
        values, so its own weight quantizers are the identity on them).
        """
        q = np.rint(np.asarray(x, dtype=np.float64) * 2.0**self.frac)
        return np.clip(q, self.qmin, self.qmax).astype(np.int64)

    def to_real(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(q, dtype=np.float64) * 2.0**-self.frac

    def from_real_exact(self, x: np.ndarray, what: str = "value") -> np.ndarray:
        """Real values that must lie exactly on this grid -> integers; raises if one does not."""
        scaled = np.asarray(x, dtype=np.float64) * 2.0**self.frac
        q = np.rint(scaled)
        bad = np.flatnonzero(q != scaled)
        if bad.size:
            raise ValueError(
                f"{what}: {bad.size} values are not on the {self.ap()} grid "
                f"(first: {np.ravel(x)[bad[0]]!r})"
            )
        return q.astype(np.int64)


def requantize(acc: np.ndarray, acc_frac: int, out: FixedFormat) -> np.ndarray:
    """Integers with ``acc_frac`` fractional bits -> ``out``, with AP_RND and AP_SAT.

    This is what an ``ap_fixed`` assignment to an ``AP_RND, AP_SAT`` type does: round half
    towards +infinity at the target LSB, then clamp to the target range.
    """
    acc = np.asarray(acc, dtype=np.int64)
    shift = acc_frac - out.frac
    peak = max(int(acc.max()), -int(acc.min())) if acc.size else 0
    if shift > 62 or peak.bit_length() + max(-shift, 1) > 62:
        # Formats ~60 binary orders of magnitude apart (e.g. weights of 1e-30 next to
        # activations of 1) would overflow int64 below: the same formula, in Python ints.
        acc = acc.astype(object)
    if shift > 0:
        q = (acc + (1 << (shift - 1))) >> shift  # arithmetic shift = floor
    else:
        q = acc << (-shift)
    return np.clip(q, out.qmin, out.qmax).astype(np.int64)


def bits_for_signed(max_abs: int) -> int:
    """Smallest two's-complement width that holds every integer in [-max_abs, max_abs]."""
    return int(max_abs).bit_length() + 1
