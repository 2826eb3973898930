"""``sqz eval``: accuracy and fidelity of the 8-bit design on a folder of the user's images.

For each readable image (preprocessed as the spec says, ``model.photos.spec_frame``):

- the float model (``model.quantize.float_forward``; the uncompressed weights when the spec
  compresses them), the 8-bit design (the golden model of the plan the hardware uses:
  dense, calibrated as ``make csim`` calibrates) and, when the spec compresses the weights
  (``compression:``), the compressed design as well;
- top-1 / top-5 accuracy when the folder is labelled (class sub-folders named by ImageNet
  class name, index or WordNet synset id; ``model.datasets.scan_eval_folder``);
- top-1 agreement and top-5 overlap (|top-5 of the design ∩ top-5 of float| / 5, averaged)
  of each integer design with the float model, and the mean KL divergence
  KL(float softmax || design softmax) of the dequantized class scores: a measure of
  fidelity far less noisy than a few hundred yes / no answers;
- for a compressed spec, the compressed design minus the 8-bit one paired image by image
  (mean difference of top-1 agreement and top-5 overlap in points and of the KL
  divergence, each with its standard error), so that a gap can be told from the noise of
  a small folder;
- per-layer saturation: the fraction of a layer's outputs at its format's largest code
  (AP_SAT clamps there, so this counts every clipped value, plus the rare value that
  rounds exactly onto the maximum);
- with ``csim`` > 0, the first ``csim`` frames through the hls4ml C simulation of the
  spec's design, every traced layer compared with the golden model.

Files that cannot be read are listed and counted, never dropped silently. Results go to
``<out>/per_image.csv`` and ``<out>/summary.json``. The plan is the caller's ``Prepared``,
so a plan calibrated on other data can be evaluated the same way.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hls.infer.classify import log_softmax
from hls.plan.prepare import Frame, Prepared
from model.datasets import EvalFolder, scan_eval_folder
from model.errors import InputError, SqzError
from model.quantize import float_forward, run_golden

__all__ = ["EvalResult", "evaluate", "folder_labeller", "paired_difference"]

K = 5


def folder_labeller(classes: int):
    """Folder name -> class index: ImageNet names, indices or synset ids for a 1000-class
    spec (``model.imagenet.imagenet_label``), indices 0..classes-1 otherwise."""
    if classes == 1000:
        from model.imagenet import imagenet_label

        return imagenet_label

    def by_index(folder: str) -> int:
        text = folder.strip()
        if text.isdigit() and int(text) < classes:
            return int(text)
        raise InputError(f"class folder {folder!r}: this network has {classes} classes, so "
                         f"class folders are named 0..{classes - 1}")

    return by_index


@dataclass
class Tally:
    """Running counts of one design over the images."""

    name: str
    images: int = 0
    labelled: int = 0
    top1: int = 0
    top5: int = 0
    agree1: int = 0
    overlap5: int = 0           # sum over images of |top5 ∩ float top5|
    kl: float = 0.0             # sum over images of KL(float softmax || this design's)
    per_image: list[tuple[int, int, float]] = field(default_factory=list)  # agrees, overlap, KL
    saturated: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)

    def add(self, top: np.ndarray, label: int | None, ref: np.ndarray | None,
            kl: float = 0.0) -> None:
        self.images += 1
        self.kl += kl
        if label is not None:
            self.labelled += 1
            self.top1 += int(top[0] == label)
            self.top5 += int(label in top)
        if ref is not None:
            agrees, overlap = int(top[0] == ref[0]), len(set(top.tolist()) & set(ref.tolist()))
            self.agree1 += agrees
            self.overlap5 += overlap
            self.per_image.append((agrees, overlap, kl))

    def rate(self, what: str) -> float | None:
        if what in ("top1", "top5"):
            return getattr(self, what) / self.labelled if self.labelled else None
        if what == "agree1":
            return self.agree1 / self.images if self.images else None
        if what == "kl":
            return self.kl / self.images if self.images else None
        return self.overlap5 / (K * self.images) if self.images else None

    def saturation(self) -> dict[str, float]:
        return {n: self.saturated[n] / self.outputs[n] for n in self.outputs}

    def summary(self, is_float: bool) -> dict:
        out = {"top1": self.rate("top1"), "top5": self.rate("top5")}
        if not is_float:
            out.update(agreement_top1=self.rate("agree1"), overlap_top5=self.rate("overlap5"),
                       kl_from_float=self.rate("kl"),
                       saturation={n: {"format": self.formats[n], "rate": r}
                                   for n, r in self.saturation().items()})
        return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def paired_difference(a: Tally, b: Tally) -> dict[str, tuple[float, float]]:
    """``b`` minus ``a`` image by image: {"agree1" | "overlap5" (in points) | "kl": (mean,
    standard error)}; the standard error is 0 for a single image."""
    x, y = np.asarray(a.per_image, dtype=float), np.asarray(b.per_image, dtype=float)
    if x.shape != y.shape or not len(x):
        raise ValueError(f"paired difference needs the same images: {len(x)} vs {len(y)}")
    d = (y - x) * np.array([100.0, 100.0 / K, 1.0])
    se = d.std(axis=0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.zeros(3)
    return {key: (float(d[:, i].mean()), float(se[i]))
            for i, key in enumerate(("agree1", "overlap5", "kl"))}


@dataclass
class EvalResult:
    spec_name: str
    data: Path
    labelled: bool
    float_: Tally
    designs: list[Tally]               # the 8-bit design first, then the compressed one
    skipped: list[tuple[Path, str]]
    csim: dict | None
    paths: dict[str, Path]
    seconds: float

    @property
    def images(self) -> int:
        return self.float_.images

    def lines(self) -> list[str]:
        """The report; its last lines are the accuracy line (labelled folders only) and
        ``eval: N images, top-1 agreement E%, top-5 overlap F%`` (8-bit vs float)."""
        out = []
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} unreadable file(s):")
            out += [f"  {p}: {why}" for p, why in self.skipped]
        heads = " ".join(f"{d.name:>10}" for d in self.designs)
        out.append("saturation (fraction of outputs at the format's largest code):")
        out.append(f"  {'layer':<24} {'format':<30} {heads}")
        rates = [d.saturation() for d in self.designs]
        for layer, fmt in self.designs[0].formats.items():
            cells = " ".join(f"{100 * r[layer]:>9.3f}%" for r in rates)
            out.append(f"  {layer:<24} {fmt:<30} {cells}")
        for d in self.designs[1:]:
            acc = (f"top-1 {_pct(d.rate('top1'))}, top-5 {_pct(d.rate('top5'))}; "
                   if self.labelled else "")
            out.append(f"{d.name}: {acc}top-1 agreement {_pct(d.rate('agree1'))}, top-5 "
                       f"overlap {_pct(d.rate('overlap5'))} (vs the uncompressed float model)")
            diff = paired_difference(self.designs[0], d)
            (m1, s1), (m5, s5), (mk, sk) = diff["agree1"], diff["overlap5"], diff["kl"]
            out.append(f"{d.name} minus 8-bit, paired over the {self.images} images: top-1 "
                       f"agreement {m1:+.1f} ± {s1:.1f} points, top-5 overlap {m5:+.1f} ± "
                       f"{s5:.1f} points, KL {mk:+.4f} ± {sk:.4f} (standard errors)")
        out.append("mean KL divergence from the float softmax: " + "; ".join(
            f"{d.name} {d.rate('kl'):.4f}" for d in self.designs))
        if self.csim is not None:
            c = self.csim
            out.append(f"csim: {c['frames']} frames, {c['compared']} outputs compared, "
                       f"{c['mismatches']} mismatches"
                       + (f" (first: {c['first_mismatch']})" if c["first_mismatch"] else ""))
        out.append(f"wrote {self.paths['csv']} and {self.paths['json']} "
                   f"({self.seconds:.1f} s)")
        q = self.designs[0]
        if self.labelled:
            f = self.float_
            out.append(f"accuracy: float top-1 {_pct(f.rate('top1'))}, top-5 "
                       f"{_pct(f.rate('top5'))}; 8-bit top-1 {_pct(q.rate('top1'))}, top-5 "
                       f"{_pct(q.rate('top5'))}")
        out.append(f"eval: {self.images} images, top-1 agreement {_pct(q.rate('agree1'))}, "
                   f"top-5 overlap {_pct(q.rate('overlap5'))}")
        return out


def _design_name(prep: Prepared) -> str:
    c = prep.spec.compression
    parts = ([f"pruned {c.sparsity:.0%}"] if c.sparsity else []) + (
        [c.describe_bits()] if c.share_bits else [])
    return " + ".join(parts) or "8-bit"


def _run_design(t: Tally, prep: Prepared, pixels: np.ndarray, label: int | None,
                ref: np.ndarray, ref_logp: np.ndarray) -> tuple[np.ndarray, float]:
    """Run one design on one frame; returns its top-5 and KL(float || design)."""
    outs = run_golden(prep.nodes, prep.plan, pixels)
    for n in prep.nodes:
        if n.kind in ("conv", "add", "gap"):
            fmt = prep.plan.layers[n.name].out_fmt
            t.formats.setdefault(n.name, fmt.ap())
            t.saturated[n.name] = t.saturated.get(n.name, 0) + int(
                np.count_nonzero(outs[n.name] == fmt.qmax))
            t.outputs[n.name] = t.outputs.get(n.name, 0) + outs[n.name].size
    gap = prep.nodes[-1].name
    top = np.argsort(-outs[gap], kind="stable")[:K]
    logp = log_softmax(prep.plan.layers[gap].out_fmt.to_real(outs[gap]))
    kl = float(np.sum(np.exp(ref_logp) * (ref_logp - logp)))
    t.add(top, label, ref, kl)
    return top, kl


def evaluate(prep: Prepared, data: str | Path, out_dir: Path, *, dense: Prepared | None = None,
             limit: int = 0, csim: int = 0, csim_backend=None, log=print) -> EvalResult:
    """Evaluate ``prep`` (the spec's design) on the folder ``data``; see the module doc.

    ``dense`` is the uncompressed 8-bit design of a spec that compresses its weights
    (prepared here when not given). ``limit`` > 0 evaluates a seeded random subset of that
    many images. ``csim_backend``: a ``CsimBackend`` of ``prep`` already built, to reuse
    (default: one is built when ``csim`` > 0). Raises ``InputNotFound`` / ``InputError``
    for a bad folder (missing, ambiguous class folders, unknown class names, no readable
    image).
    """
    from model.photos import default_resize, load_image, spec_frame
    from model.progress import progress

    t0 = time.perf_counter()
    spec = prep.spec
    found: EvalFolder = scan_eval_folder(data, folder_labeller(spec.classes), limit=limit,
                                         seed=spec.seed)
    designs = [prep]
    if spec.compression.active:
        if dense is None:
            from hls.plan.prepare import prepare
            from model.spec import CompressionSpec

            dense = prepare(replace(spec, compression=CompressionSpec()), log=log)
        designs = [dense, prep]
    float_w = prep.reference
    gap = prep.nodes[-1].name
    layout = (f"{len(found.classes)} class folders (labelled)" if found.labelled
              else "flat folder (unlabelled: agreement only)")
    log(f"== eval {spec.name} ({spec.preprocess} preprocessing, {spec.height}x{spec.width}) "
        f"on {found.root}: {len(found.images)} images, {layout}")
    f_tally = Tally("float")
    tallies = [Tally(_design_name(d)) for d in designs]
    skipped = list(found.skipped)
    rows: list[dict] = []
    csim_frames: list[Frame] = []
    for path, label in progress(found.images, "eval", unit="image"):
        try:
            pixels = spec_frame(load_image(path).rgb, spec)
        except (SqzError, ValueError, OSError) as exc:
            msg = str(exc)
            skipped.append((path, msg.removeprefix(f"{path}: ").removeprefix(f"{path} ")))
            continue
        f_logits = float_forward(prep.nodes, float_w, pixels)[gap]
        f_top = np.argsort(-f_logits, kind="stable")[:K]
        f_logp = log_softmax(f_logits)
        f_tally.add(f_top, label, None)
        row = {"image": str(path), "label": "" if label is None else label,
               "float_top5": " ".join(map(str, f_top))}
        for key, d, t in zip(("int8", "compressed"), designs, tallies, strict=False):
            top, kl = _run_design(t, d, pixels, label, f_top, f_logp)
            row[f"{key}_top5"] = " ".join(map(str, top))
            row[f"{key}_top1_agrees"] = int(top[0] == f_top[0])
            row[f"{key}_top5_overlap"] = len(set(top.tolist()) & set(f_top.tolist()))
            row[f"{key}_kl"] = f"{kl:.6g}"
        rows.append(row)
        if len(csim_frames) < csim:
            csim_frames.append(Frame(str(path), pixels))
    if not rows:
        raise InputError(f"{found.root}: none of the {len(found.images)} images could be read "
                         f"({'; '.join(f'{p}: {w}' for p, w in skipped[:3])}"
                         f"{'; ...' if len(skipped) > 3 else ''})")
    csim_res = None
    if csim > 0:
        from hls.infer.classify import CsimBackend

        log(f"== hls4ml C simulation of {len(csim_frames)} images, every layer checked against "
            "the golden model")
        backend = csim_backend or CsimBackend(prep, log)
        before = replace(backend.checked)
        backend.run(csim_frames)
        now = backend.checked
        csim_res = {"frames": now.frames - before.frames,
                    "compared": now.compared - before.compared,
                    "mismatches": now.mismatches - before.mismatches,
                    "first_mismatch": "" if now.mismatches == before.mismatches
                    else now.first_mismatch}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "per_image.csv", "json": out_dir / "summary.json"}
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = EvalResult(spec.name, found.root, found.labelled, f_tally, tallies, skipped,
                        csim_res, paths, time.perf_counter() - t0)
    summary = {
        "spec": spec.name, "data": str(found.root), "labelled": found.labelled,
        "classes_found": found.classes, "images": result.images,
        "preprocess": {"method": spec.preprocess,
                       "resize": spec.resize or default_resize(spec.height, spec.preprocess),
                       "size": spec.height},
        "skipped": [{"path": str(p), "reason": w} for p, w in skipped],
        "float": f_tally.summary(is_float=True),
        "designs": {t.name: t.summary(is_float=False) for t in tallies},
        "paired_vs_8bit": {t.name: {k: {"mean": m, "stderr": e} for k, (m, e)
                                    in paired_difference(tallies[0], t).items()}
                           for t in tallies[1:]},
        "csim": csim_res, "seconds": result.seconds,
    }
    paths["json"].write_text(json.dumps(summary, indent=2) + "\n")
    return result
