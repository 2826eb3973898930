"""Microarchitecture design-space exploration (paper Section 5, Figures 3 and 4).

A grid of squeeze ratios (SR) x 3x3 shares (pct3x3) over a base spec (by default
``configs/fashion_mnist.yaml``; every other metaparameter stays the base's). For each point:

- size: parameters, 8-bit weight bytes, MACs per frame (``model.graph``);
- hardware: a balanced folding for a target frame rate (``--fps``; default the spec's
  ``target_cycles_per_frame``) within the multiplier budget (default the part's DSP
  slices, ``hls.plan.folding.fold_within_budget``), giving multipliers, cycles per frame and
  projected frames/s (``hls.plan.perf``), and BRAM18 blocks (``hls.plan.memory``) from the 8-bit
  quantization plan calibrated on a few training images;
- accuracy: training on Fashion-MNIST (``model.train.train``), then float and 8-bit
  (bit-exact golden model) top-1 accuracy on test images (``evaluate_quantized``).

Schedules. The default (:data:`SHORT`) is a screening schedule: 1 epoch over a seeded
subset of 10,000 training images (batch 64, SGD with momentum 0.9, lr 0.04 decreasing
linearly to zero, the paper's), tested on the first 1,000 test images; the 20-point grid
takes a few minutes on two cores. :data:`FULL` (``--full``) trains 10 epochs on all 60,000
images and tests on all 10,000 (the paper trains 90 epochs at batch 1024 on ImageNet).
``epochs=0`` skips training: hardware metrics only (seeded random weights calibrate the
8-bit formats). The same seed, training subset and calibration images serve every point,
so points differ only by their metaparameters; training is deterministic (op determinism,
one TensorFlow thread per point).

pct3x3 at the grid's ends. With ``pct3x3`` 0.01 or 0.99 a narrow network (the Fashion-MNIST
base has 32 expand filters in its first Fire modules) would round one kind of expand filter
to zero, which the spec forbids. Such a value is moved to the nearest value this DSE uses
that gives the narrowest Fire module exactly one filter of the minority kind,
``1/base_e`` or ``1 - 1/base_e``; rows keep the requested ``pct3x3`` and show the value
used (``pct3x3_used``) and the realized 3x3 share of all expand filters (``share3x3``).

Execution. Points run in parallel in separate processes (``concurrent.futures``
``ProcessPoolExecutor``, spawn, ``workers`` of them, default 2), or on a cluster through
Ray (``engine='ray'``) or Dask distributed (``engine='dask'``), both optional and imported
only when asked; cluster workers need this project installed. ``engine='serial'`` runs
points in this process one after the other (debugging, tests). Every finished point is
written atomically to ``<out>/points/<key>.json`` at once; a later run with the same
settings reuses it (``restart=True`` recomputes). The key holds SR, pct3x3 and a digest
of the base spec and the settings, so a changed schedule or target never reuses a stale
point.

Outputs in ``<out>`` (default ``build/dse``): ``results.csv`` and ``results.json`` (one row
per grid point), ``accuracy_vs_size.png`` (Figures 3/4: accuracy against 8-bit weight
bytes, one curve per sweep) and ``hardware.png`` (accuracy against BRAM18, frames/s and
multipliers with the Pareto fronts marked), and the folded weights of every trained point
in ``weights/<key>.npz``. The CSV/JSON writing, the Pareto front, the text table and the
plots live in :mod:`hls.dse_report`; their public names are re-exported here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from hls.dse_report import (  # noqa: F401  (re-exported: hls.dse's public names)
    CSV_COLUMNS,
    PARETO_OBJECTIVES,
    format_table,
    mark_pareto,
    pareto_front,
    plot_accuracy_vs_size,
    plot_hardware,
    write_json_atomic,
    write_results,
)
from model import paths
from model.errors import SqzError
from model.graph import build_graph, macs_per_frame, parameter_count
from model.paths import TRAIN_CONFIG
from model.progress import ProgressBar
from model.spec import NetworkSpec, SpecError

DEFAULT_CONFIG = TRAIN_CONFIG
DEFAULT_OUT = paths.BUILD / "dse"
DEFAULT_SR = (0.125, 0.25, 0.5, 0.75)
DEFAULT_PCT3X3 = (0.01, 0.25, 0.5, 0.75, 0.99)
ENGINES = ("local", "ray", "dask", "serial")
GRID_KEYS = ("SR", "pct3x3")
FORMAT_VERSION = 1

THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "2"}


class GridError(SpecError):
    """A grid value or grid file that the DSE cannot use; the message names the range."""


class EngineUnavailable(SqzError):
    """The requested cluster engine is not installed."""


class PointsFailed(SqzError, RuntimeError):
    """Some points of the sweep raised; the message gives each point's error type and
    message, and the finished points are kept for a rerun."""

    exit_code = 1


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Everything besides (SR, pct3x3) that decides a point's result."""

    epochs: int = 1              # 0: no training, hardware metrics only
    limit: int = 10_000          # training images: a seeded subset (0 = all)
    test_images: int = 1000      # the first N test images (0 = all)
    calib: int = 32              # training images that calibrate the 8-bit formats
    batch_size: int = 64
    optimizer: str = "sgd"
    lr_schedule: str = "linear"
    lr: float | None = None      # None: model.train's default (0.04 for SGD)
    qat: bool = False            # quantization-aware training (QKeras)
    fps: float | None = None     # target frames/s; None: the spec's target_cycles_per_frame
    dsp: int | None = None       # multiplier budget; None: the part's DSP slices
    data: str = "fashion-mnist"  # 'fashion-mnist', a folder of its IDX files, 'synthetic:N'

    @property
    def train(self) -> bool:
        return self.epochs > 0


SHORT = Settings()
FULL = replace(SHORT, epochs=10, limit=0, test_images=0)


@dataclass(frozen=True)
class Grid:
    sr: tuple[float, ...] = DEFAULT_SR
    pct3x3: tuple[float, ...] = DEFAULT_PCT3X3

    def __post_init__(self) -> None:
        object.__setattr__(self, "sr", validate_values("SR", self.sr))
        object.__setattr__(self, "pct3x3", validate_values("pct3x3", self.pct3x3))

    def points(self) -> list[tuple[float, float]]:
        return [(s, p) for s in self.sr for p in self.pct3x3]


_RANGES = {"SR": ("(0, 1]", lambda v: 0.0 < v <= 1.0),
           "pct3x3": ("(0, 1)", lambda v: 0.0 < v < 1.0)}


def validate_values(name: str, values: Iterable) -> tuple[float, ...]:
    """Sorted, de-duplicated floats, each in the metaparameter's allowed range."""
    if name not in _RANGES:
        raise GridError(f"unknown grid axis {name!r}; allowed: {', '.join(GRID_KEYS)}")
    allowed, ok = _RANGES[name]
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise GridError(f"{name}: expected a list of numbers in {allowed}, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise GridError(f"{name}: {v!r} is not a number; {name} values must lie in "
                            f"{allowed}")
        if not ok(float(v)):
            raise GridError(f"{name}: {v!r} is outside the allowed range {allowed}")
        out.append(float(v))
    if not out:
        raise GridError(f"{name}: the grid needs at least one value in {allowed}")
    return tuple(sorted(set(out)))


def parse_values(name: str, text: str) -> tuple[float, ...]:
    """``'0.125,0.25'`` -> (0.125, 0.25), validated for the axis ``name``."""
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise GridError(f"{name}: {part!r} is not a number; give comma-separated "
                            f"values in {_RANGES.get(name, ('?',))[0]}, e.g. 0.125,0.25"
                            ) from None
    return validate_values(name, values)


def load_grid_file(path: str | Path) -> Grid:
    """A YAML grid: ``SR: [...]`` and/or ``pct3x3: [...]`` (a missing axis: the default)."""
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise GridError(f"{path}: expected a mapping with keys {', '.join(GRID_KEYS)}")
    unknown = sorted(set(map(str, raw)) - set(GRID_KEYS))
    if unknown:
        raise GridError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; "
                        f"allowed: {', '.join(GRID_KEYS)}")
    try:
        return Grid(tuple(raw.get("SR", DEFAULT_SR)), tuple(raw.get("pct3x3", DEFAULT_PCT3X3)))
    except TypeError:
        raise GridError(f"{path}: SR and pct3x3 must be lists of numbers") from None


def make_grid(sr: str | None = None, pct: str | None = None,
              grid_file: str | Path | None = None) -> Grid:
    """The CLI's grid: a grid file (or the defaults), axes overridden by ``--sr``/``--pct``."""
    grid = load_grid_file(grid_file) if grid_file else Grid()
    return Grid(parse_values("SR", sr) if sr else grid.sr,
                parse_values("pct3x3", pct) if pct else grid.pct3x3)


# ------------------------------------------------------------------------------- points


def realizable_pct3x3(spec: NetworkSpec, pct: float) -> float:
    """``pct`` if every Fire module keeps both expand kinds, else the nearest end value.

    The ends are ``1/base_e`` and ``1 - 1/base_e``: the narrowest Fire module (``base_e``
    expand filters) then has exactly one 3x3 (or one 1x1) filter.
    """
    validate_values("pct3x3", [pct])
    m = spec.meta
    candidates = [pct]
    if pct < 0.5:
        candidates.append(max(pct, 1.0 / m.base_e))
    else:
        candidates.append(min(pct, 1.0 - 1.0 / m.base_e))
    for p in candidates:
        try:
            replace(spec, meta=replace(m, pct3x3=p)).fire_sizes()
            return p
        except SpecError as exc:
            error = exc
    raise GridError(f"pct3x3={pct}: no Fire module size is possible near it with base_e="
                    f"{m.base_e}: {error}")


def point_spec(base: NetworkSpec, sr: float, pct: float) -> NetworkSpec:
    """The base spec with SR and pct3x3 replaced (pct3x3 as given: see realizable_pct3x3)."""
    validate_values("SR", [sr])
    spec = replace(base, meta=replace(base.meta, SR=float(sr), pct3x3=float(pct)))
    try:
        spec.fire_sizes()
    except SpecError as exc:
        raise GridError(f"SR={sr}, pct3x3={pct}: {exc}") from exc
    return spec


def target_cycles(spec: NetworkSpec, settings: Settings) -> int | None:
    """The folding's cap in cycles per frame (None: as fast as the DSP budget allows)."""
    if settings.fps is None:
        return spec.target.target_cycles_per_frame
    if not settings.fps > 0:
        raise GridError(f"fps: must be > 0, got {settings.fps}")
    return max(1, int(spec.target.clock_mhz * 1e6 // settings.fps))


@dataclass(frozen=True)
class PointTask:
    """One grid point, everything a worker needs (picklable)."""

    spec: NetworkSpec       # the base spec with SR and pct3x3_used applied
    sr: float
    pct3x3: float           # as requested
    pct3x3_used: float
    settings: Settings
    key: str
    out_dir: str


def point_key(spec: NetworkSpec, sr: float, pct: float, settings: Settings) -> str:
    """``sr<SR>_pct<pct3x3>_<digest>``; the digest covers the spec and the training
    settings, not the hardware target (``fps``, ``dsp``): a new target reuses the trained
    point and recomputes only its (cheap) hardware metrics."""
    trained = asdict(replace(settings, fps=None, dsp=None))
    h = hashlib.sha256(json.dumps({"spec": repr(spec), "settings": trained,
                                   "version": FORMAT_VERSION}, sort_keys=True).encode())
    return f"sr{sr:g}_pct{pct:g}_{h.hexdigest()[:10]}"


def make_tasks(base: NetworkSpec, grid: Grid, settings: Settings,
               out_dir: str | Path) -> list[PointTask]:
    _check_settings(base, settings)
    tasks = []
    for sr, pct in grid.points():
        used = realizable_pct3x3(point_spec(base, sr, 0.5), pct)
        spec = point_spec(base, sr, used)
        tasks.append(PointTask(spec, sr, pct, used, settings,
                               point_key(spec, sr, pct, settings), str(out_dir)))
    return tasks


def _check_settings(base: NetworkSpec, s: Settings) -> None:
    for name in ("epochs", "limit", "test_images"):
        if getattr(s, name) < 0:
            raise GridError(f"{name}: must be >= 0, got {getattr(s, name)}")
    if s.calib < 1 or s.batch_size < 1:
        raise GridError("calib and batch_size must be >= 1")
    if s.dsp is not None and s.dsp < 1:
        raise GridError(f"dsp: must be >= 1, got {s.dsp}")
    target_cycles(base, s)
    if s.data.startswith("synthetic:"):
        n = s.data.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise GridError(f"data: 'synthetic:N' needs a positive N, got {s.data!r}")
    elif base.classes != 10:
        raise SpecError(f"classes: Fashion-MNIST has 10 classes, the base spec has "
                        f"{base.classes}")


# --------------------------------------------------------------------- per-point worker


@lru_cache(maxsize=4)
def _dataset(data: str, height: int, width: int, channels: int, classes: int, seed: int,
             limit: int, test_images: int):
    """(x, y, x_test, y_test) uint8/int64; the training subset drawn from ``seed``."""
    if data.startswith("synthetic:"):
        n = int(data.split(":", 1)[1])
        rng = np.random.default_rng([seed, 99])
        shape = (height, width, channels)
        x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        y = rng.integers(0, classes, n).astype(np.int64)
        nt = max(1, min(n, test_images or n))
        xt = rng.integers(0, 256, (nt, *shape), dtype=np.uint8)
        yt = rng.integers(0, classes, nt).astype(np.int64)
    else:
        from model.datasets import FASHION_MNIST_ROOT, load_fashion_mnist

        root = FASHION_MNIST_ROOT if data == "fashion-mnist" else Path(data)
        x, y = load_fashion_mnist(root, "train", height, width, channels)
        xt, yt = load_fashion_mnist(root, "test", height, width, channels)
        if test_images:
            xt, yt = xt[:test_images], yt[:test_images]
    if limit and limit < len(y):  # the same seeded subset as `sqz train --limit`
        keep = np.sort(np.random.default_rng(seed).permutation(len(y))[:limit])
        x, y = x[keep], y[keep]
    return (np.ascontiguousarray(x), y, np.ascontiguousarray(xt), yt)


def _calibration_frames(x: np.ndarray, seed: int, n: int) -> list[np.ndarray]:
    return list(x[np.random.default_rng(seed + 1).permutation(len(x))[:n]])


@dataclass
class TrainOutcome:
    weights: dict
    float_accuracy: float
    accuracy: float
    agreement: float
    train_seconds: float
    eval_seconds: float
    history: list = field(default_factory=list)
    plan: object = None     # the calibrated QuantPlan (None: run_point calibrates)


def _limit_tf_threads() -> None:
    from model.train import _tf

    tf = _tf()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already initialised in this process: keep its pools
        pass


def train_and_evaluate(spec: NetworkSpec, nodes, data, settings: Settings,
                       checkpoint_dir: Path | None) -> TrainOutcome:
    """Train the point's network, then float and 8-bit accuracy on the test images."""
    _limit_tf_threads()
    from model.train import evaluate_quantized, train

    x, y, xt, yt = data
    res = train(spec, nodes, x, y, epochs=settings.epochs, batch_size=settings.batch_size,
                lr_schedule=settings.lr_schedule, lr=settings.lr, optimizer=settings.optimizer,
                checkpoint_dir=checkpoint_dir, quantized=settings.qat, verbose=0,
                log=lambda _msg: None)
    t0 = time.perf_counter()
    ev = evaluate_quantized(spec, nodes, res.weights, xt, yt,
                            _calibration_frames(x, spec.seed, settings.calib))
    return TrainOutcome(res.weights, ev.float_accuracy, ev.int8_accuracy, ev.agreement,
                        res.seconds, time.perf_counter() - t0, res.history, ev.plan)


def hardware_metrics(spec: NetworkSpec, nodes, settings: Settings) -> dict:
    """Size, folding and throughput of a spec (no weights needed)."""
    from hls.plan.parts import part_info
    from hls.plan.perf import perf_report
    from hls.plan.prepare import fold

    part = part_info(spec.target.part)
    budget = settings.dsp or part.dsp
    target = target_cycles(spec, settings)
    folding = fold(spec, nodes, target, budget)
    perf = perf_report(spec.name, folding, spec.target.clock_mhz, part.dsp)
    sizes = spec.fire_sizes()
    e3 = sum(s[2] for s in sizes)
    return {
        "fire_sizes": [list(s) for s in sizes],
        "share3x3": e3 / sum(s[1] + s[2] for s in sizes),
        "parameters": parameter_count(nodes),
        "weight_bytes": sum(n.weight_count for n in nodes) * spec.quant.weight_bits // 8,
        "macs": macs_per_frame(nodes),
        "target_fps": spec.target.clock_mhz * 1e6 / target if target else None,
        "target_cycles": target,
        "met_cycles": perf.bottleneck.cycles,
        "dsp_budget": budget,
        "multipliers": perf.multipliers,
        "dsps": perf.dsps,
        "cycles_per_frame": perf.cycles_per_frame,
        "fps": perf.fps,
        "efficiency": perf.efficiency,
        "bottleneck": perf.bottleneck.name,
        "_folding": folding,
    }


def _task_data(task: PointTask):
    spec, s = task.spec, task.settings
    return _dataset(s.data, spec.height, spec.width, spec.channels, spec.classes, spec.seed,
                    s.limit, s.test_images)


def _hardware_row(task: PointTask, nodes, weights, plan, calib_x: np.ndarray) -> dict:
    """Folding, throughput and on-chip memory of the point (``plan`` None: calibrate)."""
    from hls.plan.prepare import fifos_and_memory
    from model.quantize import calibrate

    spec, s = task.spec, task.settings
    hw = hardware_metrics(spec, nodes, s)
    folding = hw.pop("_folding")
    if plan is None:
        plan = calibrate(nodes, weights, _calibration_frames(calib_x, spec.seed, s.calib), spec)
    _, mem = fifos_and_memory(spec, nodes, plan, folding)
    return {**hw, "bram18": mem.bram18, "bram18_part": mem.part.bram18,
            "on_chip_bytes": mem.total_bytes, "fits": not mem.fits(),
            "problems": "; ".join(mem.fits()),
            "hardware_settings": {"fps": s.fps, "dsp": s.dsp}}


def refresh_hardware(task: PointTask, row: dict) -> dict | None:
    """A finished point's row with the hardware metrics redone for ``task``'s target
    (``fps``/``dsp``); the trained weights come from ``weights/<key>.npz``. None when
    they are missing (the point must be recomputed)."""
    from model.builder import random_weights
    from model.weights import load_weights

    nodes = build_graph(task.spec)
    if task.settings.train:
        path = Path(task.out_dir) / "weights" / f"{task.key}.npz"
        if not path.is_file():
            return None
        weights = load_weights(path)
    else:
        weights = random_weights(nodes, task.spec.seed)
    hw = _hardware_row(task, nodes, weights, None, _task_data(task)[0])
    return {**row, **hw, "settings": asdict(task.settings)}


def run_point(task: PointTask) -> dict:
    """Compute one grid point (in whatever process runs it) and return its result row."""
    for k, v in THREAD_ENV.items():
        os.environ.setdefault(k, v)
    from model.builder import random_weights

    t0 = time.perf_counter()
    spec, s = task.spec, task.settings
    nodes = build_graph(spec)
    data = _task_data(task)
    out = Path(task.out_dir)
    row: dict = {"key": task.key, "SR": task.sr, "pct3x3": task.pct3x3,
                 "pct3x3_used": task.pct3x3_used}
    plan = None
    if s.train:
        ckpt = out / "checkpoints" / task.key
        got = train_and_evaluate(spec, nodes, data, s, ckpt if s.epochs > 1 else None)
        plan = got.plan
        weights = got.weights
        row.update(float_accuracy=got.float_accuracy, accuracy=got.accuracy,
                   agreement=got.agreement, train_seconds=got.train_seconds,
                   eval_seconds=got.eval_seconds,
                   history=got.history[-1] if got.history else {})
        from model.weights import save_weights

        save_weights(out / "weights" / f"{task.key}.npz", weights)
        shutil.rmtree(ckpt, ignore_errors=True)
    else:
        weights = random_weights(nodes, spec.seed)
        row.update(float_accuracy=None, accuracy=None, agreement=None, train_seconds=0.0,
                   eval_seconds=0.0)
    row.update(_hardware_row(task, nodes, weights, plan, data[0]))
    row.update(epochs=s.epochs, train_images=len(data[1]) if s.train else 0,
               test_images=len(data[3]) if s.train else 0,
               settings=asdict(s), spec=spec.name, version=FORMAT_VERSION)
    row["point_seconds"] = time.perf_counter() - t0
    return row


# ------------------------------------------------------------------------------ engines


@contextmanager
def _thread_env():
    """One BLAS/OpenMP/TensorFlow thread in the worker processes started inside."""
    old = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update(THREAD_ENV)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


Done = Callable[[PointTask, dict | None, BaseException | None], None]


def _run_serial(tasks: list[PointTask], done: Done) -> None:
    for t in tasks:
        try:
            row = run_point(t)
        except Exception as exc:  # noqa: BLE001 - reported with the point
            done(t, None, exc)
        else:
            done(t, row, None)


def _run_local(tasks: list[PointTask], workers: int, done: Done) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold TF
    with _thread_env(), ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_point, t): t for t in tasks}
        for fut in as_completed(futures):
            exc = fut.exception()
            done(futures[fut], None if exc else fut.result(), exc)


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise EngineUnavailable(
            "--engine ray needs Ray, which is not installed (it is not a dependency of this "
            "project): pip install ray") from exc
    return ray


def _import_dask():
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise EngineUnavailable(
            "--engine dask needs Dask distributed, which is not installed (it is not a "
            'dependency of this project): pip install "dask[distributed]"') from exc
    return Client, LocalCluster, as_completed


def _run_ray(tasks: list[PointTask], workers: int, address: str | None, done: Done) -> None:
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": workers}
        ray.init(runtime_env={"env_vars": THREAD_ENV}, **kwargs)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_point)
        pending = {remote.remote(t): t for t in tasks}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            t = pending.pop(ready[0])
            try:
                row = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001
                done(t, None, exc)
            else:
                done(t, row, None)
    finally:
        if started:
            ray.shutdown()


def _run_dask(tasks: list[PointTask], workers: int, address: str | None, done: Done) -> None:
    Client, LocalCluster, as_completed = _import_dask()
    with _thread_env():
        if address:
            client = Client(address)
        else:
            client = Client(LocalCluster(n_workers=workers, threads_per_worker=1,
                                         processes=True, dashboard_address=None))
    try:
        futures = {client.submit(run_point, t, key=f"dse-{t.key}", pure=False): t
                   for t in tasks}
        for fut in as_completed(list(futures)):
            t = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001
                done(t, None, exc)
            else:
                done(t, row, None)
    finally:
        cluster = client.cluster
        client.close()
        if cluster is not None and not address:
            cluster.close()


def check_engine(engine: str) -> None:
    """Fail before any work when the engine is unknown or not installed."""
    if engine not in ENGINES:
        raise GridError(f"engine: {engine!r} is not allowed; allowed: {', '.join(ENGINES)}")
    if engine == "ray":
        _import_ray()
    elif engine == "dask":
        _import_dask()


# ------------------------------------------------------------------------ orchestration


def _read_point(path: Path, key: str) -> dict | None:
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and row.get("key") == key else None


@dataclass
class DSEResult:
    rows: list[dict]
    wall_seconds: float
    computed: int
    reused: int
    paths: dict[str, Path]
    notes: list[str] = field(default_factory=list)


def run_dse(base: NetworkSpec, grid: Grid | None = None, settings: Settings = SHORT,
            out_dir: str | Path = DEFAULT_OUT, engine: str = "local", workers: int = 2,
            address: str | None = None, restart: bool = False, plots: bool = True,
            log: Callable[[str], None] = print) -> DSEResult:
    """Run (or resume) the sweep and write results.csv/json and the plots in ``out_dir``."""
    t_start = time.perf_counter()
    grid = grid or Grid()
    check_engine(engine)
    if workers < 1:
        raise GridError(f"workers: must be >= 1, got {workers}")
    out = Path(out_dir)
    tasks = make_tasks(base, grid, settings, out)
    notes = [f"pct3x3={t.pct3x3:g} leaves a Fire module without 1x1 or 3x3 filters at "
             f"base_e={base.meta.base_e}; used {t.pct3x3_used:.4g}"
             for t in tasks if t.pct3x3_used != t.pct3x3 and t.sr == grid.sr[0]]
    for n in notes:
        log(f"note: {n}")
    rows: dict[str, dict] = {}
    todo = []
    refreshed = 0
    for t in tasks:
        found = None if restart else _read_point(out / "points" / f"{t.key}.json", t.key)
        target = {"fps": settings.fps, "dsp": settings.dsp}
        if found is not None and found.get("hardware_settings") != target:
            found = refresh_hardware(t, found)  # new fps / dsp target: no retraining
            if found is not None:
                write_json_atomic(out / "points" / f"{t.key}.json", found)
                refreshed += 1
        if found is not None:
            rows[t.key] = found
        else:
            todo.append(t)
    reused = len(rows)
    if refreshed:
        log(f"   {refreshed} finished point(s) reused with hardware metrics redone for the "
            f"new target")
    log(f"== DSE: {len(tasks)} points ({len(grid.sr)} SR x {len(grid.pct3x3)} pct3x3), "
        f"{reused} already in {out / 'points'}, {len(todo)} to compute with engine "
        f"{engine}{'' if engine == 'serial' else f' ({workers} workers)'}; "
        + (f"training {settings.epochs} epoch(s) on "
           f"{settings.limit or 'all'} images, testing {settings.test_images or 'all'}"
           if settings.train else "no training (hardware metrics only)"))
    failures: list[str] = []
    # a bar on a terminal; piped, the [k/N] lines below are the progress
    bar = ProgressBar(len(todo), "dse", unit="point")

    def done(t: PointTask, row: dict | None, exc: BaseException | None) -> None:
        bar.update()
        if exc is not None:
            failures.append(f"SR={t.sr:g} pct3x3={t.pct3x3:g}: {type(exc).__name__}: {exc}")
            bar.log(log, f"   FAILED SR={t.sr:g} pct3x3={t.pct3x3:g}: {exc}")
            return
        write_json_atomic(out / "points" / f"{t.key}.json", row)
        rows[t.key] = row
        acc = ("" if row.get("accuracy") is None else
               f"8-bit {row['accuracy']:.1%} float {row['float_accuracy']:.1%}, ")
        bar.log(log, f"   [{len(rows)}/{len(tasks)}] SR={t.sr:g} pct3x3={t.pct3x3:g}: {acc}"
                f"{row['multipliers']} mult, {row['bram18']} BRAM18, "
                f"{row['point_seconds']:.1f} s")

    with bar:
        if engine == "serial" or not todo:
            _run_serial(todo, done)
        elif engine == "local":
            _run_local(todo, workers, done)
        elif engine == "ray":
            _run_ray(todo, workers, address, done)
        else:
            _run_dask(todo, workers, address, done)
    if failures:
        raise PointsFailed(f"{len(failures)} of {len(tasks)} DSE points failed (finished "
                           f"points are kept in {out / 'points'}): " + " | ".join(failures))
    ordered = [rows[t.key] for t in tasks]
    mark_pareto(ordered)
    wall = time.perf_counter() - t_start
    paths = write_results(ordered, out, {"grid": asdict(grid), "settings": asdict(settings),
                                         "base_spec": base.name, "engine": engine,
                                         "workers": workers, "wall_seconds": wall,
                                         "computed": len(todo), "reused": reused,
                                         "notes": notes})
    if plots and any(r.get("accuracy") is not None for r in ordered):
        paths["accuracy_vs_size"] = plot_accuracy_vs_size(ordered, grid, settings,
                                                          out / "accuracy_vs_size.png")
        paths["hardware"] = plot_hardware(ordered, settings, out / "hardware.png")
    return DSEResult(ordered, time.perf_counter() - t_start, len(todo), reused, paths, notes)
