"""Two disjoint sets of natural photographs, for calibration and for evaluation.

:func:`photo_set` returns the ``calibration`` set (64 photos: activation ranges for
quantization) or the ``evaluation`` set (243 photos: accuracy and agreement checks). Both
are cut out of packages pinned by SHA-256, so every machine gets the same bytes:

calibration (Debian 12 "bookworm" packages, from ``http://deb.debian.org/debian/pool/main/``)
  * ``scratch`` 1.4.0.6~dfsg1-6.1 (``s/scratch/scratch_1.4.0.6~dfsg1-6.1_all.deb``): the
    photographed stage backgrounds of Scratch 1.4 (MIT Media Lab), ``Media/Backgrounds``;
    CC-BY-SA-3.0. Drawn or cartoon backgrounds are excluded by name. 53 photos.
  * ``darknet`` 0.0.0+git20180914.61c9d02e-2+b4, amd64 (only its data is read, on any
    machine; ``d/darknet/darknet_0.0.0+git20180914.61c9d02e-2+b4_amd64.deb``): the YOLO sample
    pictures dog, eagle, giraffe, horses, kite, person; "GPL-3.0+ or MIT or WTFPL" (the
    package's ``Files: *``). 6 photos.
  * ``palapeli-data`` 4:22.12.3-1 (``p/palapeli/palapeli-data_22.12.3-1_all.deb``; the
    epoch ``4:`` is not part of the file name): the five KDE Palapeli puzzle photos;
    GPL-2+ per the package's ``Files: *`` (their ``.desktop`` files credit Wikimedia
    Commons authors under the FDL). 5 photos.

evaluation
  * ``gcompris-qt-data`` 3.1-2 (Debian, ``g/gcompris-qt/gcompris-qt-data_3.1-2_all.deb``):
    WebP photos inside the Qt resource bundles (``usr/share/gcompris-qt/rcc/*.rcc``) of the
    categorization (fishes, monuments, others, renewable, tools), erase and explore
    (farm animals, world animals, monuments) activities; licences from the package's
    DEP-5 copyright file: 130 photos have their own entry (CC-BY-SA and CC-BY 1.0-4.0,
    public domain, CC0, GPL, mostly Wikimedia Commons), 93 fall under its ``Files: *``
    (GPL-3+). 223 photos.
  * ``foolbox`` 3.3.4 (PyPI wheel ``foolbox-3.3.4-py3-none-any.whl``, fetched with
    ``pip download --require-hashes``): the 20 ImageNet validation samples
    ``foolbox/data/imagenet_*.jpg``; the wheel is MIT, the images are ImageNet samples.
    20 photos.

The two sets are independent, not just different files: they come from different package
families (a programming environment, a detector and a jigsaw game versus an educational
suite and an adversarial-robustness library) whose pictures were taken and chosen by
different people for different purposes, so a design tuned on the calibration photos is
not tuned on the evaluation ones. No photo is in both (checked by SHA-256 whenever a set
is built and the other one is present), and the 11 demo photos of
:func:`model.photos.bundled_photos` (scikit-image, scikit-learn, matplotlib) are in neither.

Of each package only the members listed in :data:`_SOURCES` are candidates; a candidate is
kept when Pillow decodes it, it is RGB, its short side is at least :data:`MIN_SIDE`
pixels, it is not (near) grayscale (:data:`MIN_CHROMA`), and its bytes are not already in
the set; a build that does not give the pinned count is refused. Nothing is installed: a
``.deb`` is read as an ``ar`` archive holding ``data.tar.xz`` (or ``.gz``), the wheel as a
zip, a Qt ``.rcc`` bundle by :func:`_rcc_files`.

Cache (all under ``build/photos``): ``<set>/`` holds the photos, with their original bytes,
named ``<package>__<member basename>`` (the bundle name added for ``.rcc`` members), and
``manifest.csv`` (:data:`MANIFEST_FIELDS`) with its SHA-256 in ``manifest.csv.sha256``.
Every call checks the manifest digest and each photo's SHA-256; a damaged set is rebuilt,
with one log line, from ``downloads/``, where the packages are kept (so a rebuild needs no
network). A set is built in a temporary folder and renamed into place, so concurrent runs
never see half a set.
"""

from __future__ import annotations

import csv
import errno
import fnmatch
import functools
import hashlib
import http.client
import io
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, features

from model.errors import CheckFailed, InputError, ToolFailed, ToolNotFound
from model.files import sha256_file, write_atomic
from model.paths import build_path
from model.photos import MAX_ASPECT, MAX_PIXELS, Photo, load_image

__all__ = ["MANIFEST_FIELDS", "MIN_CHROMA", "MIN_SIDE", "SETS", "DownloadError",
           "manifest", "photo_set", "set_dir"]

SETS: tuple[str, ...] = ("calibration", "evaluation")
#: Photos per set; a build that yields another number (a different Pillow decoding a
#: member differently, say) is refused rather than silently changing the set.
_COUNTS = {"calibration": 64, "evaluation": 243}
MIN_SIDE = 200
#: Mean of (|R-G| + |G-B| + |B-R|) / 3 over a 64x64 bicubic thumbnail; below = grayscale.
MIN_CHROMA = 2.5
MANIFEST_FIELDS: tuple[str, ...] = ("split", "file", "source_kind", "source_package",
                                    "version", "member", "licence", "width", "height",
                                    "sha256")
_MANIFEST = "manifest.csv"
_DIGEST = _MANIFEST + ".sha256"
_DEBIAN_POOL = "http://deb.debian.org/debian/pool/main"
_HTTP_TIMEOUT_S = 60
_PIP_TIMEOUT_S = 600
_RASTER = (".jpg", ".jpeg", ".png", ".webp")
_GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc/"
_GCOMPRIS_ACTIVITY = "gcompris/src/activities"


@dataclass(frozen=True)
class _Source:
    split: str
    kind: str                       # "deb", "deb-rcc" (members inside .rcc bundles), "pypi"
    package: str                    # binary package / distribution name
    version: str                    # Debian version with its epoch, or the PyPI version
    sha256: str                     # of the downloaded .deb or .whl
    include: tuple[str, ...]        # fnmatch patterns over member names
    exclude: tuple[str, ...] = ()
    source_package: str = ""        # Debian source package: the pool folder
    arch: str = "all"
    upstream: tuple[str, str] = ("", "")  # member prefix -> upstream path, for DEP-5
    licence: str = ""               # PyPI: the licence of every member

    @property
    def file_name(self) -> str:
        if self.kind == "pypi":
            return f"{self.package}-{self.version}-py3-none-any.whl"
        return f"{self.package}_{self.version.partition(':')[2] or self.version}_{self.arch}.deb"

    @property
    def url(self) -> str:
        src = self.source_package
        folder = src[:4] if src.startswith("lib") else src[:1]
        return f"{_DEBIAN_POOL}/{folder}/{src}/{self.file_name}"

    def upstream_path(self, member: str) -> str:
        """The member's path in the upstream source tree, as the copyright file names it."""
        member = member.split(":", 1)[-1]
        old, new = self.upstream
        return new + member[len(old):] if member.startswith(old) else member


def _rcc(stem: str, folder: str) -> str:
    return f"{stem}:{_GCOMPRIS_ACTIVITY}/{folder}/*"


_SOURCES: tuple[_Source, ...] = (
    _Source(
        "calibration", "deb", "scratch", "1.4.0.6~dfsg1-6.1",
        "36c582eb93110f64f06c4e685c41e933ccba2fa68db12f79b10bfe840b21fc10",
        include=("usr/share/scratch/Media/Backgrounds/*/*.jpg",),
        # Drawn or cartoon backgrounds (moon.jpg is grayscale: the filter drops it).
        exclude=("*/party-room.jpg", "*/room1.jpg", "*/room2.jpg", "*/room3.jpg",
                 "*/spotlight-stage.jpg", "*/woods-and-bench.jpg", "*/school2.jpg"),
        source_package="scratch", upstream=("usr/share/scratch/", ""),
    ),
    _Source(
        "calibration", "deb", "darknet", "0.0.0+git20180914.61c9d02e-2+b4",
        "9ca14d36112d242a782bfed4104fa5adcd2ae8bc599ab610f42eb609ee125a01",
        include=tuple(f"usr/share/darknet/data/{n}.jpg"
                      for n in ("dog", "eagle", "giraffe", "horses", "kite", "person")),
        source_package="darknet", arch="amd64", upstream=("usr/share/darknet/", ""),
    ),
    _Source(
        "calibration", "deb", "palapeli-data", "4:22.12.3-1",
        "69a15dce2ac25ed8708ac518cd0cee5f4eb0c70ed15da2fdb8899a19ac0ee058",
        include=("usr/share/palapeli/collection/*.jpg",),
        source_package="palapeli", upstream=("usr/share/palapeli/collection/", "puzzles/"),
    ),
    _Source(
        "evaluation", "deb-rcc", "gcompris-qt-data", "3.1-2",
        "e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f",
        # "<bundle stem>:<path inside the bundle>"
        include=(
            *(_rcc("categorization", f"categorization/resource/images/{group}")
              for group in ("fishes", "monuments", "others", "renewable", "tools")),
            _rcc("erase", "erase/resource"),
            _rcc("explore_farm_animals", "explore_farm_animals/resource"),
            _rcc("explore_world_animals", "explore_world_animals/resource"),
            _rcc("explore_monuments", "explore_monuments/resource"),
        ),
        source_package="gcompris-qt", upstream=("gcompris/", ""),
    ),
    _Source(
        "evaluation", "pypi", "foolbox", "3.3.4",
        "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb",
        include=("foolbox/data/imagenet_*.jpg",),
        licence="MIT (wheel metadata; the images are ImageNet validation samples)",
    ),
)


class DownloadError(ToolFailed):
    """A pinned package could not be downloaded: no network, or the server unreachable."""


# --------------------------------------------------------------------------------------
# Files: digests, atomic writes
# --------------------------------------------------------------------------------------


_sha256_file = sha256_file


_write_atomic = write_atomic


def _refuse_non_dir(path: Path, what: str) -> None:
    if os.path.lexists(path) and not path.is_dir():
        raise InputError(f"{what} {path} is not a directory; move it away and run again")


# --------------------------------------------------------------------------------------
# Downloads (kept under build/photos/downloads)
# --------------------------------------------------------------------------------------


def _check_download(path: Path, sha256: str) -> Path | None:
    """``path`` when it holds the pinned bytes, None when absent; a file with other bytes
    is removed and refused (:class:`InputError`)."""
    if not path.is_file():
        return None
    actual = _sha256_file(path)
    if actual != sha256:
        path.unlink(missing_ok=True)
        raise InputError(f"{path} has SHA-256 {actual}, expected the pinned {sha256}; the "
                         "file was removed: run again to download it afresh")
    return path


def _download(url: str, target: Path, sha256: str) -> Path:
    """Fetch ``url`` into ``target`` (atomically) after checking its pinned SHA-256."""
    offline = (f"The photo sets need this file once (it is then kept in {target.parent}): "
               "connect to the network and run again, or copy it there from a machine that "
               "has it.")
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as response:
            data = response.read()
    except urllib.error.HTTPError as exc:
        raise ToolFailed(f"{url} answered HTTP {exc.code} ({exc.reason}). If the Debian "
                         "mirror dropped this version, fetch the same file from "
                         f"snapshot.debian.org and place it at {target}") from exc
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"could not download {url}: {reason}. {offline}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise InputError(f"{url} gave {len(data)} bytes with SHA-256 {actual}, expected the "
                         f"pinned {sha256}; nothing was kept")
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(target, data)
    return target


# pip reports an unreachable index only in retry warnings (none with PIP_RETRIES=0), then
# finds no version at all: "(from versions: none)" for a release that is on PyPI.
_PIP_NETWORK_SIGNS = ("(from versions: none)", "NewConnectionError", "ConnectTimeoutError",
                      "ReadTimeoutError", "Failed to establish a new connection",
                      "Temporary failure in name", "Network is unreachable", "ProxyError",
                      "Max retries exceeded")


def _pip_download(source: _Source, target: Path) -> Path:
    """``pip download`` the pinned wheel (hash-checked by pip, then here) into ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pip-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(
            f"{source.package}=={source.version} --hash=sha256:{source.sha256}\n")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                   ":all:", "--require-hashes", "--disable-pip-version-check", "-r",
                   str(requirements), "-d", str(Path(tmp) / "out")]
        shown = " ".join(command)
        try:
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=_PIP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DownloadError(f"`{shown}` timed out after {_PIP_TIMEOUT_S} s") from exc
        except OSError as exc:
            raise ToolFailed(f"`{shown}` could not run: {exc}") from exc
        wheel = Path(tmp) / "out" / source.file_name
        if result.returncode != 0 or not wheel.is_file():
            tail = (result.stderr or result.stdout or "").strip()[-2000:]
            if "DO NOT MATCH THE HASHES" in tail:
                raise InputError(f"`{shown}` refused the download: its SHA-256 is not the "
                                 f"pinned {source.sha256}:\n{tail}")
            kind = DownloadError if any(s in tail for s in _PIP_NETWORK_SIGNS) else ToolFailed
            raise kind(f"`{shown}` exited with status {result.returncode}:\n{tail}\nThe "
                       f"evaluation photos need {source.package}=={source.version} from PyPI "
                       f"once (it is then kept in {target.parent}): connect to the network "
                       f"and run again, or copy {source.file_name} there.")
        if _sha256_file(wheel) != source.sha256:
            raise InputError(f"pip downloaded {wheel.name} with another SHA-256 than the "
                             f"pinned {source.sha256}; nothing was kept")
        os.replace(wheel, target)
    return target


def _fetch(source: _Source, downloads: Path) -> Path:
    """The pinned package file under ``downloads``, downloaded on first use."""
    _refuse_non_dir(downloads, "photo download folder")
    target = downloads / source.file_name
    if _check_download(target, source.sha256) is not None:
        return target
    if source.kind == "pypi":
        return _pip_download(source, target)
    return _download(source.url, target, source.sha256)


# --------------------------------------------------------------------------------------
# Archive formats: ar (.deb), Qt resource bundles (.rcc), DEP-5 copyright files
# --------------------------------------------------------------------------------------


def _ar_members(data: bytes, what: str) -> dict[str, bytes]:
    """The members of a System V / GNU ``ar`` archive (a ``.deb``): name -> bytes.

    Member names of at most 16 characters only, as dpkg writes them; a malformed or
    truncated archive raises :class:`InputError` naming ``what``.
    """
    if data[:8] != b"!<arch>\n":
        raise InputError(f"{what} is not an ar archive (no '!<arch>' header)")
    members: dict[str, bytes] = {}
    offset = 8
    while offset < len(data):
        header = data[offset:offset + 60]
        if len(header) < 60 or header[58:60] != b"`\n":
            raise InputError(f"{what}: malformed ar member header at byte {offset}")
        name = header[:16].decode("ascii", "replace").rstrip(" ").removesuffix("/")
        try:
            size = int(header[48:58].decode("ascii"))
        except ValueError as exc:
            raise InputError(f"{what}: bad size in the ar header of {name!r}") from exc
        start = offset + 60
        if size < 0 or start + size > len(data):
            raise InputError(f"{what}: ar member {name!r} runs past the end (truncated)")
        members[name] = data[start:start + size]
        offset = start + size + (size & 1)  # members are padded to an even offset
    return members


def _deb_files(deb: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The regular files of a ``.deb``'s data tarball for which ``wanted(path)`` holds,
    keyed by path without the leading ``./``."""
    members = _ar_members(deb.read_bytes(), str(deb))
    data_names = [name for name in members if name.startswith("data.tar")]
    compression = {"data.tar.xz": "xz", "data.tar.gz": "gz"}
    if len(data_names) != 1 or data_names[0] not in compression:
        raise InputError(f"{deb} holds {data_names or 'no data.tar.*'}; only one "
                         "data.tar.xz or data.tar.gz is supported")
    files: dict[str, bytes] = {}
    mode = f"r|{compression[data_names[0]]}"
    try:
        with tarfile.open(fileobj=io.BytesIO(members[data_names[0]]), mode=mode) as tar:
            for member in tar:
                path = member.name.removeprefix("./")
                if member.isfile() and wanted(path):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        files[path] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(f"{deb}: {data_names[0]} cannot be read ({exc})") from exc
    return files


_RCC_COMPRESSED, _RCC_DIRECTORY, _RCC_ZSTD = 0x01, 0x02, 0x04


def _rcc_files(data: bytes, what: str = ".rcc") -> Iterator[tuple[str, bytes | None]]:
    """Yield ``(path, bytes)`` for each file of a Qt binary resource bundle (``rcc``
    format versions 1 to 3, as ``qresource.cpp`` reads them): zlib-compressed files are
    inflated; zstd-compressed ones give ``None``. A malformed bundle raises
    :class:`InputError` naming ``what``."""
    if data[:4] != b"qres":
        raise InputError(f"{what} is not a Qt resource bundle (no 'qres' header)")
    try:
        version, tree, payload, names = struct.unpack_from(">IIII", data, 4)
        if not 1 <= version <= 3:
            raise InputError(f"{what}: rcc format version {version} is not supported")
        # A node: name offset (4), flags (2), then a directory's child count (4) and first
        # child index (4), or a file's country (2), language (2) and data offset (4);
        # since version 2 a last-modified time (8) follows.
        node_size = 14 if version == 1 else 22
        visited: set[int] = set()

        def name_at(offset: int) -> str:
            (length,) = struct.unpack_from(">H", data, names + offset)
            start = names + offset + 6  # length (2), hash (4), then UTF-16BE code units
            if start + 2 * length > len(data):
                raise struct.error("name past the end")
            return data[start:start + 2 * length].decode("utf-16-be")

        def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes | None]]:
            if index in visited:
                raise InputError(f"{what}: the resource tree has a cycle")
            visited.add(index)
            node = tree + index * node_size
            name_offset, flags = struct.unpack_from(">IH", data, node)
            path = f"{prefix}{name_at(name_offset)}" if index else ""
            if flags & _RCC_DIRECTORY:
                count, first = struct.unpack_from(">II", data, node + 6)
                for child in range(first, first + count):
                    yield from walk(child, f"{path}/" if index else "")
                return
            (offset,) = struct.unpack_from(">I", data, node + 10)
            (size,) = struct.unpack_from(">I", data, payload + offset)
            start = payload + offset + 4
            if start + size > len(data):
                raise struct.error("file data past the end")
            raw = data[start:start + size]
            if flags & _RCC_ZSTD:
                yield path, None
            elif flags & _RCC_COMPRESSED:  # qCompress: 4-byte big-endian size, zlib stream
                yield path, zlib.decompress(raw[4:])
            else:
                yield path, raw

        yield from walk(0, "")
    except (struct.error, zlib.error, UnicodeDecodeError) as exc:
        raise InputError(f"{what} is a malformed Qt resource bundle ({exc})") from exc


def _dep5_stanzas(text: str) -> list[tuple[tuple[str, ...], str]]:
    """The ``Files`` stanzas of a DEP-5 (machine-readable) copyright file, in order: the
    file patterns and the licence's short name (first line of ``License``)."""
    stanzas = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t"):
                if key is not None:
                    fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields:
            patterns = tuple(p.removeprefix("./") for p in fields["files"].split())
            stanzas.append((patterns, fields.get("license", "").split("\n")[0].strip()))
    return stanzas


@functools.cache
def _dep5_regex(pattern: str) -> re.Pattern[str]:
    """DEP-5 globbing: ``*`` any run of characters (``/`` included), ``?`` one character,
    ``\\`` escapes; everything else literal. Cached: GCompris lists thousands of files."""
    parts = re.split(r"(\\.|\*|\?)", pattern)
    regex = "".join(".*" if p == "*" else "." if p == "?" else
                    re.escape(p[1:] if p.startswith("\\") and len(p) == 2 else p)
                    for p in parts)
    return re.compile(regex, re.DOTALL)


def _dep5_match(pattern: str, path: str) -> bool:
    return _dep5_regex(pattern).fullmatch(path) is not None


def _licence_for(stanzas: list[tuple[tuple[str, ...], str]], path: str) -> str:
    """The licence of ``path`` (an upstream source path): the last matching stanza wins.
    Raster extensions are compared loosely, as GCompris ships its .jpg/.png sources
    converted to .webp. ``UNKNOWN`` when no stanza matches."""
    stem, ext = os.path.splitext(path)
    licence = "UNKNOWN"
    for patterns, name in stanzas:
        for pattern in patterns:
            pattern_stem, pattern_ext = os.path.splitext(pattern)
            if _dep5_match(pattern, path) or (
                    ext.lower() in _RASTER and pattern_ext.lower() in _RASTER
                    and _dep5_match(pattern_stem, stem)):
                licence = name + (" (package default 'Files: *')" if pattern == "*" else "")
    return licence


# --------------------------------------------------------------------------------------
# Candidates and the photo filter
# --------------------------------------------------------------------------------------


def _selected(source: _Source, member: str) -> bool:
    return (any(fnmatch.fnmatchcase(member, p) for p in source.include)
            and not any(fnmatch.fnmatchcase(member, p) for p in source.exclude))


def _candidates(source: _Source, downloads: Path) -> list[tuple[str, bytes, str]]:
    """``(member, bytes, licence)`` of the source's selected members, sorted by member."""
    package_file = _fetch(source, downloads)
    if source.kind == "pypi":
        try:
            with zipfile.ZipFile(package_file) as wheel:
                return [(name, wheel.read(name), source.licence)
                        for name in sorted(wheel.namelist()) if _selected(source, name)]
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"{package_file} is not a readable wheel ({exc})") from exc

    copyright_path = f"usr/share/doc/{source.package}/copyright"
    bundles = {p.split(":", 1)[0] for p in source.include}
    if source.kind == "deb-rcc":
        def wanted(path: str) -> bool:
            return path == copyright_path or (
                path.startswith(_GCOMPRIS_RCC) and path.endswith(".rcc")
                and path[len(_GCOMPRIS_RCC):-4] in bundles)
    else:
        def wanted(path: str) -> bool:
            return path == copyright_path or _selected(source, path)
    files = _deb_files(package_file, wanted)
    if copyright_path not in files:
        raise InputError(f"{package_file} has no {copyright_path}: the photos' licences "
                         "cannot be looked up")
    stanzas = _dep5_stanzas(files.pop(copyright_path).decode("utf-8", "replace"))
    members: dict[str, bytes] = {}
    for path, raw in files.items():
        if source.kind != "deb-rcc":
            members[path] = raw
            continue
        bundle = path[len(_GCOMPRIS_RCC):-4]
        for inner, inner_raw in _rcc_files(raw, f"{package_file}:{path}"):
            member = f"{bundle}:{inner}"
            if inner.lower().endswith(_RASTER) and _selected(source, member):
                if inner_raw is None:
                    raise InputError(f"{package_file}: {member} is zstd-compressed, which "
                                     "is not supported")
                members[member] = inner_raw
    return [(m, members[m], _licence_for(stanzas, source.upstream_path(m)))
            for m in sorted(members)]


def _photo_size(raw: bytes) -> tuple[int, int] | None:
    """``(width, height)`` when ``raw`` is a natural colour photo the sets keep, else None."""
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            width, height = image.size
            if (image.mode not in ("RGB", "YCbCr", "CMYK") or min(width, height) < MIN_SIDE
                    or width * height > MAX_PIXELS
                    or max(width, height) > MAX_ASPECT * min(width, height)):
                return None
            thumb = image.convert("RGB").resize((64, 64), Image.Resampling.BICUBIC)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None
    a = np.asarray(thumb, dtype=np.float32)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    chroma = float((np.abs(r - g) + np.abs(g - b) + np.abs(b - r)).mean() / 3)
    return (width, height) if chroma >= MIN_CHROMA else None


def _file_name(source: _Source, member: str) -> str:
    bundle, _, inner = member.rpartition(":")
    base = PurePosixPath(inner)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", base.stem)
    return f"{source.package}__{bundle + '_' if bundle else ''}{stem}{base.suffix.lower()}"


# --------------------------------------------------------------------------------------
# The cached sets
# --------------------------------------------------------------------------------------


def _require_webp() -> None:
    if not features.check("webp"):
        raise ToolNotFound("this Pillow was built without WebP support, and the evaluation "
                           "photos are WebP: install Pillow from its PyPI wheel (which "
                           "bundles libwebp) or build it with libwebp")


def set_dir(name: str) -> Path:
    """The folder of the photo set ``name`` (``build/photos/<name>``); :class:`InputError`
    for a name not in :data:`SETS`."""
    if name not in SETS:
        raise InputError(f"unknown photo set {name!r}; the sets are: {', '.join(SETS)}")
    return build_path("photos", name)


class _Damaged(Exception):
    pass


def _read_manifest(directory: Path, name: str) -> list[dict]:
    """The manifest rows of the set in ``directory`` after checking the manifest's digest,
    the rows and every photo's SHA-256; :class:`_Damaged` says what is wrong."""
    try:
        text = (directory / _MANIFEST).read_bytes()
        recorded = (directory / _DIGEST).read_text(encoding="ascii").split()[:1]
    except FileNotFoundError as exc:
        raise _Damaged(f"{Path(exc.filename).name} is missing") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise _Damaged(f"cannot read the manifest or its digest ({exc})") from exc
    if recorded != [hashlib.sha256(text).hexdigest()]:
        raise _Damaged(f"{_MANIFEST} does not match {_DIGEST}")
    try:
        rows = list(csv.DictReader(io.StringIO(text.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _Damaged(f"{_MANIFEST} cannot be parsed ({exc})") from exc
    if len(rows) != _COUNTS[name] or any(tuple(r) != MANIFEST_FIELDS for r in rows):
        raise _Damaged(f"{_MANIFEST} does not list {_COUNTS[name]} photos")
    for row in rows:
        file = row["file"]
        if row["split"] != name or "/" in file or file.startswith("."):
            raise _Damaged(f"{_MANIFEST} has a bad row for {file!r}")
        try:
            actual = _sha256_file(directory / file)
        except OSError as exc:
            raise _Damaged(f"{file} cannot be read ({exc.strerror or exc})") from exc
        if actual != row["sha256"]:
            raise _Damaged(f"{file} does not match its SHA-256")
        row["width"], row["height"] = int(row["width"]), int(row["height"])
    return rows


def _build(name: str, target: Path) -> list[dict]:
    """Build the set ``name`` in a temporary folder and rename it to ``target``."""
    _require_webp()
    downloads = build_path("photos", "downloads")
    tmp = target.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir(parents=True)
    try:
        rows: list[dict] = []
        seen: set[str] = set()
        for source in (s for s in _SOURCES if s.split == name):
            for member, raw, licence in _candidates(source, downloads):
                size = _photo_size(raw)
                digest = hashlib.sha256(raw).hexdigest()
                if size is None or digest in seen:
                    continue
                seen.add(digest)
                file = _file_name(source, member)
                if (tmp / file).exists():
                    raise CheckFailed(f"photo set {name}: two members are named {file}")
                (tmp / file).write_bytes(raw)
                rows.append(dict(split=name, file=file, source_kind=source.kind,
                                 source_package=source.package, version=source.version,
                                 member=member, licence=licence, width=size[0],
                                 height=size[1], sha256=digest))
        if len(rows) != _COUNTS[name]:
            raise CheckFailed(f"photo set {name}: the pinned packages gave {len(rows)} photos, "
                              f"expected {_COUNTS[name]} (a different Pillow decoding them "
                              "differently?)")
        rows.sort(key=lambda row: row["file"])
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = out.getvalue().encode("utf-8")
        (tmp / _MANIFEST).write_bytes(text)
        (tmp / _DIGEST).write_text(f"{hashlib.sha256(text).hexdigest()}  {_MANIFEST}\n")
        _check_disjoint(name, rows)
        _install(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _check_disjoint(name: str, rows: list[dict]) -> None:
    for other in SETS:
        if other == name:
            continue
        try:
            theirs = _read_manifest(set_dir(other), other)
        except _Damaged:
            continue  # not built (or being rebuilt): checked when it is built
        shared = {r["sha256"] for r in rows} & {r["sha256"] for r in theirs}
        if shared:
            raise CheckFailed(f"photo sets {name} and {other} share {len(shared)} photos")


def _install(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``, moving a damaged set there out of the way first."""
    try:
        os.replace(tmp, target)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    old = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.old")
    try:
        try:
            os.replace(target, old)
        except FileNotFoundError:
            pass
        try:
            os.replace(tmp, target)
        except OSError as exc:
            # Another run installed the same set meanwhile: keep that one.
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _ensure(name: str, log: Callable[[str], None]) -> tuple[Path, list[dict]]:
    directory = set_dir(name)
    _refuse_non_dir(directory.parent, "photo cache folder")
    _refuse_non_dir(directory, "photo set folder")
    try:
        return directory, _read_manifest(directory, name)
    except _Damaged as exc:
        if directory.exists():
            log(f"photo set {name} in {directory} is damaged ({exc}); rebuilding it")
        else:
            log(f"photo set {name}: building {directory} from pinned packages (first use; "
                f"the downloads are kept in {directory.parent / 'downloads'})")
    return directory, _build(name, directory)


def manifest(name: str, log: Callable[[str], None] = print) -> list[dict[str, str | int]]:
    """The manifest of the set ``name``: one dict per photo, sorted by file name, with the
    keys of :data:`MANIFEST_FIELDS` (``width`` and ``height`` as int, the rest str).
    Builds or repairs the set first, as :func:`photo_set` does."""
    return _ensure(name, log)[1]


def photo_set(name: str, log: Callable[[str], None] = print) -> list[Photo]:
    """The photos of the set ``name`` (one of :data:`SETS`), sorted by file name, each a
    :class:`~model.photos.Photo` named after its file's stem, RGB with a short side of at
    least :data:`MIN_SIDE` pixels.

    A cached set whose manifest digest and photo digests all match is read without
    network; a missing or damaged one is (re)built, with one line through ``log``, from
    the packages kept in ``build/photos/downloads`` (downloaded first when absent).
    Raises :class:`InputError` for an unknown name or a package whose SHA-256 is not the
    pinned one (the file is removed), :class:`DownloadError` when a package cannot be
    downloaded, :class:`~model.errors.ToolNotFound` when Pillow lacks WebP, and
    :class:`~model.errors.CheckFailed` when a build does not give the pinned count or the
    two sets share a photo.
    """
    set_dir(name)
    _require_webp()
    directory, rows = _ensure(name, log)
    return [load_image(directory / row["file"]) for row in rows]
