"""Classify images the way the accelerator does: one API, interchangeable backends.

    clf = Classifier.from_spec(load_spec("configs/squeezenet_v1_1.yaml"), backend="golden")
    for p in clf.classify(["cat.jpg"]):
        print(p.image, [(c.index, c.name, round(c.prob, 3)) for c in p.top])

The :class:`Classifier` owns everything around the hardware: reading the image, the
spec's preprocessing (``model.photos.spec_frame``: by default Caffe's 256x256 resize and
centre 227 crop, raw 8-bit BGR, the mean folded into conv1), dequantizing the integer
class scores with the plan's logit format, softmax and top-k. A *backend* is only the
hardware: any object with a ``name`` and ``run(frames) -> int array (n_frames x
classes)`` of logit codes. Four exist:

- ``golden``: the numpy golden model (``model.quantize.run_golden``), the definition of
  the integer arithmetic; ~0.03 s a 227x227 frame.
- ``csim``: the hls4ml C simulation of the same plan (``hls.hls4ml_backend.csim``), every
  traced layer checked bit-exact against the golden model on the way (``checked``).
- ``rtl``: the open RTL in Verilator (``sim.rtl_frames``), each score checked likewise.
- ``board``: the bitstream on a PYNQ board (``hls.infer.board.BoardBackend``: the AXI
  DMA and the wrapper's registers; needs ``bitfile``, and PYNQ only when opened).

Any other object with ``name`` and ``run`` is a backend too, passed as ``backend=``.

Where this sits in the import layers: the module knows all backends, so it is a layer of
its own just below ``hls.cli`` (``hls.infer`` in ``tests/test_import_layers.py``), but it
imports only ``model`` and ``hls.plan`` when loaded: the csim and rtl backends import
hls4ml / the simulator when they are first run, so ``--backend golden`` never loads
TensorFlow, hls4ml or Verilator.

Calibration: the integer path is that of a ``Prepared`` (``hls.plan.prepare.prepare``).
``Classifier.from_spec`` prepares the spec as ``make csim`` does; to classify with a plan
calibrated on other data, build the ``Prepared`` that way and pass it to ``Classifier``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from hls.plan.prepare import Frame, Prepared
from model.errors import CheckFailed, InputError, InputNotFound, SqzError
from model.quantize import run_golden
from model.spec import NetworkSpec

__all__ = ["BACKENDS", "Backend", "ClassProb", "Classifier", "CsimBackend", "GoldenBackend",
           "Prediction", "RtlBackend", "load_frames", "log_softmax", "make_backend", "softmax",
           "top_classes"]

BACKENDS = ("golden", "csim", "rtl", "board")


@runtime_checkable
class Backend(Protocol):
    """The hardware, or a model of it: integer class scores for raw frames."""

    name: str

    def run(self, frames: Sequence[Frame]) -> np.ndarray:
        """int (len(frames), classes): the logit codes (the plan's logit format) per frame."""
        ...


class GoldenBackend:
    """The numpy golden model of the prepared plan."""

    name = "golden"

    def __init__(self, prep: Prepared) -> None:
        self.prep = prep

    def run(self, frames: Sequence[Frame]) -> np.ndarray:
        gap = self.prep.nodes[-1].name
        return np.array([run_golden(self.prep.nodes, self.prep.plan, f.pixels)[gap]
                         for f in frames], dtype=np.int64).reshape(len(frames), -1)


@dataclass
class Checked:
    """What a simulating backend compared with the golden model over all its runs."""

    frames: int = 0
    compared: int = 0
    mismatches: int = 0
    first_mismatch: str = ""


class CsimBackend:
    """The hls4ml C simulation: the project is converted and compiled on the first run
    (``build/hls/<name>_<vitis|vivado>``), then each frame is traced layer by layer; the
    scores returned are the C simulation's own output stream. ``checked`` holds the
    element-by-element comparison with the golden model."""

    name = "csim"

    def __init__(self, prep: Prepared, log=print) -> None:
        self.prep, self.log = prep, log
        self.checked = Checked()
        self._model = None

    def run(self, frames: Sequence[Frame]) -> np.ndarray:
        from hls.hls4ml_backend.csim import build_project, run_csim
        from model.progress import progress

        if self._model is None:
            t0 = time.perf_counter()
            self.log(f"csim: converting with hls4ml and compiling the C simulation "
                     f"({self.prep.spec.target.backend})")
            _, self._model = build_project(self.prep, backend=self.prep.spec.target.backend,
                                           log=self.log)
            self.log(f"csim: built in {time.perf_counter() - t0:.0f} s")
        res = run_csim(self.prep, self._model, list(frames), log=self.log,
                       progress=lambda it: progress(it, "csim", unit="frame"))
        c = self.checked
        c.frames += res.frames
        c.compared += res.compared
        c.mismatches += res.mismatches
        c.first_mismatch = c.first_mismatch or res.first_mismatch
        return np.array(res.outputs, dtype=np.int64).reshape(len(frames), -1)


class RtlBackend:
    """The open RTL (``hls.rtl``) Verilated and driven from C++ (``sim.fast``); the scores
    returned are the RTL's. ``checked`` holds the comparison with the golden model."""

    name = "rtl"

    def __init__(self, prep: Prepared, log=print) -> None:
        self.prep, self.log = prep, log
        self.checked = Checked()

    def run(self, frames: Sequence[Frame]) -> np.ndarray:
        from sim.fast import SimError
        from sim.rtl_frames import rtl_scores

        self.log(f"rtl: {len(frames)} frames through the Verilated RTL of {self.prep.spec.name}")
        try:
            scores, fig = rtl_scores(self.prep, frames)
        except SimError as exc:
            raise CheckFailed(f"RTL simulation failed: {exc}") from exc
        c = self.checked
        c.frames += fig["frames"]
        c.compared += fig["compared"]
        c.mismatches += fig["mismatches"]
        if fig.get("first_bad") and not c.first_mismatch:
            f, k, got, want = fig["first_bad"][0]
            c.first_mismatch = f"{frames[f].name}: class {k}: RTL {got}, golden {want}"
        return scores


def make_backend(name: str, prep: Prepared, log=print, bitfile: str | Path | None = None
                 ) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`) for ``prep``; ``board`` loads
    ``bitfile`` with PYNQ."""
    kinds = {"golden": lambda: GoldenBackend(prep), "csim": lambda: CsimBackend(prep, log),
             "rtl": lambda: RtlBackend(prep, log), "board": lambda: _board(prep, bitfile, log)}
    if name not in kinds:
        raise InputError(f"backend {name!r} is not allowed; allowed: {', '.join(BACKENDS)}")
    return kinds[name]()


def _board(prep: Prepared, bitfile: str | Path | None, log) -> Backend:
    from hls.infer.board import BoardBackend

    if bitfile is None:
        raise InputError("the board backend needs the bitstream: --bitfile PATH (the .bit "
                         "with its .hwh beside it)")
    return BoardBackend.open(prep, bitfile, log=log)


# ------------------------------------------------------------------------ decoding scores


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float64, max-subtracted (no overflow)."""
    x = np.asarray(logits, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log(softmax) over the last axis in float64, finite where softmax underflows to 0."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def top_classes(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, highest first; ties go to the lower index
    (stable), as in ``model.imagenet.top_k``."""
    return np.argsort(-np.asarray(scores), kind="stable")[:k]


@dataclass(frozen=True)
class ClassProb:
    index: int
    name: str | None    # the ImageNet name for a 1000-class network, else None
    prob: float


@dataclass(frozen=True)
class Prediction:
    """One image: its ``top`` classes, most probable first; ``logits`` are the dequantized
    class scores and ``codes`` the backend's integers."""

    image: str
    top: tuple[ClassProb, ...]
    logits: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)

    def to_json(self) -> dict:
        return {"image": self.image, f"top{len(self.top)}": [
            {"index": c.index, "name": c.name, "prob": c.prob} for c in self.top]}


# ----------------------------------------------------------------------------- classifier


def load_frames(paths: Sequence[str | Path], spec: NetworkSpec) -> list[Frame]:
    """Read every image file and preprocess it as ``spec`` says; each frame is named as its
    path was given. When any file cannot be read, one error names each of them (nothing
    is skipped): ``InputNotFound`` when all the failures are missing files, else
    ``InputError``."""
    from model.photos import load_image, spec_frame

    frames, bad = [], []
    for p in paths:
        try:
            frames.append(Frame(str(p), spec_frame(load_image(p).rgb, spec)))
        except PermissionError as exc:
            bad.append(InputError(f"{p}: cannot be read: {exc.strerror or exc}"))
        except SqzError as exc:
            bad.append(exc)
    if bad:
        kind = InputNotFound if all(isinstance(e, InputNotFound) for e in bad) else InputError
        head = f"{len(bad)} of {len(paths)} images cannot be classified: " if len(paths) > 1 else ""
        raise kind(head + "; ".join(str(e) for e in bad))
    return frames


class Classifier:
    """Images in, top-k classes out, through ``backend`` (default: the golden model)."""

    def __init__(self, prep: Prepared, backend: Backend | str = "golden", log=print) -> None:
        self.prep = prep
        self.spec: NetworkSpec = prep.spec
        self.backend = make_backend(backend, prep, log) if isinstance(backend, str) else backend
        if not isinstance(self.backend, Backend):
            raise TypeError(f"backend must have a name and run(frames), got "
                            f"{type(self.backend).__name__}")
        self.logit_format = prep.plan.layers[prep.nodes[-1].name].out_fmt
        self.class_names: list[str] | None = None
        if self.spec.classes == 1000:
            from model.imagenet import imagenet_class_names

            self.class_names = imagenet_class_names()

    @classmethod
    def from_spec(cls, spec: NetworkSpec, backend: Backend | str = "golden",
                  log=print) -> Classifier:
        """Prepare ``spec`` (weights, calibration, folding: seconds to tens of seconds for
        the full v1.1) and classify with it."""
        from hls.plan.prepare import prepare

        return cls(prepare(spec, log=log), backend, log)

    def frame(self, rgb: np.ndarray, name: str = "frame") -> Frame:
        """The network's input frame for an RGB uint8 (H, W, 3) picture."""
        from model.photos import spec_frame

        return Frame(name, spec_frame(rgb, self.spec))

    def load_all(self, paths: Sequence[str | Path]) -> list[Frame]:
        """:func:`load_frames` with this classifier's spec."""
        return load_frames(paths, self.spec)

    def codes(self, frames: Sequence[Frame]) -> np.ndarray:
        """The backend's integer class scores, int64 (len(frames), classes), checked."""
        got = np.asarray(self.backend.run(frames))
        want = (len(frames), self.spec.classes)
        if got.shape != want or not np.issubdtype(got.dtype, np.integer):
            raise TypeError(f"backend {self.backend.name!r} returned {got.dtype} {got.shape}, "
                            f"expected integers of shape {want}")
        return got.astype(np.int64)

    def predict(self, frames: Sequence[Frame], k: int = 5) -> list[Prediction]:
        """Top-``k`` (at most the class count) of each frame: probability = softmax of the
        dequantized scores, ties to the lower index."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"top-k: k must be a positive integer, got {k!r}")
        k = min(k, self.spec.classes)
        codes = self.codes(frames)
        out = []
        for fr, c in zip(frames, codes, strict=True):
            logits = self.logit_format.to_real(c)
            probs = softmax(logits)
            top = tuple(ClassProb(int(i), self.class_names[i] if self.class_names else None,
                                  float(probs[i])) for i in top_classes(logits, k))
            out.append(Prediction(fr.name, top, logits, c))
        return out

    def classify(self, paths: Sequence[str | Path], k: int = 5) -> list[Prediction]:
        """Read every image (all errors reported together, before any work), then predict."""
        return self.predict(self.load_all(paths), k)
