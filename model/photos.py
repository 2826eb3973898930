"""Real photographs for demo frames and calibration, and the camera-frame preprocessing.

:func:`bundled_photos` returns colour photographs that ship inside installed packages, so
they are available offline: scikit-image's data directory (its ``data.astronaut``,
``chelsea``, ``coffee``, ``rocket``, ``stereo_motorcycle``, ``hubble_deep_field``,
``immunohistochemistry`` and ``retina`` images, the ones its wheel bundles; the others
are fetched from the network on demand and are not used here), scikit-learn's
``load_sample_images`` (``china.jpg``, ``flower.jpg``) and matplotlib's sample
``grace_hopper.jpg``. :func:`load_image` reads a user's own picture.

:func:`to_network_input` turns any of them into the frame the accelerator takes: the raw
8-bit BGR pixels a camera would send, cut to the network's square input by one of
:data:`PREPROCESS_METHODS` (default ``caffe``: the whole picture resized to 256x256,
ignoring its aspect ratio, then the centre 227x227, as the SqueezeNet Caffe models were
evaluated); :func:`spec_frame` does it with the method and size a spec names
(``input: {preprocess, resize}``). Mean subtraction is not done here: it is folded into
the first layer's bias (see :mod:`model.weights`).

Pictures of more than :data:`MAX_PIXELS` pixels or a side ratio above
:data:`MAX_ASPECT` are refused before they are decoded or resized.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from model.errors import InputError, InputNotFound

if TYPE_CHECKING:
    from model.spec import NetworkSpec

__all__ = ["MAX_ASPECT", "MAX_PIXELS", "PREPROCESS_METHODS", "Photo", "bundled_photos",
           "default_resize", "load_image", "spec_frame", "to_network_input"]

# ``caffe``: resize to resize x resize (aspect ratio ignored), centre crop (Caffe's
# SqueezeNet evaluation: 256x256, crop 227). ``short_side``: the shorter side resized to
# ``resize`` keeping the aspect ratio, centre crop (torchvision-style).
PREPROCESS_METHODS: tuple[str, ...] = ("caffe", "short_side")
# Refused before decoding: a 50-megapixel photo decodes to 150 MB of RGB; a 20:1 strip
# resized on its short side would be 20x the crop wide. Both far beyond any camera frame.
MAX_PIXELS = 50_000_000
MAX_ASPECT = 20.0

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
    path when it is a directory, is not an image, is truncated or corrupt, has more than
    8 bits per channel, more than :data:`MAX_PIXELS` pixels or a side ratio above
    :data:`MAX_ASPECT` (the last two checked from the header, before decoding), and
    ``PermissionError`` when it cannot be opened.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFound(f"image file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an image file")
    try:
        with Image.open(path) as image:
            _check_geometry(image.size[1], image.size[0], str(path))
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


def _check_geometry(height: int, width: int, what: str) -> None:
    """Refuse absurd pictures (InputError naming ``what``) before anything is allocated."""
    if height * width > MAX_PIXELS:
        raise InputError(f"{what}: {width}x{height} pixels ({height * width / 1e6:.0f} "
                         f"megapixels) is more than the {MAX_PIXELS / 1e6:.0f} megapixels "
                         "accepted; scale it down first")
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise InputError(f"{what}: {width}x{height} pixels has a side ratio above "
                         f"{MAX_ASPECT:.0f}:1; crop it first")


def default_resize(size: int, preprocess: str = "caffe") -> int:
    """The resize a method uses for a ``size`` crop when none is given: ``caffe`` keeps
    Caffe's 256/227 ratio (256 for 227, 39 for 35), ``short_side`` resizes to the crop."""
    return round(size * 256 / 227) if preprocess == "caffe" else size


def to_network_input(rgb: np.ndarray, size: int, preprocess: str = "caffe",
                     resize: int | None = None) -> np.ndarray:
    """Return the ``size`` x ``size`` 8-bit BGR frame for the RGB photo ``rgb``.

    ``preprocess`` (one of :data:`PREPROCESS_METHODS`) says how the picture becomes a square:

    - ``caffe`` (default): resized to ``resize`` x ``resize`` whatever its aspect ratio
      (default :func:`default_resize`: 256 for a 227 crop), then the centre ``size`` x
      ``size`` cut out at offset ``(resize - size) // 2`` on both axes (Caffe's test-time
      crop; 14 for 256 -> 227).
    - ``short_side``: the shorter side resized to ``resize`` (default ``size``) keeping the
      aspect ratio, then the centre square cut out (the extra pixel of an odd margin is
      cut from the right/bottom).

    Resizing uses Pillow's bilinear filter (antialiased when shrinking) and is skipped when
    the picture already has the target size. The channels are then reversed to B, G, R.
    The result is a new C-contiguous ``uint8`` array of shape ``(size, size, 3)``: the raw
    pixels a camera would send, without mean subtraction.

    Raises ``TypeError`` when ``rgb`` is not a numpy array of dtype uint8, ``ValueError``
    when its shape is not (H, W, 3), ``size`` or ``resize`` is not a positive integer,
    ``resize`` is below ``size`` or ``preprocess`` is unknown (the message lists the
    allowed ones), and :class:`~model.errors.InputError` (a ``ValueError``) when the
    picture has more than :data:`MAX_PIXELS` pixels or a side ratio above
    :data:`MAX_ASPECT`, before anything is resized. Messages name what was received.
    """
    _check_rgb(rgb, "rgb")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if preprocess not in PREPROCESS_METHODS:
        raise ValueError(f"preprocess: {preprocess!r} is not allowed; allowed: "
                         f"{', '.join(PREPROCESS_METHODS)}")
    size = int(size)
    if resize is None:
        resize = default_resize(size, preprocess)
    if isinstance(resize, bool) or not isinstance(resize, (int, np.integer)) or resize < size:
        raise ValueError(f"resize must be an integer >= size ({size}), got {resize!r}")
    resize = int(resize)
    height, width = rgb.shape[:2]
    _check_geometry(height, width, "rgb")
    if preprocess == "caffe":
        new_width = new_height = resize
    else:
        scale = resize / min(height, width)
        new_width = max(resize, round(width * scale))
        new_height = max(resize, round(height * scale))
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


def spec_frame(rgb: np.ndarray, spec: NetworkSpec) -> np.ndarray:
    """The frame the network of ``spec`` takes for the RGB photo ``rgb``: its square input
    size, its ``input.preprocess`` / ``input.resize`` and its channel count (one channel:
    the rounded mean of B, G, R). uint8 ``(size, size, channels)``. Raises
    :class:`~model.spec.SpecError` (a ``ValueError``) for a non-square input or a channel
    count other than 1 or 3."""
    from model.spec import SpecError

    if spec.height != spec.width:
        raise SpecError(f"photo frames are square crops; the spec asks for "
                         f"{spec.height}x{spec.width}")
    if spec.channels not in (1, 3):
        raise SpecError(f"photos give 1 or 3 channels; the spec asks for {spec.channels}")
    x = to_network_input(rgb, spec.height, spec.preprocess, spec.resize)
    if spec.channels == 1:
        x = x.mean(axis=2, keepdims=True).round().astype(np.uint8)
    return x
