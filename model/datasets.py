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
  (by default Caffe's: resized to 256x256 for a 227 input, centre crop, BGR).
- :func:`scan_eval_folder`: the images of an evaluation folder, labelled (one sub-folder
  per class, named by ImageNet class name, index or WordNet synset id: the ILSVRC-2012
  validation layout) or flat (unlabelled), without reading them.

Both return ``(x, y)``: ``x`` uint8 ``(N, H, W, C)``, ``y`` int64 ``(N,)``.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
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
    "EvalFolder",
    "read_idx",
    "scan_eval_folder",
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
                      split: str = "train", channels: int = 3, preprocess: str = "caffe",
                      resize: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images of ``<root>/<split>/<class>/`` as ``size`` x ``size`` raw BGR frames, made by
    :func:`model.photos.to_network_input` with ``preprocess`` and ``resize`` (pass the
    spec's ``preprocess`` / ``resize`` so training sees what the accelerator sees).

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
                frame = to_network_input(load_image(path).rgb, size, preprocess, resize)
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


@dataclass
class EvalFolder:
    """What :func:`scan_eval_folder` found, in a fixed order (sorted by path).

    ``images``: (path, label) pairs, the label an int class index or None when the folder
    is flat. ``classes``: class folder name -> class index (empty when flat). ``skipped``:
    (path, reason) of what is not evaluated and why (nested folders); unreadable image
    files are found only when read, by the caller.
    """

    root: Path
    labelled: bool
    images: list[tuple[Path, int | None]]
    classes: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def scan_eval_folder(root: str | Path, label_of: Callable[[str], int],
                     limit: int = 0, seed: int = 0) -> EvalFolder:
    """The images to evaluate under ``root``, not yet read.

    ``root`` holds either only class sub-folders (labelled; ``label_of`` maps a folder
    name to a class index and raises ``InputError`` for a name it does not know, e.g.
    :func:`model.imagenet.imagenet_label`) or only files (flat, unlabelled). Every visible
    file counts as an image (one that does not decode is reported by whoever reads it);
    hidden files (``.name``) are ignored; folders nested in a class folder are listed in
    ``skipped``. ``limit`` > 0 keeps a seeded random subset of that many images, in path
    order. Raises ``InputNotFound`` when ``root`` is missing, ``InputError`` when it is not
    a folder, mixes class folders with loose files, holds no image, or two class folders
    stand for the same class (both named).
    """
    root = Path(root)
    if not root.exists():
        raise InputNotFound(f"evaluation folder not found: {root}")
    if not root.is_dir():
        raise InputError(f"{root} is not a folder (expected class sub-folders or images)")
    entries = sorted(p for p in root.iterdir() if _visible(p))
    dirs = [p for p in entries if p.is_dir()]
    files = [p for p in entries if not p.is_dir()]
    if dirs and files:
        raise InputError(f"{root} mixes class folders ({', '.join(p.name for p in dirs[:3])}"
                         f"{', ...' if len(dirs) > 3 else ''}) with loose files "
                         f"({', '.join(p.name for p in files[:3])}"
                         f"{', ...' if len(files) > 3 else ''}); use one layout")
    found = EvalFolder(root, labelled=bool(dirs), images=[])
    if not dirs:
        found.images = [(p, None) for p in files]
    by_class: dict[int, str] = {}
    for d in dirs:
        label = label_of(d.name)
        if label in by_class:
            raise InputError(f"{root}: class folders {by_class[label]!r} and {d.name!r} both "
                             f"stand for class {label}; keep one")
        by_class[label] = d.name
        found.classes[d.name] = label
        for p in sorted(q for q in d.iterdir() if _visible(q)):
            if p.is_dir():
                found.skipped.append((p, "a folder inside a class folder (not searched)"))
            else:
                found.images.append((p, label))
    if not found.images:
        raise InputError(f"{root}: no images"
                         + (" in any class folder" if dirs else ""))
    if 0 < limit < len(found.images):
        keep = np.random.default_rng(seed).choice(len(found.images), limit, replace=False)
        found.images = [found.images[i] for i in sorted(keep)]
    return found
