"""ImageNet (ILSVRC-2012) class names and top-k decoding of the network's 1000 logits.

The names are in ``model/data/imagenet_classes.txt``, one per line in the standard class
index order (0 = tench, 1 = goldfish, 281 = tabby, 967 = espresso, 999 = toilet tissue);
lines starting with ``#`` are comments. The list was generated once from the PyPI wheel
``torchvision==0.29.1``, file ``torchvision/models/_meta.py``, list
``_IMAGENET_CATEGORIES`` (read as a literal, not imported; BSD-3-Clause, (c) Soumith
Chintala 2016; the license text is reproduced in the file's header), and cross-checked
against ``timm==1.0.31`` ``timm/data/_info/imagenet_synsets.txt`` and
``imagenet_synset_to_lemma.txt`` (Apache-2.0): every name is a WordNet lemma of the synset
at the same index, except 134 ``crane bird`` and 639 ``maillot tank suit``, which
torchvision made unique.

The WordNet synset ids (``n01440764`` = 0, ...), which name the class folders of the
ILSVRC-2012 validation layout, are in ``model/data/imagenet_synsets.txt``: timm's
``imagenet_synsets.txt`` copied unchanged (origin and checksums in its header).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from model.errors import InputError

__all__ = ["CLASS_NAMES_FILE", "NUM_CLASSES", "SYNSETS_FILE", "imagenet_class_names",
           "imagenet_label", "imagenet_synsets", "top_k"]

NUM_CLASSES = 1000
CLASS_NAMES_FILE = Path(__file__).resolve().parent / "data" / "imagenet_classes.txt"
SYNSETS_FILE = Path(__file__).resolve().parent / "data" / "imagenet_synsets.txt"
_SYNSET = re.compile(r"n\d{8}")


@lru_cache(maxsize=1)
def _synsets() -> tuple[str, ...]:
    text = SYNSETS_FILE.read_text(encoding="utf-8")
    ids = tuple(line.strip() for line in text.splitlines() if not line.startswith("#"))
    if (len(ids) != NUM_CLASSES or len(set(ids)) != NUM_CLASSES or list(ids) != sorted(ids)
            or not all(_SYNSET.fullmatch(i) for i in ids)):
        raise ValueError(f"{SYNSETS_FILE} must list {NUM_CLASSES} distinct WordNet ids "
                         "n########, sorted")
    return ids


def imagenet_synsets() -> list[str]:
    """The 1000 WordNet synset ids; element ``i`` is class index ``i`` (a new list)."""
    return list(_synsets())


@lru_cache(maxsize=1)
def _class_names() -> tuple[str, ...]:
    text = CLASS_NAMES_FILE.read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if not line.startswith("#"))
    if len(names) != NUM_CLASSES:
        raise ValueError(
            f"{CLASS_NAMES_FILE} must list {NUM_CLASSES} class names, found {len(names)}"
        )
    if any(not name for name in names):
        raise ValueError(f"{CLASS_NAMES_FILE} has an empty class name")
    if len(set(names)) != NUM_CLASSES:
        raise ValueError(f"{CLASS_NAMES_FILE} has duplicate class names")
    return names


def imagenet_label(folder: str) -> int:
    """The class index an image-folder name stands for: a class name (case and '_' vs ' '
    do not matter, e.g. ``Egyptian_cat``), an index ``0``..``999`` or a WordNet synset id
    (``n01440764``, the ILSVRC-2012 layout). Raises ``InputError`` naming the folder (with
    close class names when there are) for anything else."""
    text = folder.strip()
    if _SYNSET.fullmatch(text):
        ids = _synsets()
        if text in ids:
            return ids.index(text)
        raise InputError(f"class folder {folder!r} is a WordNet id that is not one of the "
                         f"{NUM_CLASSES} ImageNet classes (ids: {SYNSETS_FILE})")
    if text.isdigit():
        if int(text) < NUM_CLASSES:
            return int(text)
        raise InputError(f"class folder {folder!r}: ImageNet indices are 0..{NUM_CLASSES - 1}")
    key = text.replace("_", " ").lower()
    lookup = {name.lower(): i for i, name in enumerate(_class_names())}
    if key in lookup:
        return lookup[key]
    import difflib

    close = difflib.get_close_matches(key, lookup, n=3)
    hint = f"; close: {', '.join(repr(c) for c in close)}" if close else ""
    raise InputError(f"class folder {folder!r} is not an ImageNet class name, index "
                     f"0..{NUM_CLASSES - 1} or WordNet id (names: {CLASS_NAMES_FILE}){hint}")


def imagenet_class_names() -> list[str]:
    """Return the 1000 ImageNet class names; element ``i`` names class index ``i``.

    The list always has exactly 1000 unique, non-empty names (checked when the file is
    first read; ``ValueError`` otherwise). A new list is returned on every call.
    """
    return list(_class_names())


def top_k(logits: np.ndarray, k: int = 5) -> list[tuple[int, str, float]]:
    """Return the ``k`` most probable classes as ``(index, name, probability)``.

    ``logits`` holds the 1000 raw class scores of one frame (any shape with 1000 elements,
    e.g. ``(1000,)`` or ``(1, 1000)``). Probabilities are the softmax of the logits computed
    in float64 (max-subtracted, so large logits do not overflow); the result is sorted by
    descending probability, ties by ascending index, and its probabilities sum to at most 1.
    Raises ``ValueError`` when ``logits`` does not have 1000 finite values or ``k`` is not
    in 1..1000.
    """
    values = np.asarray(logits, dtype=np.float64).reshape(-1)
    if values.size != NUM_CLASSES:
        raise ValueError(
            f"logits must hold {NUM_CLASSES} class scores, got shape {np.shape(logits)}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("logits contain NaN or infinite values")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= NUM_CLASSES:
        raise ValueError(f"k must be an integer in 1..{NUM_CLASSES}, got {k!r}")
    exp = np.exp(values - values.max())
    probs = exp / exp.sum()
    order = np.argsort(-probs, kind="stable")[: int(k)]
    names = _class_names()
    return [(int(i), names[i], float(probs[i])) for i in order]
