"""Data layer: FER2013 (main) and CelebA (second dataset): read, cache the decoded tensors, select splits and labels.

:func:`load_dataset` is the one entry point of the harness and CLI: a folder holding
``list_attr_celeba.txt`` is CelebA (:func:`load_celeba`), anything else FER2013 (:func:`load_fer2013`).

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

CelebA (Liu et al., "Deep Learning Face Attributes in the Wild", ICCV 2015) is read from its original
folder layout (``img_align_celeba/``, ``list_attr_celeba.txt``, ``list_eval_partition.txt``), center
cropped to 140x140, resized to 64x64 RGB and labelled by one binary attribute: label sets ``celeba``
(= ``celeba-Smiling``, classes ``not_smiling``, ``smiling``) and ``celeba-<Attribute>``. Splits are the
official partition (0 train, 1 val, 2 test). See :func:`load_celeba`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import DataError, UserError
from .io import atomic_open, check_writable_dir, file_sha256

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
# Largest file an image / the CSV may be (checked before reading or inflating it: a 48x48 face is a few
# KiB; fer2013.csv is 287 MiB). Anything larger is not FER2013 and would only exhaust memory.
MAX_IMAGE_BYTES = 16 * 2**20
MAX_CSV_BYTES = 1 * 2**30
DOWNLOAD_HINT = (
    "download FER2013 from https://www.kaggle.com/datasets/msambare/fer2013 (image folders) or "
    "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge "
    "(fer2013.csv)"
)


@dataclass(frozen=True)
class DataSpec:
    """What a model plugin needs to know about its data: image shape and classes.

    Attributes:
        channels, height, width: image shape (FER2013: 1 x 48 x 48; CelebA: 3 x 64 x 64).
        class_names: one name per label index, e.g. ``("angry", ..., "neutral")``, ``("not_smiling", "smiling")``.
        label_set: name of the label set (``fer7``, ``fer6``, ``celeba-<Attribute>``).
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
        images: uint8 tensor N x C x H x W, values 0..255 (FER2013: C=1, H=W=48; CelebA: C=3, H=W=64).
        labels: int64 tensor N, indices into ``class_names``.
        splits: int8 tensor N, 0 train / 1 val / 2 test.
        class_names: names of the label indices.
        label_set: ``fer7``, ``fer6`` or ``celeba-<Attribute>``.
        fingerprint: sha256 (hex) of the source file's content (or of a folder's files; CelebA: of
            its lists, images and preprocessing), so caches derived from this data can be keyed by it.
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
        """Move the tensors to ``device`` (the whole FER2013 is 83 MB as uint8, CelebA at 64x64 2.5 GB)."""
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


def _check_size(size: int, limit: int, where: str, what: str) -> None:
    if size > limit:
        raise DataError(f"{where}: {size:,} bytes, more than the {limit:,} a FER2013 {what} can have")


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError)


def _zip_entry_error(path: Path, name: str, e: BaseException) -> DataError:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return DataError(f"{path}:{name}: corrupt zip entry ({msg})")


def _read_zip(path: Path):
    """Decode a FER2013 zip (image folders or one CSV). Every entry's uncompressed size (``ZipInfo.file_size``,
    which also bounds what ``zipfile`` inflates) is checked before anything is read; a corrupt entry
    (bad CRC, broken deflate stream) is reported by name."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable zip ({e})") from None
    with zf:
        infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
        names = list(infos)
        csvs = [n for n in names if n.lower().endswith(".csv")]
        imgs = [n for n in names if PurePosixPath(n).suffix.lower() in _IMAGE_SUFFIXES]
        if imgs:
            for n in sorted(imgs):
                _check_size(infos[n].file_size, MAX_IMAGE_BYTES, f"{path}:{n}", "image")

            def entries() -> Iterator[tuple[PurePosixPath, bytes]]:
                for n in sorted(imgs):
                    rel = _strip_root(PurePosixPath(n))
                    if rel is None:
                        raise DataError(f"{path}:{n}: not under a train/ or test/ folder")
                    try:
                        raw = zf.read(n)
                    except _ZIP_ERRORS as e:
                        raise _zip_entry_error(path, n, e) from None
                    yield rel, raw
            return _decode_folder_entries(entries(), str(path))
        if len(csvs) == 1:
            _check_size(infos[csvs[0]].file_size, MAX_CSV_BYTES, f"{path}:{csvs[0]}", "CSV")
            try:
                with zf.open(csvs[0]) as fh:
                    return _parse_csv(io.TextIOWrapper(fh, encoding="utf-8", newline=""), f"{path}:{csvs[0]}")
            except _ZIP_ERRORS as e:
                raise _zip_entry_error(path, csvs[0], e) from None
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

    for f in files:
        _check_size(f.stat().st_size, MAX_IMAGE_BYTES, str(f), "image")

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


def check_cache_writable(folder: Path) -> None:
    """Check, before a long decode, that a cache entry can be written into ``folder``.

    Raises:
        DataError: the folder cannot be created or written (the message names it and the way out).
    """
    what = "$EXPRBENCH_CACHE" if os.environ.get("EXPRBENCH_CACHE") else "the cache (~/.cache/exprbench)"
    try:
        check_writable_dir(folder, what=f"{what} folder")
    except UserError as e:
        raise DataError(f"{e}; set EXPRBENCH_CACHE to a writable folder") from None


def _drop_cache_entry(cfile: Path) -> None:
    try:
        cfile.unlink(missing_ok=True)
    except OSError:  # a read-only shared cache: the damaged entry is just not used
        pass


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
            _drop_cache_entry(cfile)
    if use_cache:
        check_cache_writable(cfile.parent)
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
        if celeba_attribute(label_set) is not None:
            raise DataError(f"label set {label_set!r} is a CelebA one: this works on FER2013 only "
                            f"(known: {', '.join(LABEL_SETS)}); the FER2013 metrics and evaluator do not apply to CelebA")
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


# --------------------------------------------------------------------------------------------
# CelebA
#
# CelebA (Liu, Luo, Wang & Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015): 202,599
# aligned celebrity faces, 178x218 RGB JPEG, each with 40 binary attributes. The loader reads the
# original layout (see :func:`load_celeba`) and conditions on one binary attribute.

CELEBA_ATTR_FILE = "list_attr_celeba.txt"
CELEBA_PARTITION_FILE = "list_eval_partition.txt"
CELEBA_IMAGE_DIR = "img_align_celeba"
CELEBA_IMAGE_WH = (178, 218)  # width x height of every aligned CelebA image
CELEBA_DEFAULT_ATTRIBUTE = "Smiling"
CELEBA_CROP = 140  # side of the center crop (pixels of the 178x218 image), see load_celeba
CELEBA_SIZE = 64  # side of the images after resizing
CELEBA_CACHE_VERSION = 1
CELEBA_HINT = (
    "download CelebA (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, 'Align&Cropped Images'), unzip "
    f"img_align_celeba.zip and put {CELEBA_ATTR_FILE} and {CELEBA_PARTITION_FILE} beside the "
    f"{CELEBA_IMAGE_DIR}/ folder; pass that folder as --data"
)


def celeba_attribute(label_set: str | None) -> str | None:
    """The attribute a CelebA label set conditions on, or None when ``label_set`` is not a CelebA one.

    ``celeba`` -> ``Smiling`` (the default attribute); ``celeba-<Attribute>`` -> ``<Attribute>``,
    spelled as in ``list_attr_celeba.txt`` (e.g. ``celeba-Eyeglasses``, ``celeba-Mouth_Slightly_Open``).
    """
    if label_set is None:
        return None
    if label_set == "celeba":
        return CELEBA_DEFAULT_ATTRIBUTE
    if label_set.startswith("celeba-"):
        return label_set[len("celeba-"):]
    return None


def celeba_class_names(attribute: str) -> tuple[str, str]:
    """Class names of a binary attribute: index 0 absent (-1), index 1 present (1).

    ``Smiling`` -> ``("not_smiling", "smiling")``.
    """
    return (f"not_{attribute.lower()}", attribute.lower())


def is_celeba_dir(path: Path) -> bool:
    """True when ``path`` is a folder holding ``list_attr_celeba.txt`` (the CelebA layout)."""
    return path.is_dir() and (path / CELEBA_ATTR_FILE).is_file()


def _resolve_celeba_path(path: str | os.PathLike | None) -> Path:
    """``path``, else ``$EXPRBENCH_DATA``, else a ``data/celeba*`` folder in the repo or cwd."""
    if path is None:
        path = os.environ.get("EXPRBENCH_DATA") or None
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise DataError(f"dataset not found: {p} ({CELEBA_HINT})")
        return p
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        for cand in sorted((root / "data").glob("celeba*")):
            if is_celeba_dir(cand):
                return cand
    raise DataError(f"no CelebA folder given: pass --data PATH or set EXPRBENCH_DATA ({CELEBA_HINT})")


@dataclass
class _CelebALists:
    names: list[str]  # attribute names, file order
    files: list[str]  # image file names, attribute-file order
    lines: list[int]  # line of each image in the attribute file (1-based)
    attrs: np.ndarray  # int8 N x A, 1 / -1
    splits: np.ndarray  # int8 N, 0 / 1 / 2


def _text_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: file missing ({CELEBA_HINT})")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text file ({e})") from None


def _check_file_name(name: str, where: str) -> None:
    if "/" in name or "\\" in name or name in (".", ".."):
        raise DataError(f"{where}: {name!r} is not a plain image file name")


def _read_celeba_lists(root: Path) -> _CelebALists:
    """Parse and cross-check the attribute and partition files (no image is read)."""
    afile, pfile = root / CELEBA_ATTR_FILE, root / CELEBA_PARTITION_FILE
    lines = _text_lines(afile)
    if len(lines) < 2:
        raise DataError(f"{afile}:{len(lines) + 1}: file ends early (expected the image count, then the attribute names)")
    try:
        declared = int(lines[0].strip())
    except ValueError:
        raise DataError(f"{afile}:1: expected the image count, got {lines[0].strip()[:40]!r}") from None
    names = lines[1].split()
    if not names:
        raise DataError(f"{afile}:2: no attribute names")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{afile}:2: attribute {dup[0]!r} named twice")
    k = len(names)
    files: list[str] = []
    at: list[int] = []
    rows: list[list[int]] = []
    seen: dict[str, int] = {}
    for i, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != k + 1:
            raise DataError(f"{afile}:{i}: {len(parts)} columns, expected {k + 1} (file name and {k} values)")
        name = parts[0]
        _check_file_name(name, f"{afile}:{i}")
        if name in seen:
            raise DataError(f"{afile}:{i}: {name} is listed twice (first on line {seen[name]})")
        seen[name] = i
        vals = parts[1:]
        for j, v in enumerate(vals):
            if v not in ("1", "-1"):
                raise DataError(f"{afile}:{i}: value {v!r} of {names[j]} (column {j + 2}) is not 1 or -1")
        files.append(name)
        at.append(i)
        rows.append([1 if v == "1" else -1 for v in vals])
    if declared != len(files):
        raise DataError(f"{afile}:1: says {declared} images but {len(files)} are listed")
    if not files:
        raise DataError(f"{afile}: no images listed")

    part: dict[str, int] = {}
    for i, line in enumerate(_text_lines(pfile), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{pfile}:{i}: {len(parts)} columns, expected 2 (file name and partition 0/1/2)")
        name, v = parts
        if v not in ("0", "1", "2"):
            raise DataError(f"{pfile}:{i}: partition {v!r} of {name} is not 0 (train), 1 (val) or 2 (test)")
        if name in part:
            raise DataError(f"{pfile}:{i}: {name} is listed twice")
        part[name] = int(v)
    splits = []
    for name, i in zip(files, at):
        if name not in part:
            raise DataError(f"{pfile}: {name} ({CELEBA_ATTR_FILE}:{i}) is missing from the partition list")
        splits.append(part[name])
    return _CelebALists(names, files, at, np.asarray(rows, dtype=np.int8), np.asarray(splits, dtype=np.int8))


def _attribute_index(names: list[str] | tuple[str, ...], attribute: str, where: Path) -> int:
    if attribute not in names:
        close = [n for n in names if n.lower() == attribute.lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"{where}:2: unknown attribute {attribute!r}{hint} (known: {', '.join(names)})")
    return list(names).index(attribute)


def _center_box(w: int, h: int, crop: int) -> tuple[int, int, int, int]:
    """torchvision's CenterCrop offsets: ``round((w - crop) / 2)``, ``round((h - crop) / 2)``."""
    left, top = int(round((w - crop) / 2.0)), int(round((h - crop) / 2.0))
    return left, top, left + crop, top + crop


def _decode_celeba_image(raw: bytes, where: str, crop: int, size: int) -> np.ndarray:
    """JPEG bytes -> uint8 3 x size x size: RGB, center crop ``crop`` x ``crop``, bicubic resize."""
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            if im.size != CELEBA_IMAGE_WH:
                raise DataError(f"{where}: image is {im.size[0]}x{im.size[1]}, expected "
                                f"{CELEBA_IMAGE_WH[0]}x{CELEBA_IMAGE_WH[1]} (aligned CelebA)")
            out = im.convert("RGB").crop(_center_box(*im.size, crop))
            if out.size != (size, size):
                out = out.resize((size, size), Image.Resampling.BICUBIC)
            arr = np.asarray(out, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{where}: cannot decode image ({e})") from None
    return arr.transpose(2, 0, 1)


def _decode_workers(workers: int | None) -> int:
    if workers is not None:
        return max(1, int(workers))
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        n = min(n, int(omp))
    return max(1, min(8, n))


def _decode_celeba(root: Path, lists: _CelebALists, crop: int, size: int, workers: int | None):
    """Decode every listed image (threads; PIL releases the GIL) and hash its bytes, in list order."""
    from concurrent.futures import ThreadPoolExecutor

    idir = root / CELEBA_IMAGE_DIR
    if not idir.is_dir():
        raise DataError(f"{idir}: folder missing ({CELEBA_HINT})")
    present = {e.name for e in os.scandir(idir)}
    for name, line in zip(lists.files, lists.lines):
        if name not in present:
            raise DataError(f"{idir / name}: listed in {CELEBA_ATTR_FILE}:{line} but missing")
    n = len(lists.files)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    digests: list[str] = [""] * n

    def work(i: int) -> None:
        f = idir / lists.files[i]
        raw = f.read_bytes()
        digests[i] = hashlib.sha256(raw).hexdigest()
        images[i] = _decode_celeba_image(raw, str(f), crop, size)

    nw = _decode_workers(workers)
    if nw == 1 or n < 64:
        for i in range(n):
            work(i)
    else:
        ex = ThreadPoolExecutor(nw)
        try:
            for _ in ex.map(work, range(n)):
                pass
        except BaseException:
            ex.shutdown(wait=True, cancel_futures=True)
            raise
        ex.shutdown(wait=True)
    return images, digests


def _celeba_fingerprint(root: Path, lists: _CelebALists, digests: list[str], crop: int, size: int) -> str:
    h = hashlib.sha256(f"celeba v{CELEBA_CACHE_VERSION} crop={crop} size={size}\n".encode())
    for name in (CELEBA_ATTR_FILE, CELEBA_PARTITION_FILE):
        h.update(f"{name}\0{file_sha256(root / name)}\n".encode())
    for name, d in zip(lists.files, digests):
        h.update(f"{CELEBA_IMAGE_DIR}/{name}\0{d}\n".encode())
    return h.hexdigest()


def _celeba_cache_file(root: Path, crop: int, size: int) -> Path:
    """Keyed by the folder, the crop, the size, and (name, size, mtime) of the two lists and of every
    entry of ``img_align_celeba/`` (any change there re-decodes)."""
    stats = []
    for name in (CELEBA_ATTR_FILE, CELEBA_PARTITION_FILE):
        p = root / name
        if p.exists():
            st = p.stat()
            stats.append((name, st.st_size, st.st_mtime_ns))
    idir = root / CELEBA_IMAGE_DIR
    if idir.is_dir():
        for e in sorted(os.scandir(idir), key=lambda e: e.name):
            st = e.stat()
            stats.append((f"{CELEBA_IMAGE_DIR}/{e.name}", st.st_size, st.st_mtime_ns))
    key = hashlib.sha256(
        repr((CELEBA_CACHE_VERSION, str(root.resolve()), int(crop), int(size), stats)).encode()
    ).hexdigest()[:20]
    return cache_dir() / "data" / f"celeba-{key}.pt"


def _load_celeba_raw(root: Path, attribute: str, crop: int, size: int, use_cache: bool,
                     workers: int | None) -> dict:
    cfile = _celeba_cache_file(root, crop, size)
    if use_cache and cfile.exists():
        try:
            raw = torch.load(cfile, map_location="cpu", weights_only=True)
            if raw.get("version") == CELEBA_CACHE_VERSION:
                return raw
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            pass
        _drop_cache_entry(cfile)
    if use_cache:
        check_cache_writable(cfile.parent)
    lists = _read_celeba_lists(root)
    _attribute_index(lists.names, attribute, root / CELEBA_ATTR_FILE)  # fail before decoding
    images, digests = _decode_celeba(root, lists, crop, size, workers)
    raw = {
        "version": CELEBA_CACHE_VERSION,
        "images": torch.from_numpy(images),
        "attrs": torch.from_numpy(lists.attrs),
        "attr_names": list(lists.names),
        "splits": torch.from_numpy(lists.splits),
        "files": list(lists.files),
        "fingerprint": _celeba_fingerprint(root, lists, digests, crop, size),
    }
    if use_cache:
        atomic_torch_save(raw, cfile)
    return raw


def load_celeba(
    path: str | os.PathLike | None = None,
    attribute: str = CELEBA_DEFAULT_ATTRIBUTE,
    size: int = CELEBA_SIZE,
    crop: int = CELEBA_CROP,
    use_cache: bool = True,
    workers: int | None = None,
) -> FaceDataset:
    """Load CelebA (Liu et al., ICCV 2015) from a folder in its original layout, labelled by one attribute.

    The folder holds::

        img_align_celeba/<NNNNNN>.jpg   aligned faces, 178x218 RGB JPEG
        list_attr_celeba.txt            line 1: image count; line 2: the attribute names (40);
                                        then "<file> v1 ... v40", each value 1 or -1
        list_eval_partition.txt         "<file> <p>", p = 0 train, 1 val, 2 test

    Every image of the attribute file is loaded (images on disk that it does not list are ignored;
    so are partition entries of unlisted images). Preprocessing: RGB, the center ``crop`` x ``crop``
    square (default 140: the tight face crop of the 64x64 CelebA protocol of e.g. Tolstikhin et al.
    2018 (WAE) and Dai & Wipf 2019; ``crop=178`` is the full-width square that torchvision's
    ``Resize(64)`` + ``CenterCrop(64)`` gives), offsets as torchvision's ``CenterCrop``, then a bicubic
    (antialiased, PIL) resize to ``size`` x ``size``. The tighter crop keeps the face, and with it the
    expression, at most of the resolution, like FER2013's face crops.

    Labels: 1 where ``attribute`` is 1, else 0; class names ``(f"not_{a}", a)`` with ``a`` the
    attribute in lower case (``("not_smiling", "smiling")``); the label set is ``celeba-<Attribute>``.

    Decoding happens once (threads: at most 8, and at most ``$OMP_NUM_THREADS`` when set); the cache
    entry (``$EXPRBENCH_CACHE/data/celeba-<key>.pt``) holds the images and all 40 attribute columns,
    so any attribute is then served from it. Its key covers the folder path, ``crop``, ``size``, and the
    name, size and mtime of both list files and of every entry of ``img_align_celeba/``. The full
    dataset is 2.5 GB as uint8 at 64x64 (10 GB at 128x128).

    Args:
        path: the CelebA folder; ``None``: ``$EXPRBENCH_DATA``, else ``data/celeba*`` in the repo or cwd.
        attribute: the conditioning attribute, spelled as in ``list_attr_celeba.txt``.
        size: output side in pixels.
        crop: side of the center crop, 1..178.
        use_cache: read and write the decoded cache.
        workers: decoding threads (default: see above).

    Returns:
        A :class:`FaceDataset` on the CPU: images uint8 N x 3 x size x size in 0..255, labels int64 N
        in {0, 1}, splits int8 N in {0, 1, 2}; ``fingerprint`` is the sha256 of the two list files, the
        listed images' bytes, ``crop`` and ``size`` (not the attribute: that is in the label set).

    Raises:
        DataError: a one-line message naming the file (and line): missing folder or file, bad image count on
        line 1, duplicate or unknown attribute name (lists the known ones), wrong column count,
        a value other than 1/-1, a partition other than 0/1/2, an image missing from the partition
        list or from ``img_align_celeba/``, an image that is not a 178x218 picture; bad ``crop``/``size``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(f"CelebA image size must be a positive integer, got {size!r}")
    if isinstance(crop, bool) or not isinstance(crop, int) or not 1 <= crop <= min(CELEBA_IMAGE_WH):
        raise DataError(f"CelebA crop must be an integer in 1..{min(CELEBA_IMAGE_WH)}, got {crop!r}")
    root = _resolve_celeba_path(path)
    if not is_celeba_dir(root):
        raise DataError(f"{root}: not a CelebA folder (no {CELEBA_ATTR_FILE}; {CELEBA_HINT})")
    raw = _load_celeba_raw(root, attribute, crop, size, use_cache, workers)
    j = _attribute_index(raw["attr_names"], attribute, root / CELEBA_ATTR_FILE)
    labels = (raw["attrs"][:, j] == 1).to(torch.int64)
    return FaceDataset(raw["images"], labels, raw["splits"], celeba_class_names(attribute),
                       f"celeba-{attribute}", raw["fingerprint"], str(root))


# --------------------------------------------------------------------------------------------
# one entry point


def load_dataset(
    path: str | os.PathLike | None = None, label_set: str | None = None, use_cache: bool = True
) -> FaceDataset:
    """Load FER2013 or CelebA, whichever ``path`` is, with ``label_set``: the loader of the harness and CLI.

    A folder holding ``list_attr_celeba.txt`` is CelebA (:func:`load_celeba`, label sets ``celeba``
    = ``celeba-Smiling``, or ``celeba-<Attribute>``); anything else is FER2013 (:func:`load_fer2013`,
    ``fer7`` / ``fer6``). ``label_set=None`` picks ``fer7`` for FER2013 and ``celeba`` for CelebA.

    Returns:
        A :class:`FaceDataset` (FER2013: uint8 N x 1 x 48 x 48; CelebA: uint8 N x 3 x 64 x 64). A CelebA
        dataset's ``label_set`` is always the full ``celeba-<Attribute>`` name.

    Raises:
        DataError: what the loader raises; a CelebA label set for FER2013 data or the reverse.
    """
    attribute = celeba_attribute(label_set)
    if attribute is not None:
        root = _resolve_celeba_path(path)
        if not is_celeba_dir(root):
            raise DataError(f"label set {label_set!r} needs a CelebA folder (with {CELEBA_ATTR_FILE}), "
                            f"got {root} ({CELEBA_HINT})")
        return load_celeba(root, attribute, use_cache=use_cache)
    p = resolve_data_path(path)
    if is_celeba_dir(p):
        if label_set is None:
            return load_celeba(p, use_cache=use_cache)
        raise DataError(f"{p} is a CelebA folder: use the label set 'celeba' or 'celeba-<Attribute>' "
                        f"(e.g. --set data.label_set=celeba), not {label_set!r}")
    if p.is_dir() and p.name == CELEBA_IMAGE_DIR and is_celeba_dir(p.parent):
        raise DataError(f"{p}: pass the CelebA folder above it ({p.parent}), which holds {CELEBA_ATTR_FILE}")
    return load_fer2013(p, label_set or "fer7", use_cache=use_cache)


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
