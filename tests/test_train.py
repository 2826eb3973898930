"""Tests for model.datasets and model.train: loaders, BN folding, determinism, resume, QAT.

Everything runs on a 16x16 network with 8-wide Fire modules and a few hundred synthetic
images, so the whole file takes well under a minute on two cores.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.datasets import (
    FASHION_MNIST_ROOT,
    image_folder_classes,
    load_fashion_mnist,
    load_image_folder,
    read_idx,
    to_input_size,
)
from model.graph import build_graph
from model.spec import spec_from_dict

TINY = {
    "name": "train_tiny16", "variant": "custom",
    "input": {"height": 16, "width": 16, "channels": 3}, "classes": 4, "weights": "random",
    "seed": 5, "n_fire": 4, "conv1": {"filters": 8, "kernel": 3, "stride": 1},
    "pool_after": ["conv1", "fire3"],
    "metaparameters": {"base_e": 8, "incr_e": 8, "pct3x3": 0.5, "freq": 2, "SR": 0.25},
}
HAVE_FASHION = (FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz").is_file()


# ------------------------------------------------------------------------------ IDX files


def write_idx(path: Path, array: np.ndarray, type_code: int = 0x08) -> Path:
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I",
                                                                *array.shape)
    data = header + np.asarray(array, dtype).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def test_read_idx_parses_hand_made_files(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    got = read_idx(write_idx(tmp_path / "img.gz", images))
    assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, images)
    ints = np.array([-5, 70000, 3], np.int32)  # big-endian int32, uncompressed
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "i.idx", ints, 0x0C)), ints)
    floats = np.array([[1.5, -2.25]], np.float32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "f.idx", floats, 0x0D)), floats)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short.idx"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="10 bytes"):
        read_idx(short)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing.gz")


def test_to_input_size_pads_centred_and_repeats_channels() -> None:
    gray = np.full((2, 28, 28), 9, np.uint8)
    x = to_input_size(gray, 32, 32, 3)
    assert x.shape == (2, 32, 32, 3) and x.dtype == np.uint8
    assert (x[:, 2:30, 2:30] == 9).all() and x[:, :2].sum() == 0 and x[:, 30:].sum() == 0
    assert x[:, :, :2].sum() == 0 and x[:, :, 30:].sum() == 0
    small = to_input_size(gray, 16, 16, 1)  # smaller inputs are resized
    assert small.shape == (2, 16, 16, 1) and (small == 9).all()


def _fake_fashion(root: Path) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8))
    return root


def test_load_fashion_mnist_from_idx_files(tmp_path: Path) -> None:
    root = _fake_fashion(tmp_path / "fm")
    raw = read_idx(root / "train-images-idx3-ubyte.gz")
    x, y = load_fashion_mnist(root, "train")
    assert x.shape == (5, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 2:30, 2:30, 1], raw)
    np.testing.assert_array_equal(y, np.arange(5))
    xt, yt = load_fashion_mnist(root, "test", 16, 16, 1)
    assert xt.shape == (3, 16, 16, 1) and list(yt) == [0, 1, 2]


def test_load_fashion_mnist_missing_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


@pytest.mark.skipif(not HAVE_FASHION, reason="Debian package dataset-fashion-mnist not "
                    "installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_test_split() -> None:
    x, y = load_fashion_mnist(split="test")
    assert x.shape == (10000, 32, 32, 3) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10
    assert (x[..., 0] == x[..., 2]).all() and x[:, :2].max() == 0 and x.max() == 255


# --------------------------------------------------------------------------- image folders


def _png(path: Path, rgb: tuple[int, int, int], size=(20, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)


def test_load_image_folder(tmp_path: Path) -> None:
    _png(tmp_path / "train" / "cat" / "a.png", (255, 0, 0))
    _png(tmp_path / "train" / "cat" / "b.jpg", (250, 0, 0))
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    _png(tmp_path / "train" / "dog" / "c.png", (0, 0, 255))
    _png(tmp_path / "val" / "dog" / "d.png", (0, 0, 255))
    assert image_folder_classes(tmp_path) == ["cat", "dog"]
    x, y = load_image_folder(tmp_path, 8)
    assert x.shape == (3, 8, 8, 3) and x.dtype == np.uint8 and y.tolist() == [0, 0, 1]
    assert x[0, 0, 0].tolist() == [0, 0, 255]  # BGR, as the camera path
    xv, yv = load_image_folder(tmp_path, 8, split="val")
    assert xv.shape == (1, 8, 8, 3) and yv.tolist() == [1]  # labels follow train/
    x1, _ = load_image_folder(tmp_path, 8, channels=1)
    assert x1.shape == (3, 8, 8, 1)


def test_load_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image_folder(tmp_path / "nope", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="'train' folder"):
        load_image_folder(tmp_path / "empty", 8)
    root = tmp_path / "ds"
    (root / "train" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        load_image_folder(root, 8)
    _png(root / "train" / "cat" / "ok.png", (1, 2, 3))
    (root / "train" / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image_folder(root, 8)
    (root / "train" / "cat" / "broken.jpg").unlink()
    _png(root / "val" / "bird" / "x.png", (1, 2, 3))
    with pytest.raises(ValueError, match="bird"):
        load_image_folder(root, 8, split="val")


# ------------------------------------------------------------------------------ training


def quadrant_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class c: quadrant c is bright (separable), the rest dim noise."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 60, (n, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 4, n)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 8 * r:8 * r + 8, 8 * q:8 * q + 8] += 150
    return x, y.astype(np.int64)


@pytest.fixture(scope="module")
def tiny():
    spec = spec_from_dict(TINY)
    return spec, build_graph(spec)


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    """One 2-epoch run, a repeat, and a run interrupted after epoch 1 then resumed."""
    from model.train import train

    spec, nodes = tiny
    x, y = quadrant_data(256, 0)
    kw = {"epochs": 2, "batch_size": 32, "verbose": 0}
    first = train(spec, nodes, x, y, **kw)
    again = train(spec, nodes, x, y, **kw)
    ckpt = tmp_path_factory.mktemp("ckpt")
    part = train(spec, nodes, x, y, checkpoint_dir=ckpt, stop_after=1, **kw)
    resumed = train(spec, nodes, x, y, checkpoint_dir=ckpt, **kw)
    return {"x": x, "y": y, "first": first, "again": again, "part": part,
            "resumed": resumed, "ckpt": ckpt, "kw": kw}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[k][0], b[k][0]) and np.array_equal(a[k][1], b[k][1]) for k in a)


def test_same_seed_gives_identical_weights(runs) -> None:
    assert runs["first"].epochs_done == 2 and len(runs["first"].history) == 2
    assert _same(runs["first"].weights, runs["again"].weights)


def test_resume_equals_uninterrupted_run(runs, tiny) -> None:
    assert runs["part"].epochs_done == 1 and runs["resumed"].resumed_from == 1
    assert not _same(runs["part"].weights, runs["first"].weights)
    assert _same(runs["resumed"].weights, runs["first"].weights)
    assert [h["loss"] for h in runs["resumed"].history] == \
        [h["loss"] for h in runs["first"].history]
    # A finished run is only reloaded; different settings start afresh.
    from model.train import train

    spec, nodes = tiny
    done = train(spec, nodes, runs["x"], runs["y"], checkpoint_dir=runs["ckpt"], **runs["kw"])
    assert done.resumed_from == 2 and _same(done.weights, runs["first"].weights)
    logs = []
    train(spec, nodes, runs["x"], runs["y"], checkpoint_dir=runs["ckpt"], stop_after=0,
          log=logs.append, **{**runs["kw"], "epochs": 3})
    assert any("starting afresh" in m for m in logs)


def test_folded_network_matches_keras_inference(runs, tiny) -> None:
    from model.quantize import float_forward
    from model.train import build_trainable, fold_batchnorm

    spec, nodes = tiny
    x = runs["x"][:3]
    model = runs["first"].model
    # Trained BN statistics, plus a model with deliberately odd BatchNorm parameters.
    odd = build_trainable(spec, nodes, seed=11)
    rng = np.random.default_rng(1)
    for n in nodes:
        if n.kind == "conv":
            c = n.out_shape[2]
            odd.get_layer(n.name + "_bn").set_weights([
                rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c),
                rng.uniform(0.2, 3, c)])
    for m in (model, odd):
        weights = fold_batchnorm(m, nodes)
        keras = m.predict(x.astype(np.float32), verbose=0)
        ours = np.stack([float_forward(nodes, weights, img)[nodes[-1].name] for img in x])
        assert np.abs(keras).max() > 0.01
        np.testing.assert_allclose(ours, keras, rtol=1e-4, atol=1e-5)


def test_training_reduces_the_loss_on_a_separable_problem(tiny) -> None:
    from model.train import keras_accuracy, train

    spec, nodes = tiny
    x, y = quadrant_data(192, 1)
    res = train(spec, nodes, x, y, epochs=4, batch_size=16, lr=0.04, lr_schedule="constant",
                verbose=0)
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < 0.7 * losses[0], losses
    x_test, y_test = quadrant_data(64, 2)
    assert keras_accuracy(res.model, x_test, y_test) > 0.6


def test_evaluate_quantized_returns_accuracies(runs, tiny) -> None:
    from model.train import evaluate_quantized

    spec, nodes = tiny
    x_test, y_test = quadrant_data(12, 3)
    ev = evaluate_quantized(spec, nodes, runs["first"].weights, x_test, y_test,
                            list(runs["x"][:8]))
    assert ev.images == 12
    for acc in (ev.float_accuracy, ev.int8_accuracy, ev.agreement):
        assert 0.0 <= acc <= 1.0
    assert set(ev.plan.layers) == {n.name for n in nodes}


def test_finetune_starts_from_the_given_weights(tiny) -> None:
    from model.builder import random_weights
    from model.quantize import float_forward
    from model.train import finetune

    spec, nodes = tiny
    given = random_weights(nodes, 3)
    x, y = quadrant_data(64, 4)
    res = finetune(spec, nodes, given, x, y, lr=1e-3, epochs=1, stop_after=0, verbose=0)
    assert res.epochs_done == 0
    for name, (k, b) in given.items():
        np.testing.assert_allclose(res.weights[name][0], k, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(res.weights[name][1], b, rtol=1e-4, atol=1e-5)
    keras = res.model.predict(x[:2].astype(np.float32), verbose=0)
    ours = np.stack([float_forward(nodes, given, img)[nodes[-1].name] for img in x[:2]])
    np.testing.assert_allclose(keras, ours, rtol=1e-4, atol=1e-5)


def test_quantization_aware_training_folds_its_quantized_kernels(tiny) -> None:
    from qkeras import QConv2D

    from model.train import train

    spec, nodes = tiny
    x, y = quadrant_data(64, 5)
    res = train(spec, nodes, x, y, epochs=1, batch_size=32, quantized=True, verbose=0)
    conv = res.model.get_layer("fire2_squeeze1x1")
    assert isinstance(conv, QConv2D)
    k_q = np.asarray(conv.kernel_quantizer_internal(conv.kernel))
    assert np.array_equal(k_q * 128, np.round(k_q * 128))  # quantized_bits(8, 0): 2**-7 grid
    bn = res.model.get_layer("fire2_squeeze1x1_bn")
    gamma, _, _, var = bn.get_weights()
    want = k_q * (gamma / np.sqrt(var + bn.epsilon))
    np.testing.assert_allclose(res.weights["fire2_squeeze1x1"][0], want, rtol=1e-5)
    assert all(np.isfinite(k).all() and np.isfinite(b).all() for k, b in res.weights.values())


def test_cli_train_on_an_image_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    import yaml

    from hls.cli import main
    from model import paths
    from model.weights import load_weights

    rng = np.random.default_rng(0)
    colours = {"red": (220, 30, 30), "green": (30, 220, 30), "blue": (30, 30, 220),
               "gray": (128, 128, 128)}
    for c, rgb in colours.items():
        for i in range(6):
            noisy = np.clip(np.array(rgb) + rng.integers(-20, 20, (16, 16, 3)), 0, 255)
            path = tmp_path / "data" / "train" / c / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(noisy.astype(np.uint8)).save(path)
    cfg = tmp_path / "tiny16.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    rc = main(["train", "--config", str(cfg), "--data", str(tmp_path / "data"),
               "--epochs", "1", "--batch-size", "8", "--calib", "4"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "8-bit accuracy (golden model, bit-exact)" in out and "float accuracy" in out
    weights = load_weights(tmp_path / "build" / "train" / "train_tiny16" / "weights.npz")
    assert set(weights) == {n.name for n in build_graph(spec_from_dict(TINY)) if n.kind == "conv"}


def test_finetune_keeps_pruned_weights_at_zero(tiny) -> None:
    """Deep Compression retraining: masked weights stay exactly zero, the others move."""
    from model.builder import random_weights
    from model.compress import prune
    from model.train import finetune

    spec, nodes = tiny
    pruned, masks = prune(random_weights(nodes, 3), 0.5, per_layer=True)
    x, y = quadrant_data(64, 4)
    res = finetune(spec, nodes, pruned, x, y, lr=1e-2, epochs=1, batch_size=16, verbose=0,
                   masks=masks)
    moved = 0
    for name, m in masks.items():
        k = res.weights[name][0]
        assert np.all(k[~m] == 0), f"{name}: a pruned weight came back"
        moved += int(np.sum(k[m] != pruned[name][0][m]))
    assert moved > 0.9 * sum(int(m.sum()) for m in masks.values())
    with pytest.raises(ValueError, match="masks for unknown conv layers: nope"):
        finetune(spec, nodes, pruned, x, y, lr=1e-2, epochs=1, verbose=0,
                 masks={**masks, "nope": np.ones(1, bool)})
