"""Tests for hls.dse: grid parsing, per-point hardware metrics, resumability, Pareto
front, outputs, the process-pool path and the optional cluster engines.

Everything uses a 16x16 network with 8-wide Fire modules and seeded synthetic images; only
one test trains (two points, one step each, in two worker processes).
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hls import dse
from hls.plan.parts import part_info
from model.builder import random_weights
from model.graph import build_graph, macs_per_frame, parameter_count
from model.spec import spec_from_dict

TINY = {
    "name": "dse_tiny16", "variant": "custom",
    "input": {"height": 16, "width": 16, "channels": 3}, "classes": 4, "weights": "random",
    "seed": 3, "n_fire": 4, "conv1": {"filters": 8, "kernel": 3, "stride": 1},
    "pool_after": ["conv1", "fire3"],
    "metaparameters": {"base_e": 8, "incr_e": 8, "pct3x3": 0.5, "freq": 2, "SR": 0.25},
    "target": {"target_cycles_per_frame": 20000},
}
HW_ONLY = dse.Settings(epochs=0, data="synthetic:16", calib=4, test_images=8)


@pytest.fixture(scope="module")
def tiny():
    return spec_from_dict(TINY)


# -------------------------------------------------------------------------------- grid


def test_default_grid_is_the_papers() -> None:
    g = dse.Grid()
    assert g.sr == (0.125, 0.25, 0.5, 0.75)
    assert g.pct3x3 == (0.01, 0.25, 0.5, 0.75, 0.99)
    assert len(g.points()) == 20 and g.points()[0] == (0.125, 0.01)


def test_parse_values() -> None:
    assert dse.parse_values("SR", "0.25, 0.125,0.25") == (0.125, 0.25)  # sorted, unique
    assert dse.parse_values("pct3x3", "0.5") == (0.5,)
    with pytest.raises(dse.GridError, match=r"SR: .*outside the allowed range \(0, 1\]"):
        dse.parse_values("SR", "0.5,1.5")
    with pytest.raises(dse.GridError, match=r"SR: .*0.*outside the allowed range \(0, 1\]"):
        dse.parse_values("SR", "0")
    with pytest.raises(dse.GridError, match=r"pct3x3: .*outside the allowed range \(0, 1\)"):
        dse.parse_values("pct3x3", "1.0")
    with pytest.raises(dse.GridError, match="'abc' is not a number"):
        dse.parse_values("SR", "0.25,abc")
    with pytest.raises(dse.GridError, match="at least one value"):
        dse.parse_values("pct3x3", " , ")


def test_grid_file_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "grid.yaml"
    f.write_text("SR: [0.5, 0.25]\npct3x3: [0.5]\n")
    assert dse.load_grid_file(f) == dse.Grid((0.25, 0.5), (0.5,))
    g = dse.make_grid(sr="0.75", grid_file=f)  # --sr overrides the file's axis
    assert g.sr == (0.75,) and g.pct3x3 == (0.5,)
    f.write_text("SR: [0.5]\nsqueeze: [1]\n")
    with pytest.raises(dse.GridError, match="unknown key.*'squeeze'.*allowed: SR, pct3x3"):
        dse.load_grid_file(f)
    f.write_text("SR: [2.0]\n")
    with pytest.raises(dse.GridError, match=r"\(0, 1\]"):
        dse.load_grid_file(f)
    with pytest.raises(dse.GridError, match="not found"):
        dse.load_grid_file(tmp_path / "missing.yaml")


def test_cli_rejects_a_bad_sr_naming_the_range(capsys) -> None:
    from hls.cli import main

    assert main(["dse", "--sr", "0.5,3"]) == 2
    err = capsys.readouterr().err
    assert "SR" in err and "(0, 1]" in err


def test_extreme_pct3x3_moves_to_one_filter(tiny) -> None:
    # base_e = 8: pct3x3 0.01 would give no 3x3 filter in fire2, 0.99 no 1x1 filter.
    assert dse.realizable_pct3x3(tiny, 0.5) == 0.5
    assert dse.realizable_pct3x3(tiny, 0.01) == pytest.approx(1 / 8)
    assert dse.realizable_pct3x3(tiny, 0.99) == pytest.approx(7 / 8)
    lo = dse.point_spec(tiny, 0.25, dse.realizable_pct3x3(tiny, 0.01)).fire_sizes()
    hi = dse.point_spec(tiny, 0.25, dse.realizable_pct3x3(tiny, 0.99)).fire_sizes()
    assert lo[0][2] == 1 and hi[0][1] == 1


# --------------------------------------------------------------------- hardware metrics


def _task(spec, sr, pct, settings, out) -> dse.PointTask:
    return next(t for t in dse.make_tasks(spec, dse.Grid((sr,), (pct,)), settings, out))


def test_point_hardware_metrics_without_training(tiny, tmp_path: Path) -> None:
    task = _task(tiny, 0.5, 0.25, HW_ONLY, tmp_path)
    row = dse.run_point(task)
    spec = dse.point_spec(tiny, 0.5, 0.25)
    nodes = build_graph(spec)
    assert row["parameters"] == parameter_count(nodes)
    assert row["weight_bytes"] == sum(n.weight_count for n in nodes)  # 8-bit weights
    assert row["macs"] == macs_per_frame(nodes)
    from hls.plan.prepare import fold

    folding = fold(spec, nodes, 20000, part_info(spec.target.part).dsp)
    assert row["multipliers"] == sum(f.multipliers for f in folding.values())
    assert row["cycles_per_frame"] == max(f.cycles for f in folding.values()) <= 20000
    assert row["fps"] == pytest.approx(200e6 / row["cycles_per_frame"])
    assert row["target_fps"] == pytest.approx(200e6 / 20000)
    assert row["bram18"] > 0 and row["fits"] is True
    assert row["accuracy"] is None and row["float_accuracy"] is None
    assert row["fire_sizes"] == [list(s) for s in spec.fire_sizes()]


def test_fps_target_and_multiplier_budget(tiny, tmp_path: Path) -> None:
    slow = dse.run_point(_task(tiny, 0.5, 0.5, HW_ONLY, tmp_path))
    fast_settings = replace(HW_ONLY, fps=100_000.0)
    fast = dse.run_point(_task(tiny, 0.5, 0.5, fast_settings, tmp_path))
    assert fast["multipliers"] > slow["multipliers"]
    assert fast["fps"] >= 100_000 > slow["fps"]
    capped = dse.run_point(_task(tiny, 0.5, 0.5, replace(
        fast_settings, dsp=slow["dsps"] + 4), tmp_path))
    assert capped["dsps"] <= slow["dsps"] + 4
    assert slow["fps"] <= capped["fps"] < 100_000


# -------------------------------------------------------------------------- resumability


class CountingTrainer:
    """Stands in for hls.dse.train_and_evaluate: no TensorFlow, counts its calls."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, spec, nodes, data, settings, checkpoint_dir):
        self.calls.append(spec.meta.SR)
        acc = 0.5 + spec.meta.SR / 4 - spec.meta.pct3x3 / 10
        return dse.TrainOutcome(random_weights(nodes, spec.seed), acc + 0.01, acc, 0.9,
                                0.5, 0.1)


def test_finished_points_are_not_recomputed(tiny, tmp_path: Path, monkeypatch) -> None:
    fake = CountingTrainer()
    monkeypatch.setattr(dse, "train_and_evaluate", fake)
    settings = dse.Settings(epochs=1, data="synthetic:16", calib=4, test_images=8)
    grid = dse.Grid((0.25, 0.5), (0.5,))
    kw = {"out_dir": tmp_path, "engine": "serial", "plots": False, "log": lambda _m: None}
    first = dse.run_dse(tiny, grid, settings, **kw)
    assert len(fake.calls) == 2 and first.computed == 2 and first.reused == 0
    points = sorted((tmp_path / "points").glob("*.json"))
    assert len(points) == 2 and not list((tmp_path / "points").glob(".*tmp"))
    again = dse.run_dse(tiny, grid, settings, **kw)
    assert len(fake.calls) == 2 and again.reused == 2 and again.computed == 0
    assert [r["accuracy"] for r in again.rows] == [r["accuracy"] for r in first.rows]
    points[0].unlink()  # an interrupted sweep: only the missing point runs
    dse.run_dse(tiny, grid, settings, **kw)
    assert len(fake.calls) == 3
    dse.run_dse(tiny, grid, settings, restart=True, **kw)
    assert len(fake.calls) == 5
    # A new hardware target reuses the trained points, redoing only the hardware metrics.
    fast = dse.run_dse(tiny, grid, replace(settings, fps=1e5), **kw)
    assert len(fake.calls) == 5 and fast.reused == 2
    assert all(r["target_fps"] == pytest.approx(1e5, rel=1e-3) for r in fast.rows)
    # Different training settings are different points.
    dse.run_dse(tiny, grid, replace(settings, limit=8), **kw)
    assert len(fake.calls) == 7


# ------------------------------------------------------------------------ Pareto, outputs


def test_pareto_front_on_a_hand_made_set() -> None:
    rows = [
        {"n": "a", "acc": 0.90, "size": 100},
        {"n": "b", "acc": 0.85, "size": 50},
        {"n": "c", "acc": 0.80, "size": 60},   # dominated by b
        {"n": "d", "acc": 0.90, "size": 120},  # dominated by a (same accuracy, larger)
        {"n": "e", "acc": 0.70, "size": 10},
        {"n": "f", "acc": None, "size": 1},    # no accuracy: never on the front
        {"n": "g", "acc": 0.85, "size": 50},   # equal to b: neither dominates
    ]
    mask = dse.pareto_front(rows, [("acc", "max"), ("size", "min")])
    assert [r["n"] for r, m in zip(rows, mask, strict=True) if m] == ["a", "b", "e", "g"]
    fps = [{"acc": 0.9, "fps": 100}, {"acc": 0.8, "fps": 200}, {"acc": 0.7, "fps": 150}]
    assert dse.pareto_front(fps, [("acc", "max"), ("fps", "max")]) == [True, True, False]
    with pytest.raises(ValueError, match="'max' or 'min'"):
        dse.pareto_front(rows, [("acc", "up")])


def test_results_csv_json_and_plots(tiny, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(dse, "train_and_evaluate", CountingTrainer())
    settings = dse.Settings(epochs=1, data="synthetic:16", calib=4, test_images=8)
    grid = dse.Grid((0.25, 0.5, 0.75), (0.25, 0.5))
    res = dse.run_dse(tiny, grid, settings, tmp_path, engine="serial", log=lambda _m: None)
    with res.paths["csv"].open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    required = ["SR", "pct3x3", "parameters", "weight_bytes", "macs", "bram18", "multipliers",
                "dsps", "cycles_per_frame", "fps", "float_accuracy", "accuracy", "train_seconds"]
    assert reader.fieldnames[:len(required)] == required
    assert len(rows) == 6 and [(float(r["SR"]), float(r["pct3x3"])) for r in rows] == \
        grid.points()
    data = json.loads(res.paths["json"].read_text())
    assert len(data["rows"]) == 6 and data["grid"]["sr"] == [0.25, 0.5, 0.75]
    # The fake accuracy rises with SR and falls with pct3x3; SR=0.25 pct3x3=0.25 is the
    # smallest network, SR=0.75 pct3x3=0.25 the most accurate: both are on the front.
    front = {(r["SR"], r["pct3x3"]) for r in res.rows if r["pareto"]}
    assert {(0.25, 0.25), (0.75, 0.25)} <= front
    for name in ("accuracy_vs_size", "hardware"):
        png = res.paths[name]
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert "SR" in dse.format_table(res.rows).splitlines()[0]


def test_cli_dse_hardware_only(tmp_path: Path, build_tmp: Path, capsys) -> None:
    import yaml

    from hls.cli import main

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    rc = main(["dse", "--config", str(cfg), "--sr", "0.25,0.5", "--pct", "0.5",
               "--epochs", "0", "--data", "synthetic:16", "--calib", "4",
               "--engine", "serial", "--out", str(build_tmp / "out")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "sweep wall time" in out and "results.csv" in out
    assert len(list((build_tmp / "out" / "points").glob("*.json"))) == 2


# ---------------------------------------------------------------------------- engines


def test_process_pool_runs_two_tiny_points(tiny, tmp_path: Path) -> None:
    """The default engine: two worker processes, real training (one step) and evaluation."""
    settings = dse.Settings(epochs=1, limit=64, batch_size=64, data="synthetic:64",
                            calib=4, test_images=8)
    res = dse.run_dse(tiny, dse.Grid((0.25,), (0.25, 0.75)), settings, tmp_path,
                      engine="local", workers=2, plots=False, log=lambda _m: None)
    assert res.computed == 2 and len(res.rows) == 2
    for r in res.rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["float_accuracy"] <= 1.0
        assert r["train_seconds"] > 0 and r["train_images"] == 64 and r["test_images"] == 8
        assert (tmp_path / "weights" / f"{r['key']}.npz").is_file()
    saved = [json.loads(p.read_text()) for p in sorted((tmp_path / "points").glob("*.json"))]
    assert sorted(s["key"] for s in saved) == sorted(r["key"] for r in res.rows)


@pytest.mark.parametrize("engine, module, hint", [
    ("ray", "ray", "pip install ray"),
    ("dask", "dask.distributed", 'pip install "dask[distributed]"'),
])
def test_missing_cluster_engine_names_the_install_command(tiny, tmp_path, monkeypatch,
                                                          engine, module, hint) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    if module == "dask.distributed":
        monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(dse.EngineUnavailable, match=hint.replace("[", r"\[").replace("]", r"\]")):
        dse.run_dse(tiny, dse.Grid((0.25,), (0.5,)), HW_ONLY, tmp_path, engine=engine)
    assert not (tmp_path / "points").exists()  # failed before any work


def test_unknown_engine(tiny, tmp_path: Path) -> None:
    with pytest.raises(dse.GridError, match="allowed: local, ray, dask, serial"):
        dse.run_dse(tiny, dse.Grid((0.25,), (0.5,)), HW_ONLY, tmp_path, engine="slurm")


def test_synthetic_data_is_seeded() -> None:
    a = dse._dataset("synthetic:8", 16, 16, 3, 4, 1, 0, 4)
    dse._dataset.cache_clear()
    b = dse._dataset("synthetic:8", 16, 16, 3, 4, 1, 0, 4)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert a[0].shape == (8, 16, 16, 3) and a[2].shape == (4, 16, 16, 3)
