"""The labels of images scored from outside exprbench (:mod:`.images_source`): one per image, a class index
in the label set's order or an emotion name (case-insensitive), read from a token, a 1-D array (an ``.npy``
labels file, an ``.npz``'s ``labels``) or a CSV (one column, or ``file`` and ``label`` columns).

Every problem raises :class:`~exprbench.metrics.run.array_headers.ImageSourceError` naming the file and the value.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from exprbench.metrics.run.array_headers import ImageSourceError


def parse_label(token: str, class_names: Sequence[str], where: str) -> int:
    """One label: a class index or an emotion name (case-insensitive) -> the index.

    Raises:
        ImageSourceError: empty, unknown name, or an index outside 0..K-1 (``where`` names file and line).
    """
    t = token.strip()
    k = len(class_names)
    if not t:
        raise ImageSourceError(f"{where}: empty label")
    try:
        i = int(t)
    except ValueError:
        low = [n.lower() for n in class_names]
        if t.lower() in low:
            return low.index(t.lower())
        raise ImageSourceError(f"{where}: unknown emotion {t!r} (known: {', '.join(class_names)}, "
                               f"or class indices 0..{k - 1})") from None
    if not 0 <= i < k:
        raise ImageSourceError(f"{where}: class index {i} outside 0..{k - 1} ({', '.join(class_names)})")
    return i


def labels_from_array(arr: np.ndarray, class_names: Sequence[str], where: str) -> list[int]:
    """The labels of a 1-D array (class indices or emotion names; ``where`` names the file or .npz key).

    Raises:
        ImageSourceError: not 1-D, another dtype, or a bad label (its index named).
    """
    if arr.ndim != 1:
        raise ImageSourceError(f"{where}: labels have shape {arr.shape}; expected one label per image (1-D)")
    if np.issubdtype(arr.dtype, np.integer):
        return [parse_label(str(int(v)), class_names, f"{where}[{i}]") for i, v in enumerate(arr)]
    if arr.dtype.kind in ("U", "S"):
        return [parse_label(v.decode() if isinstance(v, bytes) else str(v), class_names, f"{where}[{i}]")
                for i, v in enumerate(arr)]
    raise ImageSourceError(f"{where}: labels have dtype {arr.dtype}; expected integer class indices or emotion names")


def labels_from_csv(path: Path, class_names: Sequence[str], files: Sequence[Path]) -> list[int]:
    """The labels of a CSV: one column, with or without a header, or a header with ``file`` and ``label``
    columns matched to the folder's image ``files`` (in their order).

    Raises:
        ImageSourceError: no labels, missing columns, a bad label (line named), a file listed twice, an image
            without a label or a listed file that is not among the images.
    """
    with open(path, newline="") as fh:
        rows = [(i + 1, r) for i, r in enumerate(csv.reader(fh)) if any(c.strip() for c in r)]
    if not rows:
        raise ImageSourceError(f"{path}: no labels in the file")
    header = [c.strip().lower() for c in rows[0][1]]
    label_col = next((header.index(c) for c in ("label", "emotion", "class") if c in header), None)
    file_col = next((header.index(c) for c in ("file", "filename", "path", "image") if c in header), None)
    if label_col is None:
        if len(header) != 1:
            raise ImageSourceError(f"{path}:1: {len(header)} columns but no 'label' column in a header; "
                                   "expected one label per line, or a header with 'file' and 'label'")
        return [parse_label(r[0], class_names, f"{path}:{ln}") for ln, r in rows]
    body = rows[1:]
    for ln, r in body:
        if len(r) <= max(label_col, file_col or 0):
            raise ImageSourceError(f"{path}:{ln}: {len(r)} columns, expected {len(header)}")
    if file_col is None:
        return [parse_label(r[label_col], class_names, f"{path}:{ln}") for ln, r in body]
    if not files:
        raise ImageSourceError(f"{path}: has a file column, but the images are an array, not a folder of files")
    by_name: dict[str, tuple[int, int]] = {}
    for ln, r in body:
        name = Path(r[file_col].strip()).name
        if name in by_name:
            raise ImageSourceError(f"{path}:{ln}: file {name!r} listed twice (first on line {by_name[name][0]})")
        by_name[name] = (ln, parse_label(r[label_col], class_names, f"{path}:{ln}"))
    out = []
    for f in files:
        if f.name not in by_name:
            raise ImageSourceError(f"{path}: no label for image {f.name!r}")
        out.append(by_name[f.name][1])
    extra = sorted(set(by_name) - {f.name for f in files})
    if extra:
        ln = by_name[extra[0]][0]
        raise ImageSourceError(f"{path}:{ln}: file {extra[0]!r} is not among the images")
    return out
