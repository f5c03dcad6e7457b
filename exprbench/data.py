"""FER2013 data layer: read the three public forms, cache the decoded tensors, select splits and labels.

FER2013 (Goodfellow et al. 2013, "Challenges in Representation Learning: A report on three machine
learning contests") has 35,887 gray 48x48 faces with 7 emotion labels. People have it in three forms,
all detected automatically by :func:`load_fer2013`:

* ``fer2013.csv`` (columns ``emotion,pixels,Usage``), optionally inside a zip;
* the image-folder download ``train/<emotion>/Training_<id>.jpg``, ``test/<emotion>/PublicTest_<id>.jpg``
  and ``test/<emotion>/PrivateTest_<id>.jpg``; the file-name prefix gives the split (files without a
  known prefix take ``train``/``test`` from their top folder);
* a zip of that folder.

Splits: ``train`` (Training), ``val`` (PublicTest), ``test`` (PrivateTest). Label sets: ``fer7`` in the
FER2013 order and ``fer6`` (disgust dropped, the other six keep the fer7 order; class names travel with
the data, so code never relies on an index order).

Decoding happens once; the result (uint8 N x 1 x 48 x 48, labels, split ids and the source's content
sha256) is cached under ``$EXPRBENCH_CACHE`` (default ``~/.cache/exprbench``) in a file keyed by the
source's path, size and modification time, written atomically.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import DataError
from .io import atomic_open, file_sha256

FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
LABEL_SETS: dict[str, tuple[str, ...]] = {
    "fer7": FER7,
    "fer6": tuple(n for n in FER7 if n != "disgust"),
}
SPLITS = ("train", "val", "test")
_USAGE_TO_SPLIT = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}
_FOLDER_TO_SPLIT = {"train": 0, "test": 2}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
CACHE_VERSION = 1
SIZE = 48
DOWNLOAD_HINT = (
    "download FER2013 from https://www.kaggle.com/datasets/msambare/fer2013 (image folders) or "
    "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge "
    "(fer2013.csv)"
)


@dataclass(frozen=True)
class DataSpec:
    """What a model plugin needs to know about its data: image shape and classes.

    Attributes:
        channels, height, width: image shape (FER2013: 1 x 48 x 48).
        class_names: one name per label index, e.g. ``("angry", ..., "neutral")``.
        label_set: name of the label set (``fer7``, ``fer6``).
    """

    channels: int
    height: int
    width: int
    class_names: tuple[str, ...]
    label_set: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class FaceDataset:
    """Decoded images with labels and split ids, on one device.

    Attributes:
        images: uint8 tensor N x C x H x W, values 0..255 (FER2013: C=1, H=W=48).
        labels: int64 tensor N, indices into ``class_names``.
        splits: int8 tensor N, 0 train / 1 val / 2 test.
        class_names: names of the label indices.
        label_set: ``fer7`` or ``fer6``.
        fingerprint: sha256 (hex) of the source file's content (or of a folder's files), so
            caches derived from this data can be keyed by it.
        source: the path the data was read from.
    """

    images: torch.Tensor
    labels: torch.Tensor
    splits: torch.Tensor
    class_names: tuple[str, ...]
    label_set: str
    fingerprint: str
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def spec(self) -> DataSpec:
        _, c, h, w = self.images.shape
        return DataSpec(c, h, w, tuple(self.class_names), self.label_set)

    def split(self, name: str) -> "FaceDataset":
        """Return the subset of split ``name`` (``train``, ``val``, ``test`` or ``all``).

        Raises:
            DataError: unknown split name, or the split holds no image.
        """
        if name == "all":
            return self
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r} (known: {', '.join(SPLITS)}, all)")
        mask = self.splits == SPLITS.index(name)
        if not bool(mask.any()):
            raise DataError(f"split {name!r} of {self.source} is empty")
        return FaceDataset(
            self.images[mask], self.labels[mask], self.splits[mask], self.class_names,
            self.label_set, self.fingerprint, self.source,
        )

    def to(self, device: torch.device | str) -> "FaceDataset":
        """Move the tensors to ``device`` (the whole FER2013 is 83 MB as uint8)."""
        return FaceDataset(
            self.images.to(device), self.labels.to(device), self.splits.to(device),
            self.class_names, self.label_set, self.fingerprint, self.source,
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Image counts as ``{split: {class_name: n}}`` over the splits present."""
        out: dict[str, dict[str, int]] = {}
        for i, s in enumerate(SPLITS):
            mask = self.splits == i
            per = torch.bincount(self.labels[mask].cpu(), minlength=len(self.class_names))
            out[s] = {n: int(k) for n, k in zip(self.class_names, per.tolist())}
        return out


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
    roots = [Path(__file__).resolve().parents[1], Path.cwd()]
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


def _read_zip(path: Path):
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise DataError(f"{path}: not a readable zip ({e})") from None
    with zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        csvs = [n for n in names if n.lower().endswith(".csv")]
        imgs = [n for n in names if PurePosixPath(n).suffix.lower() in _IMAGE_SUFFIXES]
        if imgs:
            def entries() -> Iterator[tuple[PurePosixPath, bytes]]:
                for n in sorted(imgs):
                    rel = _strip_root(PurePosixPath(n))
                    if rel is None:
                        raise DataError(f"{path}:{n}: not under a train/ or test/ folder")
                    yield rel, zf.read(n)
            return _decode_folder_entries(entries(), str(path))
        if len(csvs) == 1:
            with zf.open(csvs[0]) as fh:
                return _parse_csv(io.TextIOWrapper(fh, encoding="utf-8", newline=""), f"{path}:{csvs[0]}")
        raise DataError(f"{path}: zip holds neither FER2013 image folders nor one fer2013.csv")


def _read_folder(path: Path):
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES
    )
    if not files:
        csvs = sorted(path.glob("*.csv"))
        if len(csvs) == 1:
            return _read_csv(csvs[0])
        raise DataError(f"{path}: no FER2013 images (train/<emotion>/*.jpg) nor fer2013.csv found")

    def entries() -> Iterator[tuple[PurePosixPath, bytes]]:
        for f in files:
            rel = _strip_root(PurePosixPath(f.relative_to(path).as_posix()))
            if rel is None:
                raise DataError(f"{f}: not under a train/ or test/ folder")
            yield rel, f.read_bytes()

    return _decode_folder_entries(entries(), str(path))


def _read_csv(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        return _parse_csv(fh, str(path))


def _parse_csv(fh, where: str):
    reader = csv.reader(fh)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{where}: empty file") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"{where}:1: not a CSV file ({e})") from None
    cols = [h.strip().lower() for h in header]
    missing = {"emotion", "pixels", "usage"} - set(cols)
    if missing:
        raise DataError(f"{where}:1: header {header} lacks column(s) {sorted(missing)} (expected emotion,pixels,Usage)")
    ie, ip, iu = cols.index("emotion"), cols.index("pixels"), cols.index("usage")
    n_px = SIZE * SIZE
    images, labels, splits = [], [], []
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) < len(cols):
                raise DataError(f"{where}:{line}: {len(row)} fields, expected {len(cols)}")
            try:
                label = int(row[ie])
            except ValueError:
                raise DataError(f"{where}:{line}: emotion {row[ie]!r} is not an integer") from None
            if not 0 <= label < len(FER7):
                raise DataError(f"{where}:{line}: emotion {label} outside 0..6")
            try:
                px = np.array(row[ip].split(), dtype=np.int64)
            except ValueError:
                raise DataError(f"{where}:{line}: pixels are not all integers") from None
            if px.size != n_px:
                raise DataError(f"{where}:{line}: {px.size} pixels, expected {n_px} (48x48)")
            if px.min() < 0 or px.max() > 255:
                raise DataError(f"{where}:{line}: pixel values outside 0..255")
            usage = row[iu].strip()
            if usage not in _USAGE_TO_SPLIT:
                raise DataError(f"{where}:{line}: Usage {usage!r} is not Training, PublicTest or PrivateTest")
            images.append(px.astype(np.uint8).reshape(SIZE, SIZE))
            labels.append(label)
            splits.append(_USAGE_TO_SPLIT[usage])
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"{where}:{reader.line_num}: malformed CSV ({e})") from None
    if not images:
        raise DataError(f"{where}: no data rows")
    return np.stack(images), np.asarray(labels), np.asarray(splits)


def detect_format(path: Path) -> str:
    """Return ``"zip"``, ``"csv"`` or ``"folder"`` for a dataset path.

    Raises:
        DataError: missing path, or a file that is neither a zip nor a CSV.
    """
    if not path.exists():
        raise DataError(f"dataset not found: {path} ({DOWNLOAD_HINT})")
    if path.is_dir():
        return "folder"
    if zipfile.is_zipfile(path):
        return "zip"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if path.suffix.lower() == ".csv" or b"emotion" in head.split(b"\n", 1)[0].lower():
        return "csv"
    raise DataError(f"{path}: unknown dataset format (expected fer2013.csv, a zip or an image folder)")


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


def cache_dir() -> Path:
    """The cache root: ``$EXPRBENCH_CACHE`` or ``~/.cache/exprbench``."""
    return Path(os.environ.get("EXPRBENCH_CACHE") or Path.home() / ".cache" / "exprbench")


def _cache_file(path: Path) -> Path:
    key = hashlib.sha256(
        repr((CACHE_VERSION, str(path.resolve()), _stat_files(path))).encode()
    ).hexdigest()[:20]
    return cache_dir() / "data" / f"fer2013-{key}.pt"


def atomic_torch_save(obj, dest: Path) -> None:
    """``torch.save`` to ``dest`` atomically (see :mod:`exprbench.io`)."""
    with atomic_open(dest, "wb") as fh:
        torch.save(obj, fh)


def _decode(path: Path):
    fmt = detect_format(path)
    if fmt == "zip":
        return _read_zip(path)
    if fmt == "csv":
        return _read_csv(path)
    return _read_folder(path)


def _load_raw(path: Path, use_cache: bool) -> dict:
    cfile = _cache_file(path)
    if use_cache and cfile.exists():
        try:
            return torch.load(cfile, map_location="cpu", weights_only=True)
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            cfile.unlink(missing_ok=True)
    images, labels, splits = _decode(path)
    raw = {
        "version": CACHE_VERSION,
        "images": torch.from_numpy(images).unsqueeze(1).contiguous(),
        "labels": torch.from_numpy(labels.astype(np.int64)),
        "splits": torch.from_numpy(splits.astype(np.int8)),
        "fingerprint": content_fingerprint(path),
    }
    if use_cache:
        atomic_torch_save(raw, cfile)
    return raw


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


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 N x C x H x W -> float32 in [-1, 1] (x / 127.5 - 1)."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 0..255, quantized exactly like the real data.

    The inverse of :func:`to_float` up to rounding: ``round((x + 1) * 127.5)`` clamped to 0..255.
    Every metric and figure turns generated images into uint8 through this one function.

    Raises:
        ValueError: if ``images`` is not a floating-point tensor.
    """
    if not images.is_floating_point():
        raise ValueError(f"to_uint8 expects float images in [-1, 1], got dtype {images.dtype}")
    return images.detach().float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
