"""Reporting for the design-space exploration (``hls.dse``): results.csv / results.json,
the Pareto front, the text table and the matplotlib figures.

``hls.dse`` runs the grid and stores one row (a dict) per point; this module turns those
rows into outputs (:func:`mark_pareto` adds their ``pareto`` column). It imports nothing from
``hls.dse`` at run time, and ``hls.dse`` re-exports its public names.

- :func:`pareto_front` / :func:`mark_pareto`: non-dominated masks; the ``pareto`` column is
  the joint front over :data:`PARETO_OBJECTIVES`.
- :func:`write_results`: ``results.csv`` (columns :data:`CSV_COLUMNS`) and ``results.json``
  (run metadata and every row), both written atomically; :func:`write_json_atomic` also
  writes ``hls.dse``'s per-point files.
- :func:`format_table`: the table ``sqz dse`` prints.
- :func:`plot_accuracy_vs_size` (Figures 3/4) and :func:`plot_hardware` (accuracy against
  BRAM18, frames/s and multipliers with the Pareto fronts marked); matplotlib is imported
  only when a plot is drawn (Agg backend).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hls.dse import Grid, Settings


# ------------------------------------------------------------------------------- Pareto


def pareto_front(rows: Sequence[dict], objectives: Sequence[tuple[str, str]]) -> list[bool]:
    """Non-dominated mask: ``objectives`` are (column, 'max' | 'min').

    A row is dominated when another row is at least as good in every objective and
    strictly better in one. Rows missing an objective value are never on the front.
    """
    for _, d in objectives:
        if d not in ("max", "min"):
            raise ValueError(f"objective direction must be 'max' or 'min', got {d!r}")
    vecs = []
    for r in rows:
        vals = [r.get(c) for c, _ in objectives]
        vecs.append(None if any(v is None for v in vals) else
                    [float(v) if d == "max" else -float(v)
                     for v, (_, d) in zip(vals, objectives, strict=True)])
    mask = []
    for i, a in enumerate(vecs):
        if a is None:
            mask.append(False)
            continue
        dominated = any(b is not None and j != i
                        and all(y >= x for x, y in zip(a, b, strict=True))
                        and any(y > x for x, y in zip(a, b, strict=True))
                        for j, b in enumerate(vecs))
        mask.append(not dominated)
    return mask


PARETO_OBJECTIVES = (("accuracy", "max"), ("weight_bytes", "min"), ("bram18", "min"),
                     ("fps", "max"))


def mark_pareto(rows: list[dict]) -> None:
    """Column ``pareto``: on the joint front (8-bit accuracy, weight bytes, BRAM18, fps)."""
    for r, m in zip(rows, pareto_front(rows, PARETO_OBJECTIVES), strict=True):
        r["pareto"] = m


# ------------------------------------------------------------------------------ outputs


# One row per grid point; the first twelve are the required ones.
CSV_COLUMNS = (
    "SR", "pct3x3", "parameters", "weight_bytes", "macs", "bram18", "multipliers", "dsps",
    "cycles_per_frame", "fps", "float_accuracy", "accuracy", "train_seconds",
    "pct3x3_used", "share3x3", "target_fps", "dsp_budget", "efficiency", "bottleneck",
    "fits", "agreement", "eval_seconds", "point_seconds", "epochs", "train_images",
    "test_images", "pareto", "key",
)


def write_json_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default))
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def write_results(rows: list[dict], out: Path, meta: dict) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "results.csv", out / "results.json"
    tmp = csv_path.with_name(".results.csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else _csv_value(r.get(k)))
                        for k in CSV_COLUMNS})
    os.replace(tmp, csv_path)
    write_json_atomic(json_path, {**meta, "rows": rows})
    return {"csv": csv_path, "json": json_path}


def _csv_value(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def format_table(rows: list[dict]) -> str:
    head = (f"{'SR':>6} {'pct3x3':>7} {'used':>6} {'params':>8} {'wbytes':>8} {'MACs':>10} "
            f"{'BRAM18':>6} {'mult':>5} {'cycles':>7} {'fps':>7} {'float':>6} {'8-bit':>6} "
            f"{'train s':>7}  P")
    lines = [head]
    for r in rows:
        def pct(v):
            return "   -  " if v is None else f"{v:6.1%}"
        lines.append(
            f"{r['SR']:>6g} {r['pct3x3']:>7g} {r['pct3x3_used']:>6.3g} {r['parameters']:>8,d} "
            f"{r['weight_bytes']:>8,d} {r['macs']:>10,d} {r['bram18']:>6d} "
            f"{r['multipliers']:>5d} {r['cycles_per_frame']:>7,d} {r['fps']:>7,.0f} "
            f"{pct(r.get('float_accuracy'))} {pct(r.get('accuracy'))} "
            f"{r.get('train_seconds') or 0:>7.1f}  {'*' if r.get('pareto') else ''}")
    return "\n".join(lines)


def _anchor(values: Sequence[float], preferred: float = 0.5) -> float:
    vals = sorted(values)
    return preferred if preferred in vals else vals[len(vals) // 2]


def _schedule_text(s: Settings) -> str:
    return (f"{s.epochs} epoch{'s' if s.epochs != 1 else ''} on "
            f"{f'{s.limit:,d}' if s.limit else 'all'} training images"
            f"{', QAT' if s.qat else ''}; {s.test_images or 'all'} test images")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_size(rows: list[dict], grid: Grid, settings: Settings,
                          path: Path) -> Path:
    """Figures 3/4: 8-bit accuracy against 8-bit weight bytes, one curve per sweep."""
    plt = _plt()
    sr0, pct0 = _anchor(grid.sr), _anchor(grid.pct3x3)
    fig, ax = plt.subplots(figsize=(8, 5))
    have = [r for r in rows if r.get("accuracy") is not None]
    ax.scatter([r["weight_bytes"] / 1e3 for r in have], [100 * r["accuracy"] for r in have],
               s=14, color="#bbbbbb", label="other grid points", zorder=1)
    sweeps = (("SR", [r for r in have if r["pct3x3"] == pct0], f"pct3x3={pct0:g}", "#4477aa"),
              ("pct3x3", [r for r in have if r["SR"] == sr0], f"SR={sr0:g}", "#ee6677"))
    for (axis, sel, fixed, color), dy in zip(sweeps, (5, -11), strict=True):
        sel = sorted(sel, key=lambda r: r[axis])
        if not sel:
            continue
        xs = [r["weight_bytes"] / 1e3 for r in sel]
        ax.plot(xs, [100 * r["accuracy"] for r in sel], "o-", color=color,
                label=f"{axis} sweep ({fixed}), 8-bit", zorder=3)
        ax.plot(xs, [100 * r["float_accuracy"] for r in sel], "--", color=color, alpha=0.5,
                lw=1, label=f"{axis} sweep, float", zorder=2)
        for r, x in zip(sel, xs, strict=True):
            ax.annotate(f"{axis}={r[axis]:g}", (x, 100 * r["accuracy"]), fontsize=7,
                        textcoords="offset points", xytext=(4, dy), color=color)
    ax.set_xlabel("model size: 8-bit weights (kB)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"Fashion-MNIST accuracy vs model size (cf. paper Figs. 3 and 4)\n"
                 f"{_schedule_text(settings)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_hardware(rows: list[dict], settings: Settings, path: Path) -> Path:
    """Accuracy vs BRAM18, frames/s and multipliers; each panel's Pareto front marked."""
    plt = _plt()
    have = [r for r in rows if r.get("accuracy") is not None]
    panels = (("bram18", "min", "BRAM18 blocks"), ("fps", "max", "projected frames/s"),
              ("multipliers", "min", "multipliers (DSP)"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    srs = sorted({r["SR"] for r in have})
    cmap = plt.get_cmap("viridis")
    for ax, (col, direction, label) in zip(axes, panels, strict=True):
        front = pareto_front(have, (("accuracy", "max"), (col, direction)))
        for i, sr in enumerate(srs):
            sel = [r for r in have if r["SR"] == sr]
            ax.scatter([r[col] for r in sel], [100 * r["accuracy"] for r in sel],
                       s=[12 + 50 * r["pct3x3"] for r in sel],
                       color=cmap(i / max(len(srs) - 1, 1)), label=f"SR={sr:g}", zorder=2)
        on = sorted((r for r, m in zip(have, front, strict=True) if m), key=lambda r: r[col])
        ax.plot([r[col] for r in on], [100 * r["accuracy"] for r in on], "-", color="#cc3311",
                lw=1, zorder=1)
        ax.scatter([r[col] for r in on], [100 * r["accuracy"] for r in on], s=120,
                   facecolors="none", edgecolors="#cc3311", lw=1.5, zorder=3,
                   label="Pareto front")
        for r in on:
            ax.annotate(f"{r['SR']:g}/{r['pct3x3']:g}", (r[col], 100 * r["accuracy"]),
                        fontsize=7, textcoords="offset points", xytext=(4, -10),
                        color="#cc3311")
        xs = [r[col] for r in have]
        if xs and max(xs) - min(xs) < 0.05 * max(xs):  # e.g. every point meets the fps target
            pad = 0.05 * max(xs)
            ax.set_xlim(min(xs) - pad, max(xs) + pad)
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.set_xlabel(label + (" (higher is better)" if direction == "max" else ""))
        ax.set_ylabel("8-bit top-1 accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right", title="marker size ~ pct3x3",
                   title_fontsize=7)
    target = have[0]["target_fps"] if have else None
    goal = f"{target:,.0f} frames/s target" if target else "the fastest"
    fig.suptitle(f"Hardware view: folding for {goal} within "
                 f"{have[0]['dsp_budget'] if have else '?'} DSP slices; "
                 f"labels SR/pct3x3; {_schedule_text(settings)}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
