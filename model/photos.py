"""Real photographs for demo frames and calibration, and the camera-frame preprocessing.

:func:`bundled_photos` returns colour photographs that ship inside installed packages, so
they are available offline: scikit-image's data directory (its ``data.astronaut``,
``chelsea``, ``coffee``, ``rocket``, ``stereo_motorcycle``, ``hubble_deep_field``,
``immunohistochemistry`` and ``retina`` images, the ones its wheel bundles; the others
are fetched from the network on demand and are not used here), scikit-learn's
``load_sample_images`` (``china.jpg``, ``flower.jpg``) and matplotlib's sample
``grace_hopper.jpg``. :func:`load_image` reads a user's own picture.

:func:`to_network_input` turns any of them into the frame the accelerator takes: the raw
8-bit BGR pixels a camera would send, resized and centre-cropped to the network's square
input. Mean subtraction is not done here: it is folded into the first layer's bias (see
:mod:`model.weights`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from model.errors import InputError, InputNotFound

__all__ = ["Photo", "bundled_photos", "load_image", "to_network_input"]

# Name -> file in scikit-image's data directory (all inside the scikit-image wheel).
# ``data.cat`` is the same picture as ``chelsea``, so it is left out.
_SKIMAGE_PHOTOS: tuple[tuple[str, str], ...] = (
    ("astronaut", "astronaut.png"),
    ("chelsea", "chelsea.png"),
    ("coffee", "coffee.png"),
    ("rocket", "rocket.jpg"),
    ("motorcycle", "motorcycle_left.png"),
    ("hubble_deep_field", "hubble_deep_field.jpg"),
    ("immunohistochemistry", "ihc.png"),
    ("retina", "retina.jpg"),
)
_SKLEARN_PHOTOS: tuple[str, ...] = ("china.jpg", "flower.jpg")
_MATPLOTLIB_PHOTOS: tuple[str, ...] = ("grace_hopper.jpg",)


@dataclass(frozen=True, eq=False)
class Photo:
    """A named RGB photograph.

    ``rgb`` is a read-only ``uint8`` array of shape ``(H, W, 3)`` in R, G, B order, checked
    at construction (``TypeError``/``ValueError`` otherwise). Photos compare by identity
    (``eq=False``): comparing pixel arrays with ``==`` has no single truth value.
    """

    name: str
    rgb: np.ndarray

    def __post_init__(self) -> None:
        _check_rgb(self.rgb, "Photo.rgb")
        view = self.rgb.view()
        view.flags.writeable = False
        object.__setattr__(self, "rgb", view)


def _check_rgb(rgb: object, what: str) -> None:
    """Raise unless ``rgb`` is a uint8 ndarray of shape (H, W, 3) with H, W >= 1."""
    if not isinstance(rgb, np.ndarray):
        raise TypeError(
            f"{what} must be a numpy uint8 array of shape (H, W, 3), got {type(rgb).__name__}"
        )
    if rgb.dtype != np.uint8:
        raise TypeError(f"{what} must have dtype uint8 (0..255 pixels), got dtype {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(
            f"{what} must have shape (H, W, 3) with H, W >= 1 (RGB), got shape {rgb.shape}"
        )


def _to_rgb_array(image: Image.Image, source: str) -> np.ndarray:
    """Convert a decoded Pillow image to a uint8 (H, W, 3) RGB array.

    Grayscale becomes three equal channels, palette images are expanded, an alpha channel
    is dropped (not composited), CMYK/YCbCr are converted by Pillow. Images of more than 8
    bits per channel raise ``ValueError``: converting them would clip or rescale silently.
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        raise InputError(
            f"{source}: {image.mode!r} images (more than 8 bits per channel) are not "
            "supported; convert it to 8-bit RGB first"
        )
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        image.mode == "P" and "transparency" in image.info
    ):
        image = image.convert("RGBA")  # palette/alpha -> RGBA; the alpha is dropped below
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb)


def _read_bundled(path: Path, name: str) -> Photo:
    with Image.open(path) as image:
        return Photo(name, _to_rgb_array(image, str(path)))


def bundled_photos() -> list[Photo]:
    """Return the photographs that ship with the installed packages, read offline.

    Always the same list in the same order: the scikit-image photos (astronaut, chelsea,
    coffee, rocket, motorcycle, hubble_deep_field, immunohistochemistry, retina), then
    scikit-learn's china and flower, then matplotlib's grace_hopper. Each is a
    :class:`Photo` with a unique name and a uint8 (H, W, 3) RGB array. The files are read
    from the packages' own directories, never downloaded; ``FileNotFoundError`` names the
    file if an installed package lacks one.
    """
    import skimage.data
    import sklearn.datasets
    from matplotlib import cbook

    photos: list[Photo] = []
    skimage_dir = Path(skimage.data.data_dir)
    for name, file_name in _SKIMAGE_PHOTOS:
        photos.append(_read_bundled(skimage_dir / file_name, name))
    sklearn_dir = Path(sklearn.datasets.__file__).parent / "images"
    for file_name in _SKLEARN_PHOTOS:
        photos.append(_read_bundled(sklearn_dir / file_name, Path(file_name).stem))
    for file_name in _MATPLOTLIB_PHOTOS:
        path = Path(cbook.get_sample_data(file_name, asfileobj=False))
        photos.append(_read_bundled(path, Path(file_name).stem))
    return photos


def load_image(path: str | Path) -> Photo:
    """Read a user's image file (JPEG, PNG or any other format Pillow decodes).

    Returns a :class:`Photo` named after the file's stem, whose ``rgb`` is uint8
    (H, W, 3). The EXIF orientation tag, when present, is applied so the picture is
    upright; multi-frame files (GIF, TIFF) give their first frame. Grayscale images become
    three equal channels; an alpha channel (RGBA, LA, transparent palette) is dropped,
    keeping the colour values as stored, not blended onto a background.

    Raises ``FileNotFoundError`` when ``path`` does not exist, ``ValueError`` naming the
    path when it is a directory, is not an image, is truncated or corrupt, or has more than
    8 bits per channel, and ``PermissionError`` when it cannot be opened.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFound(f"image file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an image file")
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image) or image
            image.load()
            rgb = _to_rgb_array(image, str(path))
    except UnidentifiedImageError as exc:
        raise InputError(f"{path} is not an image Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path} is too large to decode safely: {exc}") from exc
    except PermissionError:
        raise
    except (OSError, SyntaxError) as exc:  # truncated or corrupt data
        raise InputError(f"{path} could not be decoded as an image: {exc}") from exc
    return Photo(path.stem, rgb)


def to_network_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """Return the ``size`` x ``size`` 8-bit BGR frame for the RGB photo ``rgb``.

    The shorter side is resized to ``size`` with Pillow's bilinear filter (antialiased
    when shrinking; skipped when it already is ``size``), keeping the aspect ratio, then
    the centre ``size`` x ``size`` square is cut out (the extra pixel of an odd margin is
    cut from the right/bottom), and the channels are reversed to B, G, R. The result is a
    new C-contiguous ``uint8`` array of shape ``(size, size, 3)``: the raw pixels a camera
    would send, without mean subtraction.

    Raises ``TypeError`` when ``rgb`` is not a numpy array of dtype uint8 and
    ``ValueError`` when its shape is not (H, W, 3) or ``size`` is not a positive integer;
    the message names what was received.
    """
    _check_rgb(rgb, "rgb")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    size = int(size)
    height, width = rgb.shape[:2]
    scale = size / min(height, width)
    new_width = max(size, round(width * scale))
    new_height = max(size, round(height * scale))
    if (new_width, new_height) != (width, height):
        image = Image.fromarray(np.ascontiguousarray(rgb))
        resized = np.asarray(
            image.resize((new_width, new_height), Image.Resampling.BILINEAR), dtype=np.uint8
        )
    else:
        resized = rgb
    top = (new_height - size) // 2
    left = (new_width - size) // 2
    crop = resized[top : top + size, left : left + size]
    return np.ascontiguousarray(crop[:, :, ::-1])
