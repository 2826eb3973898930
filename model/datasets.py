"""Labelled training data as the accelerator sees it: uint8 raw pixels (N, H, W, C).

- :func:`load_fashion_mnist`: Zalando's Fashion-MNIST from the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/*.gz``, IDX format, 60,000
  training and 10,000 test images of 28x28 grayscale, 10 classes). The 28x28 images are
  zero-padded (centred) to the spec's input size, or resized when the input is smaller,
  and the gray channel is repeated to the spec's channel count. Pixels stay raw 0..255, the
  same as the camera path (:func:`model.photos.to_network_input`).
- :func:`load_image_folder`: an ImageNet-style folder ``<root>/train/<class>/*.jpg|png``
  (and an optional ``<root>/val/<class>/...``), each image read with
  :func:`model.photos.load_image` and made a frame with :func:`model.photos.to_network_input`
  (shorter side resized, centre crop, BGR).

Both return ``(x, y)``: ``x`` uint8 ``(N, H, W, C)``, ``y`` int64 ``(N,)``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from model.errors import InputError, InputNotFound

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "IMAGE_SUFFIXES",
    "image_folder_classes",
    "load_fashion_mnist",
    "load_image_folder",
    "read_idx",
    "to_input_size",
]

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed when its name ends in .gz) into a numpy array.

    Header: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then one big-endian uint32 per
    dimension; the data follow in C order. Raises ``ValueError`` naming the file when the
    header is malformed or the data are shorter or longer than the header says.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # gzip errors are OSError / EOFError
        if isinstance(exc, FileNotFoundError):
            raise InputNotFound(f"{path}: file not found") from exc
        raise InputError(f"{path}: cannot read: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InputError(f"{path}: not an IDX file (bad magic number)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_TYPES:
        raise InputError(f"{path}: unknown IDX data type 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[type_code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise InputError(f"{path}: IDX header says {dims} ({expected} bytes of data), the file "
                         f"holds {len(raw) - header}")
    data = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def to_input_size(gray: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """(N, h, w) uint8 grayscale -> (N, height, width, channels) uint8.

    Larger inputs get centred zero padding (the odd pixel goes right/bottom); smaller ones
    are resized with Pillow's bilinear filter. The gray channel is repeated ``channels``
    times.
    """
    gray = np.asarray(gray)
    if gray.ndim != 3 or gray.dtype != np.uint8:
        raise ValueError(f"expected uint8 (N, h, w) images, got {gray.dtype} {gray.shape}")
    n, h, w = gray.shape
    if height >= h and width >= w:
        top, left = (height - h) // 2, (width - w) // 2
        out = np.zeros((n, height, width), np.uint8)
        out[:, top:top + h, left:left + w] = gray
    else:
        from PIL import Image

        out = np.stack([np.asarray(Image.fromarray(g).resize((width, height),
                                                             Image.Resampling.BILINEAR))
                        for g in gray]) if n else np.zeros((0, height, width), np.uint8)
    return np.ascontiguousarray(np.repeat(out[..., None], channels, axis=-1))


def load_fashion_mnist(root: str | Path = FASHION_MNIST_ROOT, split: str = "train",
                       height: int = 32, width: int = 32, channels: int = 3,
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` ('train': 60,000 images, 'test': 10,000) as network input.

    Returns ``x`` uint8 (N, height, width, channels) raw pixels and ``y`` int64 (N,) labels
    0..9 (names in :data:`FASHION_MNIST_CLASSES`). Raises ``FileNotFoundError`` with the
    install command when the Debian package's files are missing.
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    paths = [root / name for name in _FASHION_FILES[split]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputNotFound(
            f"Fashion-MNIST not found ({', '.join(missing)}): install the Debian package "
            "with `apt-get install dataset-fashion-mnist` (as root; .ci/run or the Makefile "
            "can do it), or pass the folder that holds the IDX .gz files"
        )
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise InputError(f"{paths[0]}: expected uint8 images (N, 28, 28), got "
                         f"{images.dtype} {images.shape}")
    if labels.shape != images.shape[:1]:
        raise InputError(f"{paths[1]}: {labels.shape[0] if labels.ndim else 0} labels for "
                         f"{images.shape[0]} images")
    return (to_input_size(images, height, width, channels), labels.astype(np.int64))


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_folder_classes(root: str | Path) -> list[str]:
    """Class names of an image folder: the sorted sub-folders of ``<root>/train``."""
    train = Path(root) / "train"
    if not Path(root).is_dir():
        raise InputNotFound(f"image folder not found: {root}")
    if not train.is_dir():
        raise InputNotFound(f"{root}: expected a 'train' folder with one sub-folder per "
                            "class (train/<class>/*.jpg|png)")
    classes = _class_dirs(train)
    if not classes:
        raise InputError(f"{train}: no class sub-folders (expected train/<class>/*.jpg|png)")
    return classes


def load_image_folder(root: str | Path, size: int, classes: list[str] | None = None,
                      split: str = "train", channels: int = 3,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Images of ``<root>/<split>/<class>/`` as ``size`` x ``size`` raw BGR frames.

    ``classes`` fixes the label order (label i = ``classes[i]``); by default the sorted
    sub-folders of ``<root>/train``, so 'train' and 'val' get the same labels. Files whose
    suffix is not an image suffix (:data:`IMAGE_SUFFIXES`) are ignored. Raises
    ``FileNotFoundError`` for a missing root or split folder, ``ValueError`` for a class
    folder without images, a split folder with a class unknown to ``classes``, or an image
    that cannot be decoded (the message names the file).
    """
    from model.photos import load_image, to_network_input

    root = Path(root)
    if classes is None:
        classes = image_folder_classes(root)
    if channels not in (1, 3):
        raise InputError(f"image folders give 1 or 3 channels, the spec asks for {channels}")
    split_dir = root / split
    if not split_dir.is_dir():
        raise InputNotFound(f"{root}: no '{split}' folder (expected {split}/<class>/*.jpg)")
    unknown = sorted(set(_class_dirs(split_dir)) - set(classes))
    if unknown:
        raise InputError(f"{split_dir}: class folder(s) {', '.join(unknown)} are not among "
                         f"the classes {', '.join(classes)}")
    xs, ys = [], []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        if not class_dir.is_dir():
            if split == "train":
                raise InputNotFound(f"{class_dir}: class folder missing")
            continue  # a validation split may lack a class
        files = sorted(p for p in class_dir.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{class_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
        for path in files:
            try:
                frame = to_network_input(load_image(path).rgb, size)
            except (ValueError, OSError) as exc:
                msg = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
                raise InputError(f"unreadable image: {msg}") from exc
            if channels == 1:
                frame = frame.mean(axis=2, keepdims=True).round().astype(np.uint8)
            xs.append(frame)
            ys.append(label)
    if not xs:
        raise InputError(f"{split_dir}: no images in any class folder")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)
