"""Tests for model.photos (offline photos, user images, camera frames) and model.imagenet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.imagenet import imagenet_class_names, imagenet_label, imagenet_synsets, top_k
from model.photos import (
    MAX_PIXELS,
    Photo,
    bundled_photos,
    load_image,
    spec_frame,
    to_network_input,
)
from model.spec import SpecError, spec_from_dict

EXPECTED_PHOTOS = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "china",
    "flower",
    "grace_hopper",
]

# --------------------------------------------------------------------------------------
# Bundled photos
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos() -> list[Photo]:
    return bundled_photos()


def test_bundled_photos_are_named_rgb_uint8_in_a_fixed_order(photos: list[Photo]) -> None:
    assert [p.name for p in photos] == EXPECTED_PHOTOS
    for photo in photos:
        assert photo.rgb.dtype == np.uint8, photo.name
        assert photo.rgb.ndim == 3, photo.name
        assert photo.rgb.shape[2] == 3, photo.name
        assert min(photo.rgb.shape[:2]) >= 227, photo.name
        assert photo.rgb.std() > 10, photo.name  # a real picture, not a flat fill
        assert not photo.rgb.flags.writeable


def test_bundled_photos_are_deterministic(photos: list[Photo]) -> None:
    again = bundled_photos()
    for a, b in zip(photos, again, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(a.rgb, b.rgb)


def test_photo_validates_its_pixels() -> None:
    with pytest.raises(TypeError, match=r"dtype uint8.*got dtype float32"):
        Photo("x", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\).*got shape \(4, 4\)"):
        Photo("x", np.zeros((4, 4), np.uint8))


# --------------------------------------------------------------------------------------
# to_network_input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [227, 32, 1])
def test_network_input_of_every_photo_has_the_frame_shape(photos: list[Photo], size: int) -> None:
    for photo in photos:
        frame = to_network_input(photo.rgb, size)
        assert frame.shape == (size, size, 3), photo.name
        assert frame.dtype == np.uint8
        assert frame.flags.c_contiguous


def test_network_input_is_bgr() -> None:
    red = np.zeros((50, 80, 3), np.uint8)
    red[..., 0] = 255
    frame = to_network_input(red, 32)
    assert np.all(frame[..., 2] == 255)
    assert np.all(frame[..., :2] == 0)


def test_short_side_keeps_the_centre_and_exact_size() -> None:
    # 40 x 120: the middle third is green, the sides blue; resizing to 40 keeps all pixels.
    rgb = np.zeros((40, 120, 3), np.uint8)
    rgb[..., 2] = 255
    rgb[:, 40:80] = (0, 255, 0)
    frame = to_network_input(rgb, 40, "short_side")
    assert np.all(frame == np.array([0, 255, 0], np.uint8))
    # Already square at the right size: the pixels are unchanged, only the order is swapped.
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_network_input(noise, 16, "short_side"), noise[..., ::-1])


def test_short_side_resizes_the_shorter_side() -> None:
    # A tall 200 x 100 image: width 100 -> 50, height 200 -> 100, then 25 rows cut each side
    # (source rows 0..49 and 150..199). The bright/dark bands lie within them, far enough
    # from the crop that the bilinear filter (2 source rows each side) does not reach in.
    rgb = np.full((200, 100, 3), 100, np.uint8)
    rgb[:40] = 200
    rgb[160:] = 20
    frame = to_network_input(rgb, 50, "short_side")
    assert frame.shape == (50, 50, 3)
    assert np.all(frame == 100)
    # resize=100: the width goes to 100 (unchanged), the height stays 200, rows 75..124 kept
    frame = to_network_input(rgb, 50, "short_side", resize=100)
    assert np.all(frame == 100)


def test_caffe_crops_the_centre_227_of_a_256_square() -> None:
    # Already 256 x 256: no resize; the crop starts at (256 - 227) // 2 = 14 on both axes.
    # R = row, G = column, B = 7, so every output pixel tells where it came from.
    rows, cols = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgb = np.stack([rows, cols, np.full_like(rows, 7)], axis=-1).astype(np.uint8)
    frame = to_network_input(rgb, 227)
    assert frame.shape == (227, 227, 3)
    np.testing.assert_array_equal(frame[..., 0], 7)                       # B first
    np.testing.assert_array_equal(frame[..., 1], cols[14:241, 14:241])    # G = column
    np.testing.assert_array_equal(frame[..., 2], rows[14:241, 14:241])    # R = row


def test_caffe_resizes_to_256_ignoring_the_aspect_ratio() -> None:
    # 300 rows x 512 columns in four flat blocks split at row 75 and column 128: the resize
    # to 256 x 256 (aspect ratio not kept) moves both splits to 64, the crop at 14 to 50 in
    # the frame. Pixels 3 or more away from a split are flat (the bilinear filter shrinking
    # by 2 or 1.17 reaches 2 source pixels per side).
    colours = {(0, 0): (250, 10, 10), (0, 1): (10, 250, 10), (1, 0): (10, 10, 250),
               (1, 1): (200, 200, 20)}
    rgb = np.zeros((300, 512, 3), np.uint8)
    for (i, j), c in colours.items():
        rgb[(0, 75)[i]:(75, 300)[i], (0, 128)[j]:(128, 512)[j]] = c
    frame = to_network_input(rgb, 227, "caffe")
    for (i, j), c in colours.items():
        block = frame[(0, 53)[i]:(47, 227)[i], (0, 53)[j]:(47, 227)[j]]
        assert np.all(block == np.array(c[::-1], np.uint8)), (i, j)
    # short_side: the 300 rows go to 227 (row split at 56.75), the 512 columns to 387 with
    # 80 cut on the left (column split at 128 * 227 / 300 - 80 = 16.9): another picture.
    other = to_network_input(rgb, 227, "short_side")
    assert np.all(other[60:, 20:] == np.array(colours[(1, 1)][::-1], np.uint8))
    assert np.all(other[:54, 20:] == np.array(colours[(0, 1)][::-1], np.uint8))


def test_caffe_default_resize_follows_the_input_size() -> None:
    # 35 x 35 input (configs/tiny.yaml): resize round(35 * 256 / 227) = 39, crop at 2.
    rows, cols = np.meshgrid(np.arange(39), np.arange(39), indexing="ij")
    rgb = np.stack([rows, cols, cols], axis=-1).astype(np.uint8)
    frame = to_network_input(rgb, 35)
    np.testing.assert_array_equal(frame[..., 2], rows[2:37, 2:37])
    # An explicit resize overrides it: 37 -> crop at 1 (no resize: 37 is not 39, so resize)
    same = to_network_input(rgb[:37, :37], 35, resize=37)
    np.testing.assert_array_equal(same[..., 2], rows[1:36, 1:36])


def test_spec_frame_uses_the_spec_input_section() -> None:
    rows, cols = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    rgb = np.stack([rows, cols, rows], axis=-1).astype(np.uint8)
    base = {"name": "t", "variant": "custom", "classes": 10, "weights": "random",
            "conv1": {"filters": 8}, "pool_after": ["conv1"], "n_fire": 2}
    caffe = spec_from_dict({**base, "input": {"height": 60, "width": 60, "resize": 64}})
    assert (caffe.preprocess, caffe.resize) == ("caffe", 64)
    np.testing.assert_array_equal(spec_frame(rgb, caffe)[..., 2], rows[2:62, 2:62])
    gray = spec_from_dict({**base, "input": {"height": 60, "width": 60, "channels": 1,
                                             "preprocess": "short_side", "resize": 64}})
    x = spec_frame(rgb, gray)
    assert x.shape == (60, 60, 1)
    np.testing.assert_array_equal(x[..., 0], np.round((2 * rows + cols) / 3)[2:62, 2:62])


@pytest.mark.parametrize(("inp", "match"), [
    ({"preprocess": "torch"}, r"input.preprocess: 'torch' is not allowed; allowed: caffe, "
                              r"short_side"),
    ({"resize": 200}, r"input.resize: must be at least the input size 227.*got 200"),
    ({"resize": 0}, r"input.resize: expected a positive integer, got 0"),
    ({"crop": 227}, r"input: unknown key\(s\) 'crop'; allowed: channels, height, "
                    r"preprocess, resize, width"),
])
def test_spec_refuses_bad_preprocessing(inp: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        spec_from_dict({"name": "x", "input": inp})


def test_network_input_rejects_a_bad_method_or_resize() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="preprocess: 'bicubic' is not allowed; allowed: "
                                         "caffe, short_side"):
        to_network_input(rgb, 8, "bicubic")
    with pytest.raises(ValueError, match=r"resize must be an integer >= size \(8\), got 7"):
        to_network_input(rgb, 8, resize=7)


def test_absurd_pictures_are_refused_before_decoding(tmp_path: Path) -> None:
    strip = np.zeros((5, 101, 3), np.uint8)  # 20.2 : 1
    with pytest.raises(ValueError, match=r"rgb: 101x5 pixels has a side ratio above 20:1"):
        to_network_input(strip, 4)
    to_network_input(strip[:, :100], 4)  # 20 : 1 exactly is accepted
    # A bilevel PNG of 10,000 x 5,001 pixels: 6 MB to create, 150 MB as RGB; refused from
    # its header (Pillow itself would only warn at this size).
    big = tmp_path / "big.png"
    Image.new("1", (10_000, MAX_PIXELS // 10_000 + 1)).save(big)
    with pytest.raises(ValueError, match=r"big\.png: 10000x5001 pixels \(50 megapixels\) is "
                                         r"more than the 50 megapixels accepted"):
        load_image(big)
    wide = tmp_path / "wide.png"
    Image.new("RGB", (2100, 100)).save(wide)
    with pytest.raises(ValueError, match=r"wide\.png: 2100x100 pixels has a side ratio"):
        load_image(wide)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (np.zeros((8, 8, 3), np.float64), TypeError, r"dtype uint8.*got dtype float64"),
        (np.zeros((8, 8, 3), np.int16), TypeError, "got dtype int16"),
        ([[[0, 0, 0]]], TypeError, r"numpy uint8 array.*got list"),
        (np.zeros((8, 8), np.uint8), ValueError, r"shape \(H, W, 3\).*got shape \(8, 8\)"),
        (np.zeros((8, 8, 4), np.uint8), ValueError, r"got shape \(8, 8, 4\)"),
        (np.zeros((0, 8, 3), np.uint8), ValueError, r"got shape \(0, 8, 3\)"),
    ],
)
def test_network_input_rejects_bad_images(bad: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        to_network_input(bad, 8)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_network_input_rejects_bad_sizes(size: object) -> None:
    with pytest.raises(ValueError, match="size must be a positive integer"):
        to_network_input(np.zeros((8, 8, 3), np.uint8), size)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# load_image
# --------------------------------------------------------------------------------------


def test_load_image_round_trips_a_png(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(rgb).save(path)
    photo = load_image(path)
    assert photo.name == "noise"
    np.testing.assert_array_equal(photo.rgb, rgb)


def test_load_image_reads_a_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "flat.jpg"
    Image.new("RGB", (24, 16), (200, 30, 60)).save(path, quality=95)
    photo = load_image(str(path))
    assert photo.rgb.shape == (16, 24, 3)
    assert np.abs(photo.rgb.astype(int) - (200, 30, 60)).max() <= 3


def test_load_image_makes_grayscale_three_channels(tmp_path: Path) -> None:
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    photo = load_image(path)
    assert photo.rgb.shape == (8, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(photo.rgb[..., channel], gray)


def test_load_image_drops_alpha(tmp_path: Path) -> None:
    rgba = np.random.default_rng(2).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    photo = load_image(path)
    np.testing.assert_array_equal(photo.rgb, rgba[..., :3])


def test_load_image_errors_name_the_path_and_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    with pytest.raises(FileNotFoundError, match=r"image file not found: .*missing\.jpg"):
        load_image(missing)
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(ValueError, match=r"notes\.png is not an image Pillow can read"):
        load_image(text)
    with pytest.raises(ValueError, match="is a directory, not an image file"):
        load_image(tmp_path)
    truncated = tmp_path / "truncated.jpg"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        truncated
    )
    truncated.write_bytes(truncated.read_bytes()[:600])
    with pytest.raises(ValueError, match=r"truncated\.jpg could not be decoded"):
        load_image(truncated)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(deep)
    with pytest.raises(ValueError, match=r"deep\.png: .*more than 8 bits per channel"):
        load_image(deep)


# --------------------------------------------------------------------------------------
# ImageNet class names and top-k (they label the photos)
# --------------------------------------------------------------------------------------


def test_class_names_are_the_ilsvrc2012_list() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000 == len(set(names))
    assert names[0] == "tench"
    assert names[1] == "goldfish"
    assert names[281] == "tabby"
    assert names[285] == "Egyptian cat"
    assert names[967] == "espresso"
    assert names[999] == "toilet tissue"
    assert all(name and name == name.strip() and not name.startswith("#") for name in names)


def test_synset_ids_name_the_same_classes() -> None:
    ids = imagenet_synsets()
    assert len(ids) == 1000 == len(set(ids)) and ids == sorted(ids)
    # Well-known ILSVRC-2012 pairs: tench, goldfish, tabby, Egyptian cat, espresso, toilet
    # tissue (the synset ids of the validation set's folders).
    for synset, index in (("n01440764", 0), ("n01443537", 1), ("n02123045", 281),
                          ("n02124075", 285), ("n07920052", 967), ("n15075141", 999)):
        assert ids[index] == synset
        assert imagenet_label(synset) == index
    assert imagenet_label("Egyptian_cat") == imagenet_label("285") == 285
    with pytest.raises(ValueError, match="'n00000001' is a WordNet id that is not one of"):
        imagenet_label("n00000001")


def test_top_k_is_sorted_softmax() -> None:
    logits = np.random.default_rng(4).normal(size=1000).astype(np.float32)
    logits[967] = 9.0
    result = top_k(logits, k=5)
    assert len(result) == 5
    assert result[0][:2] == (967, "espresso")
    probabilities = [p for _, _, p in result]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0.0 < sum(probabilities) <= 1.0
    names = imagenet_class_names()
    assert all(names[i] == name for i, name, _ in result)
    expected = np.exp(logits.astype(np.float64) - logits.max())
    expected /= expected.sum()
    assert result[0][2] == pytest.approx(expected[967], rel=1e-12)


def test_top_k_handles_large_logits_and_ties() -> None:
    logits = np.zeros((1, 1000))
    logits[0, [3, 7]] = 1e6  # would overflow a naive exp
    result = top_k(logits, k=3)
    assert [i for i, _, _ in result] == [3, 7, 0]
    assert result[0][2] == pytest.approx(0.5)
    assert sum(p for _, _, p in top_k(logits, k=1000)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("logits", "k", "match"),
    [
        (np.zeros(10), 5, r"1000 class scores, got shape \(10,\)"),
        (np.full(1000, np.nan), 5, "NaN or infinite"),
        (np.zeros(1000), 0, "k must be an integer in 1..1000"),
        (np.zeros(1000), 1001, "k must be an integer in 1..1000"),
    ],
)
def test_top_k_rejects_bad_arguments(logits: np.ndarray, k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        top_k(logits, k)
