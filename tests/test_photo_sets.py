"""Tests for model.photo_sets: the archive readers, the pinned downloads and the two sets.

The tests of the real sets download about 77 MB from deb.debian.org and PyPI on first use
(kept under build/photos/downloads); they are skipped, with the reason, when that fails
for want of a network, and fail on any other error.
"""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest

from model import photo_sets as ps
from model.errors import InputError, ToolFailed, ToolNotFound
from model.photos import Photo, bundled_photos

# --------------------------------------------------------------------------------------
# ar archives (.deb)
# --------------------------------------------------------------------------------------


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        assert len(header) == 60
        out += header.encode("ascii") + data + (b"\n" if len(data) % 2 else b"")
    return out


def test_ar_reader_returns_members_across_odd_padding() -> None:
    archive = _ar([("debian-binary", b"2.0\n"), ("control.tar.xz/", b"odd"),
                   ("data.tar.xz", b"\x00" * 10)])
    assert ps._ar_members(archive, "t.deb") == {
        "debian-binary": b"2.0\n", "control.tar.xz": b"odd", "data.tar.xz": b"\x00" * 10}


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda a: b"!<arcx>\n" + a[8:], r"t\.deb is not an ar archive"),
    (lambda a: a[:-3], r"t\.deb: ar member 'data\.tar\.xz' runs past the end \(truncated\)"),
    (lambda a: a[:40], r"t\.deb: malformed ar member header at byte 8"),
])
def test_ar_reader_refuses_malformed_archives(mangle, message: str) -> None:
    archive = _ar([("data.tar.xz", b"0123456789")])
    with pytest.raises(InputError, match=message):
        ps._ar_members(mangle(archive), "t.deb")


def _tar(files: dict[str, bytes], compression: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w:{compression}") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("compression", ["xz", "gz"])
def test_deb_files_reads_the_wanted_files_of_the_data_tarball(
        tmp_path: Path, compression: str) -> None:
    data = _tar({"./usr/share/doc/p/copyright": b"Files: *\nLicense: MIT\n",
                 "./usr/share/p/a.jpg": b"jpeg", "./usr/share/p/b.txt": b"text"}, compression)
    deb = tmp_path / "p.deb"
    deb.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", b""),
                         (f"data.tar.{compression}", data)]))
    files = ps._deb_files(deb, lambda path: not path.endswith(".txt"))
    assert files == {"usr/share/doc/p/copyright": b"Files: *\nLicense: MIT\n",
                     "usr/share/p/a.jpg": b"jpeg"}


def test_deb_files_refuses_other_compressions(tmp_path: Path) -> None:
    deb = tmp_path / "p.deb"
    deb.write_bytes(_ar([("debian-binary", b"2.0\n"), ("data.tar.zst", b"zstd")]))
    with pytest.raises(InputError, match=r"holds \['data\.tar\.zst'\]; only one data\.tar\.xz "
                                         r"or data\.tar\.gz is supported"):
        ps._deb_files(deb, lambda path: True)


# --------------------------------------------------------------------------------------
# Qt resource bundles (.rcc), laid out as Qt's rcc writes them
# --------------------------------------------------------------------------------------


def _rcc(version: int, files: list[tuple[str, bytes, int]]) -> bytes:
    """A bundle holding the folder ``img`` with ``files`` (name, bytes, flags): node 0 is
    the root, node 1 ``img``, nodes 2.. the files (flag 1 = zlib via qCompress)."""
    names = b""
    name_offsets = {}
    for name in ["img"] + [f[0] for f in files]:
        name_offsets[name] = len(names)
        encoded = name.encode("utf-16-be")
        names += struct.pack(">HI", len(encoded) // 2, 0) + encoded
    payload = b""
    data_offsets = []
    for _, data, flags in files:
        stored = struct.pack(">I", len(data)) + zlib.compress(data) if flags & 1 else data
        data_offsets.append(len(payload))
        payload += struct.pack(">I", len(stored)) + stored
    stamp = b"" if version == 1 else b"\x00" * 8
    tree = struct.pack(">IHII", 0, 2, 1, 1) + stamp
    tree += struct.pack(">IHII", name_offsets["img"], 2, len(files), 2) + stamp
    for (name, _, flags), offset in zip(files, data_offsets, strict=True):
        tree += struct.pack(">IHHHI", name_offsets[name], flags, 0, 0, offset) + stamp
    header_size = 20 + (4 if version >= 3 else 0)
    data_at = header_size
    names_at = data_at + len(payload)
    tree_at = names_at + len(names)
    header = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    header += struct.pack(">I", 0) if version >= 3 else b""
    return header + payload + names + tree


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_parser_reads_plain_and_zlib_files(version: int) -> None:
    photo = bytes(range(256)) * 4
    bundle = _rcc(version, [("plain.webp", b"raw bytes", 0), ("packed.jpg", photo, 1),
                            ("zstd.png", b"z", 4)])
    assert list(ps._rcc_files(bundle)) == [
        ("img/plain.webp", b"raw bytes"), ("img/packed.jpg", photo), ("img/zstd.png", None)]


def test_rcc_parser_refuses_malformed_bundles() -> None:
    bundle = _rcc(3, [("a.jpg", b"abc", 0)])
    with pytest.raises(InputError, match=r"x\.rcc is not a Qt resource bundle"):
        list(ps._rcc_files(b"qrez" + bundle[4:], "x.rcc"))
    with pytest.raises(InputError, match=r"x\.rcc is a malformed Qt resource bundle"):
        list(ps._rcc_files(bundle[:-30], "x.rcc"))


# --------------------------------------------------------------------------------------
# DEP-5 licences
# --------------------------------------------------------------------------------------

_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: someone
License: GPL-3+

Files: src/images/*
       src/other/x?.png
License: CC-BY-SA-3.0
 The licence text, which is not the short name.

Files: src/images/fish1.jpg
License: public-domain

License: GPL-3+
 A standalone licence paragraph, not a Files stanza.
"""


@pytest.mark.parametrize(("path", "licence"), [
    ("src/images/fish1.webp", "public-domain"),         # last match wins; .jpg == .webp
    ("src/images/fish2.webp", "CC-BY-SA-3.0"),
    ("src/other/x1.png", "CC-BY-SA-3.0"),
    ("src/other/x12.png", "GPL-3+ (package default 'Files: *')"),
    ("README", "GPL-3+ (package default 'Files: *')"),
])
def test_dep5_licence_lookup(path: str, licence: str) -> None:
    assert ps._licence_for(ps._dep5_stanzas(_COPYRIGHT), path) == licence


def test_dep5_lookup_without_a_match_is_unknown() -> None:
    assert ps._licence_for(ps._dep5_stanzas("Files: a/*\nLicense: MIT\n"), "b/c") == "UNKNOWN"


# --------------------------------------------------------------------------------------
# Pinned downloads
# --------------------------------------------------------------------------------------

_SCRATCH = next(s for s in ps._SOURCES if s.package == "scratch")


def test_a_corrupted_download_is_removed_and_refused(tmp_path: Path) -> None:
    kept = tmp_path / _SCRATCH.file_name
    kept.write_bytes(b"not the package")
    digest = hashlib.sha256(b"not the package").hexdigest()
    with pytest.raises(InputError, match=rf"has SHA-256 {digest}, expected the pinned "
                                         rf"{_SCRATCH.sha256}; the file was removed"):
        ps._fetch(_SCRATCH, tmp_path)
    assert not kept.exists()


def test_a_download_with_the_wrong_digest_is_not_kept(tmp_path: Path) -> None:
    served = tmp_path / "served.deb"
    served.write_bytes(b"payload")
    target = tmp_path / "downloads" / "p.deb"
    with pytest.raises(InputError, match=r"gave 7 bytes with SHA-256 .*nothing was kept"):
        ps._download(served.as_uri(), target, "0" * 64)
    assert not target.exists()
    ps._download(served.as_uri(), target, hashlib.sha256(b"payload").hexdigest())
    assert target.read_bytes() == b"payload"


def _failing_urlopen(error: Exception):
    def urlopen(*args, **kwargs):
        raise error

    return urlopen


def test_an_unreachable_server_is_a_download_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    monkeypatch.setattr(urllib.request, "urlopen", _failing_urlopen(refused))
    with pytest.raises(ps.DownloadError, match=r"could not download http://h/p\.deb: .*"
                                               r"Connection refused\. .*connect to the network"):
        ps._download("http://h/p.deb", tmp_path / "p.deb", "0" * 64)
    monkeypatch.setattr(urllib.request, "urlopen", _failing_urlopen(TimeoutError("timed out")))
    with pytest.raises(ps.DownloadError, match="timed out"):
        ps._download("http://h/p.deb", tmp_path / "p.deb", "0" * 64)


def test_a_missing_file_on_the_mirror_is_not_a_network_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = urllib.error.HTTPError("http://h/p.deb", 404, "Not Found", {}, None)
    monkeypatch.setattr(urllib.request, "urlopen", _failing_urlopen(gone))
    with pytest.raises(ToolFailed, match=r"http://h/p\.deb answered HTTP 404 \(Not Found\)\. "
                                         r"If the Debian mirror dropped this version") as info:
        ps._download("http://h/p.deb", tmp_path / "p.deb", "0" * 64)
    assert not isinstance(info.value, ps.DownloadError)


def test_debian_urls_leave_out_the_epoch() -> None:
    urls = {s.package: s.url for s in ps._SOURCES if s.kind != "pypi"}
    assert urls["palapeli-data"] == ("http://deb.debian.org/debian/pool/main/p/palapeli/"
                                     "palapeli-data_22.12.3-1_all.deb")
    assert urls["gcompris-qt-data"] == ("http://deb.debian.org/debian/pool/main/g/gcompris-qt/"
                                        "gcompris-qt-data_3.1-2_all.deb")


# --------------------------------------------------------------------------------------
# API errors
# --------------------------------------------------------------------------------------


def test_an_unknown_set_is_refused_with_the_allowed_names() -> None:
    message = "unknown photo set 'train'; the sets are: calibration, evaluation"
    for call in (ps.set_dir, ps.photo_set, ps.manifest):
        with pytest.raises(InputError, match=message):
            call("train")


def test_pillow_without_webp_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ps.features, "check", lambda feature: False)
    with pytest.raises(ToolNotFound, match="Pillow was built without WebP support"):
        ps.photo_set("evaluation")


# --------------------------------------------------------------------------------------
# The real sets (downloaded once, then cached under build/photos)
# --------------------------------------------------------------------------------------


def _or_skip(call):
    try:
        return call()
    except ps.DownloadError as exc:
        pytest.skip(f"the pinned packages could not be downloaded (no network?): {exc}")


@pytest.fixture(scope="module")
def real_sets() -> dict[str, list[Photo]]:
    return _or_skip(lambda: {name: ps.photo_set(name, log=lambda line: None)
                             for name in ps.SETS})


def test_the_sets_have_their_sizes_and_are_disjoint(real_sets) -> None:
    assert {name: len(photos) for name, photos in real_sets.items()} == {
        "calibration": 64, "evaluation": 243}
    digests = {name: {row["sha256"] for row in ps.manifest(name)} for name in ps.SETS}
    assert len(digests["calibration"]) == 64 and len(digests["evaluation"]) == 243
    assert not digests["calibration"] & digests["evaluation"]


def test_each_photo_is_rgb_and_matches_its_manifest_row(real_sets) -> None:
    for name, photos in real_sets.items():
        rows = ps.manifest(name)
        assert [r["file"] for r in rows] == sorted(r["file"] for r in rows)
        assert [p.name for p in photos] == [Path(r["file"]).stem for r in rows]
        for photo, row in zip(photos, rows, strict=True):
            assert tuple(row) == ps.MANIFEST_FIELDS
            assert photo.name == Path(row["file"]).stem
            assert photo.rgb.dtype == np.uint8 and photo.rgb.shape[2] == 3
            assert min(photo.rgb.shape[:2]) >= ps.MIN_SIDE
            assert sorted(photo.rgb.shape[:2]) == sorted((row["height"], row["width"]))
            assert row["licence"] and row["licence"] != "UNKNOWN", row["file"]
            assert row["split"] == name
            data = (ps.set_dir(name) / row["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == row["sha256"]


def test_the_bundled_demo_photos_are_in_neither_set(real_sets) -> None:
    for demo in bundled_photos():
        for photos in real_sets.values():
            assert not any(p.rgb.shape == demo.rgb.shape and np.array_equal(p.rgb, demo.rgb)
                           for p in photos), demo.name


def _flip_first_photo(directory: Path) -> str:
    file = sorted(p for p in directory.iterdir() if p.suffix == ".jpg")[0]
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    return file.name


def _remove_first_photo(directory: Path) -> str:
    file = sorted(p for p in directory.iterdir() if p.suffix == ".jpg")[0]
    file.unlink()
    return file.name


def _edit_manifest(directory: Path) -> str:
    manifest = directory / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("CC-BY-SA-3.0", "MIT", 1))
    return "manifest.csv does not match manifest.csv.sha256"


@pytest.mark.parametrize("damage", [_flip_first_photo, _remove_first_photo, _edit_manifest])
def test_a_damaged_set_is_rebuilt_from_the_kept_downloads(
        real_sets, monkeypatch: pytest.MonkeyPatch, damage) -> None:
    downloads = ps.build_path("photos", "downloads")
    for source in ps._SOURCES:
        if source.split == "calibration":
            _or_skip(lambda source=source: ps._fetch(source, downloads))
    before = ps.manifest("calibration")
    what = damage(ps.set_dir("calibration"))

    def no_network(*args, **kwargs):
        raise AssertionError("a rebuild from the kept downloads used the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(subprocess, "run", no_network)
    lines: list[str] = []
    photos = ps.photo_set("calibration", log=lines.append)
    assert len(lines) == 1, lines
    assert lines[0].startswith("photo set calibration in ") and "is damaged" in lines[0]
    assert what in lines[0] and lines[0].endswith("; rebuilding it")
    assert ps.manifest("calibration") == before
    assert [p.name for p in photos] == [p.name for p in real_sets["calibration"]]
    lines.clear()
    ps.photo_set("calibration", log=lines.append)
    assert lines == []
