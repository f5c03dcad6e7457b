"""FER2013 (Goodfellow et al. 2013, "Challenges in Representation Learning: A report on three machine
learning contests"): 35,887 gray 48x48 faces with 7 emotion labels.

People have it in three forms, each read by its own reader (:mod:`.fer2013_csv`, :mod:`.fer2013_folder`,
:mod:`.fer2013_zip`) and recognised automatically by :func:`load_fer2013`:

* ``fer2013.csv`` (columns ``emotion,pixels,Usage``), optionally inside a zip;
* the image-folder download ``train/<emotion>/Training_<id>.jpg``, ``test/<emotion>/PublicTest_<id>.jpg``
  and ``test/<emotion>/PrivateTest_<id>.jpg``; the file-name prefix gives the split (files without a
  known prefix take ``train``/``test`` from their top folder);
* a zip of that folder.

Splits: ``train`` (Training), ``val`` (PublicTest), ``test`` (PrivateTest). Label sets: ``fer7`` in the
FER2013 order and ``fer6`` (disgust dropped, the other six keep the fer7 order; class names travel with
the data, so code never relies on an index order).

Decoding happens once; the result (uint8 N x 1 x 48 x 48, labels, split ids and the source's content
sha256) is cached (:mod:`.cache`) in a file keyed by the source's path, size and modification time.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path, PurePosixPath
from typing import Iterable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from exprbench.core.errors import DataError
from exprbench.core.io import file_sha256
from exprbench.data.cache import cache_dir, cached
from exprbench.data.container import FaceDataset
from exprbench.data.datasets import Dataset, dataset_of, find_reader, register_dataset

FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
LABEL_SETS: dict[str, tuple[str, ...]] = {
    "fer7": FER7,
    "fer6": tuple(n for n in FER7 if n != "disgust"),
}
_USAGE_TO_SPLIT = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}
_FOLDER_TO_SPLIT = {"train": 0, "test": 2}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
CACHE_VERSION = 1
SIZE = 48
# Largest file an image / the CSV may be (checked before reading or inflating it: a 48x48 face is a few
# KiB; fer2013.csv is 287 MiB). Anything larger is not FER2013 and would only exhaust memory.
MAX_IMAGE_BYTES = 16 * 2**20
MAX_CSV_BYTES = 1 * 2**30
DOWNLOAD_HINT = (
    "download FER2013 from https://www.kaggle.com/datasets/msambare/fer2013 (image folders) or "
    "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge "
    "(fer2013.csv)"
)



# --------------------------------------------------------------------------------------------
# path resolution


def resolve_data_path(path: str | os.PathLike | None = None) -> Path:
    """Find the dataset: ``path``, else ``$EXPRBENCH_DATA``, else ``data/fer2013.*`` in the repo or cwd.

    Raises:
        DataError: nothing found, or the given path does not exist.
    """
    if path is None:
        path = os.environ.get("EXPRBENCH_DATA") or None
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise DataError(f"dataset not found: {p} ({DOWNLOAD_HINT})")
        return p
    roots = [Path(__file__).resolve().parents[2], Path.cwd()]
    for root in roots:
        for cand in sorted((root / "data").glob("fer2013*")):
            return cand
    raise DataError(
        "no dataset given: pass --data PATH, set EXPRBENCH_DATA, or put fer2013.zip/.csv or the "
        f"fer2013/ folder under data/ ({DOWNLOAD_HINT})"
    )



# --------------------------------------------------------------------------------------------
# decoding


def _decode_image(raw: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            arr = np.asarray(im.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{name}: cannot decode image ({e})") from None
    if arr.shape != (SIZE, SIZE):
        raise DataError(f"{name}: image is {arr.shape[1]}x{arr.shape[0]}, expected {SIZE}x{SIZE}")
    return arr


def _split_of(relpath: PurePosixPath, where: str) -> int:
    stem = relpath.name
    for prefix, sid in _USAGE_TO_SPLIT.items():
        if stem.startswith(prefix + "_"):
            return sid
    top = relpath.parts[0].lower()
    if top in _FOLDER_TO_SPLIT:
        return _FOLDER_TO_SPLIT[top]
    raise DataError(f"{where}/{relpath}: cannot tell the split (no Training_/PublicTest_/PrivateTest_ prefix)")


def _label_of(relpath: PurePosixPath, where: str) -> int:
    emotion = relpath.parts[-2].lower() if len(relpath.parts) >= 2 else ""
    if emotion not in FER7:
        raise DataError(f"{where}/{relpath}: folder {emotion!r} is not an emotion ({', '.join(FER7)})")
    return FER7.index(emotion)


def _decode_folder_entries(entries: Iterable[tuple[PurePosixPath, bytes]], where: str):
    images, labels, splits = [], [], []
    for rel, raw in entries:
        labels.append(_label_of(rel, where))
        splits.append(_split_of(rel, where))
        images.append(_decode_image(raw, f"{where}/{rel}"))
    if not images:
        raise DataError(f"{where}: no images found (expected train/<emotion>/*.jpg and test/<emotion>/*.jpg)")
    return np.stack(images), np.asarray(labels), np.asarray(splits)


def _strip_root(rel: PurePosixPath) -> PurePosixPath | None:
    """Drop a wrapping folder (e.g. ``fer2013/train/...``) so paths start at train/ or test/."""
    parts = rel.parts
    for i, p in enumerate(parts[:-1]):
        if p.lower() in _FOLDER_TO_SPLIT:
            return PurePosixPath(*parts[i:])
    return None


def _check_size(size: int, limit: int, where: str, what: str) -> None:
    if size > limit:
        raise DataError(f"{where}: {size:,} bytes, more than the {limit:,} a FER2013 {what} can have")


def detect_format(path: Path) -> str:
    """Return the FER2013 form of a dataset path: ``"zip"``, ``"csv"`` or ``"folder"`` (its reader's format).

    Raises:
        DataError: missing path, or a file that is neither a zip nor a CSV.
    """
    return _reader(path).format


def _reader(path: Path):
    if not path.exists():
        raise DataError(f"dataset not found: {path} ({DOWNLOAD_HINT})")
    reader = find_reader(path, dataset="fer2013")
    if reader is None:
        raise DataError(f"{path}: unknown dataset format (expected fer2013.csv, a zip or an image folder)")
    return reader

# --------------------------------------------------------------------------------------------
# fingerprints and cache


def _stat_files(path: Path) -> list[tuple[str, int, int]]:
    if path.is_dir():
        return sorted(
            (p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in path.rglob("*") if p.is_file()
        )
    st = path.stat()
    return [(path.name, st.st_size, st.st_mtime_ns)]


def content_fingerprint(path: Path) -> str:
    """sha256 (hex) of a dataset file's bytes, or of a folder's sorted (path, sha256) list."""
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for rel, _, _ in _stat_files(path):
        h.update(f"{rel}\0{file_sha256(path / rel)}\n".encode())
    return h.hexdigest()


def _cache_file(path: Path) -> Path:
    key = hashlib.sha256(
        repr((CACHE_VERSION, str(path.resolve()), _stat_files(path))).encode()
    ).hexdigest()[:20]
    return cache_dir() / "data" / f"fer2013-{key}.pt"


def _decode(path: Path):
    """(images uint8 N x 48 x 48, labels int N in FER7 order, splits int N) of any FER2013 form."""
    return _reader(path).decode(path)


def _load_raw(path: Path, use_cache: bool) -> dict:
    def build() -> dict:
        images, labels, splits = _decode(path)
        return {
            "version": CACHE_VERSION,
            "images": torch.from_numpy(images).unsqueeze(1).contiguous(),
            "labels": torch.from_numpy(labels.astype(np.int64)),
            "splits": torch.from_numpy(splits.astype(np.int8)),
            "fingerprint": content_fingerprint(path),
        }

    return cached(_cache_file(path), CACHE_VERSION, build, use_cache)


def load_fer2013(
    path: str | os.PathLike | None = None, label_set: str = "fer7", use_cache: bool = True
) -> FaceDataset:
    """Load FER2013 from any of its three forms (see the module docstring), through the cache.

    Args:
        path: dataset path; ``None`` resolves it with :func:`resolve_data_path`.
        label_set: ``fer7`` (all 7 emotions) or ``fer6`` (disgust images dropped).
        use_cache: read and write the decoded cache.

    Returns:
        A :class:`FaceDataset` on the CPU: images uint8 N x 1 x 48 x 48 in 0..255.

    Raises:
        DataError: missing file, unknown format, malformed row or image (named), unknown label set.
    """
    if label_set not in LABEL_SETS:
        owner = dataset_of(label_set)
        if owner.name != "fer2013":
            raise DataError(f"label set {label_set!r} is a {owner.title} one: this works on FER2013 only "
                            f"(known: {', '.join(LABEL_SETS)}); the FER2013 metrics and evaluator do not apply to {owner.title}")
        raise DataError(f"unknown label set {label_set!r} (known: {', '.join(LABEL_SETS)})")
    p = resolve_data_path(path)
    raw = _load_raw(p, use_cache)
    names = LABEL_SETS[label_set]
    images, labels, splits = raw["images"], raw["labels"], raw["splits"]
    if label_set != "fer7":
        keep_idx = torch.tensor([FER7.index(n) for n in names])
        remap = torch.full((len(FER7),), -1, dtype=torch.int64)
        remap[keep_idx] = torch.arange(len(names))
        mask = remap[labels] >= 0
        images, labels, splits = images[mask], remap[labels[mask]], splits[mask]
    return FaceDataset(images, labels, splits, names, label_set, raw["fingerprint"], str(p))




register_dataset(Dataset(
    name="fer2013", title="FER2013", owns=lambda label_set: label_set in LABEL_SETS, default_label_set="fer7",
    resolve=resolve_data_path, load=load_fer2013, default=True,
))
