"""CelebA (Liu, Luo, Wang & Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015): 202,599 aligned
celebrity faces, 178x218 RGB JPEG, each with 40 binary attributes.

Read from its original folder layout (``img_align_celeba/``, ``list_attr_celeba.txt``,
``list_eval_partition.txt``), center cropped to 140x140, resized to 64x64 RGB and labelled by one binary
attribute: label sets ``celeba`` (= ``celeba-Smiling``, classes ``not_smiling``, ``smiling``) and
``celeba-<Attribute>``. Splits are the official partition (0 train, 1 val, 2 test). See :func:`load_celeba`.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from exprbench.core.errors import DataError
from exprbench.core.io import file_sha256
from exprbench.data.cache import cache_dir, cached
from exprbench.data.container import FaceDataset
from exprbench.data.datasets import Dataset, Reader, register_dataset, register_reader

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
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
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


def _read_attr_row(afile: Path, i: int, parts: list[str], names: list[str], seen: dict[str, int]) -> list[int]:
    """Check line ``i`` of the attribute file (columns, file name, listed once, values) and return its values."""
    k = len(names)
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
    return [1 if v == "1" else -1 for v in vals]


def _read_splits(pfile: Path, files: list[str], at: list[int]) -> np.ndarray:
    """Read the partition file and return the partition (0/1/2) of each listed image, in list order."""
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
    return np.asarray(splits, dtype=np.int8)


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
    seen: dict[str, int] = {}  # image file name -> its line, in file order
    rows = [_read_attr_row(afile, i, parts, names, seen)
            for i, parts in enumerate(map(str.split, lines[2:]), start=3) if parts]  # blank lines skipped
    files, at = list(seen), list(seen.values())
    if declared != len(files):
        raise DataError(f"{afile}:1: says {declared} images but {len(files)} are listed")
    if not files:
        raise DataError(f"{afile}: no images listed")
    return _CelebALists(names, files, at, np.asarray(rows, dtype=np.int8), _read_splits(pfile, files, at))


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
    def build() -> dict:
        lists = _read_celeba_lists(root)
        _attribute_index(lists.names, attribute, root / CELEBA_ATTR_FILE)  # fail before decoding
        images, digests = _decode_celeba(root, lists, crop, size, workers)
        return {
            "version": CELEBA_CACHE_VERSION,
            "images": torch.from_numpy(images),
            "attrs": torch.from_numpy(lists.attrs),
            "attr_names": list(lists.names),
            "splits": torch.from_numpy(lists.splits),
            "files": list(lists.files),
            "fingerprint": _celeba_fingerprint(root, lists, digests, crop, size),
        }

    return cached(_celeba_cache_file(root, crop, size), CELEBA_CACHE_VERSION, build, use_cache)


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


def _load(path: Path, label_set: str, use_cache: bool) -> FaceDataset:
    return load_celeba(path, celeba_attribute(label_set), use_cache=use_cache)


def _misplaced(path: Path) -> str | None:
    if path.is_dir() and path.name == CELEBA_IMAGE_DIR and is_celeba_dir(path.parent):
        return f"{path}: pass the CelebA folder above it ({path.parent}), which holds {CELEBA_ATTR_FILE}"
    return None


register_dataset(Dataset(
    name="celeba", title="CelebA", owns=lambda label_set: celeba_attribute(label_set) is not None,
    default_label_set="celeba", resolve=_resolve_celeba_path, load=_load,
    requires=lambda path, label_set: (f"label set {label_set!r} needs a CelebA folder (with {CELEBA_ATTR_FILE}), "
                                      f"got {path} ({CELEBA_HINT})"),
    wrong_label_set=lambda path, label_set: (
        f"{path} is a CelebA folder: use the label set 'celeba' or 'celeba-<Attribute>' "
        f"(e.g. --set data.label_set=celeba), not {label_set!r}"),
    misplaced=_misplaced,
))
register_reader(Reader("celeba", "folder", detect=is_celeba_dir, priority=10))
