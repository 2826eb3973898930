"""Tests for model.photos (offline photos, user images, camera frames) and model.imagenet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.imagenet import imagenet_class_names, top_k
from model.photos import Photo, bundled_photos, load_image, to_network_input

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


def test_network_input_keeps_the_centre_and_exact_size() -> None:
    # 40 x 120: the middle third is green, the sides blue; resizing to 40 keeps all pixels.
    rgb = np.zeros((40, 120, 3), np.uint8)
    rgb[..., 2] = 255
    rgb[:, 40:80] = (0, 255, 0)
    frame = to_network_input(rgb, 40)
    assert np.all(frame == np.array([0, 255, 0], np.uint8))
    # Already square at the right size: the pixels are unchanged, only the order is swapped.
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_network_input(noise, 16), noise[..., ::-1])


def test_network_input_resizes_the_shorter_side() -> None:
    # A tall 200 x 100 image: width 100 -> 50, height 200 -> 100, then 25 rows cut each side
    # (source rows 0..49 and 150..199). The bright/dark bands lie within them, far enough
    # from the crop that the bilinear filter (2 source rows each side) does not reach in.
    rgb = np.full((200, 100, 3), 100, np.uint8)
    rgb[:40] = 200
    rgb[160:] = 20
    frame = to_network_input(rgb, 50)
    assert frame.shape == (50, 50, 3)
    assert np.all(frame == 100)


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
