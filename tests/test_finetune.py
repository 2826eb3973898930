"""Fine-tuning the pretrained v1.1 (``sqz finetune``) on a labelled image folder, and
fine-tuned weights as a spec's weight source.

The folder is made of crops of two bundled photos, named by ImageNet class: no labelled
ImageNet data exists offline, so this checks the path end to end, not an accuracy.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.imagenet import imagenet_label
from model.paths import REPO
from model.spec import SpecError, spec_from_dict


def test_imagenet_label_names_and_indices():
    assert imagenet_label("espresso") == 967
    assert imagenet_label("Egyptian_cat") == imagenet_label("egyptian cat") == 285
    assert imagenet_label("281") == 281
    with pytest.raises(ValueError, match="'1000': ImageNet indices are 0..999"):
        imagenet_label("1000")
    with pytest.raises(ValueError, match="'expresso' is not an ImageNet class.*close: 'espresso'"):
        imagenet_label("expresso")


def test_spec_weights_from_a_file(tmp_path):
    from model.builder import float_weights, random_weights
    from model.graph import build_graph
    from model.weights import save_weights

    raw = {"name": "t", "variant": "custom", "classes": 10, "input": {"height": 35,
           "width": 35}, "n_fire": 2, "conv1": {"filters": 8}, "pool_after": ["conv1"]}
    nodes = build_graph(spec_from_dict({**raw, "weights": "random"}))
    given = random_weights(nodes, 11)
    path = save_weights(tmp_path / "w.npz", given)
    spec = spec_from_dict({**raw, "weights": str(path)})
    got = float_weights(spec, nodes, tmp_path)
    for k, (w, b) in given.items():
        assert np.array_equal(got[k][0], w) and np.array_equal(got[k][1], b)
    with pytest.raises(SpecError, match="weights: 'w.pt' is not allowed.*or the path of a .npz"):
        spec_from_dict({**raw, "weights": "w.pt"})
    with pytest.raises(FileNotFoundError, match="weights file not found: .*missing.npz"):
        float_weights(spec_from_dict({**raw, "weights": str(tmp_path / "missing.npz")}),
                      nodes, tmp_path)
    other = build_graph(spec_from_dict({**raw, "weights": "random", "conv1": {"filters": 16}}))
    with pytest.raises(ValueError, match="conv1 has kernel .3, 3, 3, 8. .* needs .3, 3, 3, 16."):
        float_weights(spec, other, tmp_path)


def _folder(root: Path) -> Path:
    from model.photos import bundled_photos

    photos = {p.name: p.rgb for p in bundled_photos()}
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for folder, photo in (("espresso", "coffee"), ("Egyptian_cat", "chelsea")):
            d = root / split / folder
            d.mkdir(parents=True)
            img = photos[photo]
            h, w = img.shape[:2]
            for i in range(n):
                s = int(min(h, w) * rng.uniform(0.7, 0.95))
                y0, x0 = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
                crop = img[y0:y0 + s, x0:x0 + s][:, ::(-1 if i % 2 else 1)]
                Image.fromarray(np.ascontiguousarray(crop)).save(d / f"{i}.png")
    return root


@pytest.mark.slow  # ~30 s: the Fashion-MNIST CLI test covers the command in `make test`
def test_finetune_cli_pruned_v11_on_an_image_folder(tmp_path, weights_cache_dir):
    data = _folder(tmp_path / "photos")
    sqz = Path(sys.executable).parent / "sqz"
    cmd = [str(sqz)] if sqz.exists() else [sys.executable, "-m", "hls.cli"]
    res = subprocess.run([*cmd, "finetune", "--data", str(data), "--sparsity", "0.3",
                          "--per-layer", "--batch-size", "4", "--restart"], cwd=REPO,
                         capture_output=True, text=True, timeout=600, check=False)
    out = res.stdout
    assert res.returncode == 0, res.stderr[-3000:]
    assert "on 8 images of 2 classes" in out
    assert "pruned weights still zero: True (30.0% of conv weights)" in out
    assert re.search(r"top-1 on 4 images of .*/val:\n  before: float .*\n  after:  float", out)
    path = Path(re.search(r"fine-tuned weights: (\S+\.npz)", out).group(1))
    from model.builder import file_weights
    from model.graph import build_graph
    from model.spec import load_spec

    nodes = build_graph(load_spec(REPO / "configs" / "squeezenet_v1_1.yaml"))
    tuned = file_weights(path, nodes)
    zeros = sum(int((w == 0).sum()) for w, _ in tuned.values())
    assert zeros >= 0.3 * sum(w.size for w, _ in tuned.values()) - 1


def test_finetune_cli_refuses_unknown_class_folders(tmp_path):
    (tmp_path / "d" / "train" / "expresso").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "d" / "train" / "expresso" / "a.png")
    res = subprocess.run([sys.executable, "-m", "hls.cli", "finetune", "--data",
                          str(tmp_path / "d")], cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=False)
    assert res.returncode != 0
    assert "'expresso' is not an ImageNet class name" in res.stderr + res.stdout


@pytest.mark.slow  # CI time: runs in make test-all
def test_finetune_cli_on_fashion_mnist_keeps_pruned_zeros():
    from model.datasets import FASHION_MNIST_ROOT

    if not (FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not in {FASHION_MNIST_ROOT} "
                    "(apt-get install dataset-fashion-mnist; .ci/run does)")
    res = subprocess.run([sys.executable, "-m", "hls.cli", "finetune", "--config",
                          str(REPO / "configs" / "fashion_mnist.yaml"), "--data",
                          "fashion-mnist", "--sparsity", "0.5", "--per-layer", "--limit", "256",
                          "--test-images", "64", "--batch-size", "64", "--restart"],
                         cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    out = res.stdout
    assert res.returncode == 0, res.stderr[-3000:]
    assert "on 256 images of 10 classes (fashion-mnist)" in out
    assert "pruned weights still zero: True (50.0% of conv weights)" in out
    assert "top-1 on 64 images of the Fashion-MNIST test set:" in out
