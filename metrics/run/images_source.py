"""Generated images from any source, read for scoring: a folder of images or an ``.npz`` / ``.npy`` array.

Conventions follow torch-fidelity's ``fidelity --input1 DIR`` and clean-fid's ``compute_fid(fdir1, ...)``:

* a **folder**: every ``*.png``, ``*.jpg``, ``*.jpeg``, ``*.bmp``, ``*.webp`` directly inside it, in
  sorted file-name order (zero-pad numbered names so that order is the intended one); or, with no
  image at the top, one subfolder per emotion (``angry/``, ``happy/``, ... as torchvision's
  ImageFolder; read in class order), which also gives the labels;
* an **.npz**: array ``images`` (or ``arr_0``, numpy's name for an unnamed array, e.g. guided-diffusion's
  sample files), uint8 N x H x W, N x C x H x W or N x H x W x C (C = 1 or 3), optionally ``labels``
  (or ``arr_1``); an **.npy** holds the images array alone.

Images must be 48 x 48 (FER2013's size; nothing is ever resized) and 8-bit. Gray is kept; RGB with
equal channels (what ``torchvision.utils.save_image`` writes for gray images) becomes gray losslessly;
other RGB becomes the rounded channel mean, exactly as the FER evaluator reads RGB input.

Labels (a ``--labels`` file, the npz's ``labels``, or the subfolder names): one per image, class
indices in the label set's order (fer7: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise,
6 neutral) or emotion names (case-insensitive). Files: ``.npy`` (1-D ints or strings), ``.txt`` (one
per line), ``.csv`` (one column, with or without a header; or a header with ``file`` and ``label``
columns, matched to the folder's file names); parsed by :mod:`.image_labels`.

Sizes are checked before anything is decoded or allocated (a PNG's size from its header, an array's shape
and dtype from its ``.npy`` header, inside an ``.npz`` too): at most :data:`MAX_IMAGES` images, none larger
than :data:`MAX_SIDE` on a side, and an array's header must fit the bytes the file holds.

Every problem raises :class:`ImageSourceError` (a UserError: exit code 2) naming the file and the value.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from exprbench.metrics.run.array_headers import MAX_IMAGES, MAX_SIDE, SIZE, ImageSourceError, _normalize_array, check_array_file
from exprbench.metrics.run.image_labels import labels_from_array, labels_from_csv, parse_label

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp")


@dataclass
class ImageSet:
    """Images read from a source, ready for the metrics.

    Attributes:
        images: uint8 N x 1 x 48 x 48 (0..255).
        labels: int64 N class indices into the label set, or None.
        info: provenance for ``source.json``: path, format, count, color handling, content sha256.
        labels_info: provenance of the labels (path, format, count, per-class counts), or None.
        files: the image files in order (folders only).
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    info: dict
    labels_info: dict | None = None
    files: list[Path] = field(default_factory=list)


def _sha(t: torch.Tensor | np.ndarray) -> str:
    a = t.numpy() if torch.is_tensor(t) else t
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.shape}|{a.dtype}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _to_gray(arr: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """uint8 N x C x H x W (C in 1, 3) -> N x 1 x H x W and how the color was handled."""
    if arr.shape[1] == 1:
        return arr, "gray"
    if np.array_equal(arr[:, 0], arr[:, 1]) and np.array_equal(arr[:, 0], arr[:, 2]):
        return arr[:, :1], "rgb with equal channels, read as gray (lossless)"
    gray = np.round(arr.astype(np.float32).mean(axis=1, keepdims=True)).astype(np.uint8)
    return gray, "rgb converted to gray: rounded channel mean (as the FER evaluator reads RGB)"


def _read_image(path: Path) -> np.ndarray:
    """One image file -> uint8 C x H x W (C = 1 or 3)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # a huge image: an error here, never a warning (and never decoded)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            w, h = im.size  # from the header: nothing is decoded yet
            if max(w, h) > MAX_SIDE:
                raise ImageSourceError(f"{path}: the image is {w}x{h} (width x height); at most {MAX_SIDE}x{MAX_SIDE} "
                                       f"is read (and the FER2013 metrics take {SIZE[0]}x{SIZE[1]})")
            if (h, w) != SIZE:
                raise ImageSourceError(f"{path}: the image is {w}x{h} (width x height); the FER2013 "
                                       f"metrics take {SIZE[0]}x{SIZE[1]} images (exprbench never resizes)")
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                raise ImageSourceError(f"{path}: a {mode} (16-bit or float) image; expected 8-bit gray or RGB")
            if mode == "L":
                arr = np.asarray(im)[None]
            elif mode in ("LA", "1"):
                arr = np.asarray(im.convert("L"))[None]
            elif mode == "P":
                conv = im.convert("RGB")
                arr = np.asarray(conv).transpose(2, 0, 1)
            else:
                arr = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageSourceError(f"{path}: {str(e).splitlines()[0]} (at most {MAX_SIDE}x{MAX_SIDE} is read)") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageSourceError(f"{path}: not a readable image ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return arr


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _read_folder(files: Sequence[Path], folder: Path, progress) -> np.ndarray:
    if len(files) > MAX_IMAGES:
        raise ImageSourceError(f"--images {folder}: {len(files):,} image files; at most {MAX_IMAGES:,} are read "
                               "from one source")
    out = []
    with progress(f"reading {len(files):,} images from {folder}", len(files)) as advance:
        for f in files:
            out.append(_read_image(f))
            advance(1)
    if len({a.shape[0] for a in out}) > 1:  # gray and RGB files mixed: read all as RGB
        out = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in out]
    return np.stack(out)


def _null_progress(desc: str, total: int):
    import contextlib

    return contextlib.nullcontext(lambda n=1: None)


def load_labels(path: str | Path, n: int, class_names: Sequence[str], files: Sequence[Path] = (),
                images_where: str = "the images") -> tuple[torch.Tensor, dict]:
    """Read a labels file (.npy, .txt, .csv; see the module docstring) for ``n`` images.

    Args:
        path: the labels file.
        n: the number of images (the labels must match it).
        class_names: the label set (fer7 names in order).
        files: the image files in order (a folder source), for a CSV with a ``file`` column.
        images_where: the images' path, for messages.

    Returns:
        ``(labels int64 N, info)`` with info ``{"path", "format", "n", "sha256"}``.

    Raises:
        ImageSourceError: missing or unreadable file, unknown format, a bad label (file:line named), or
            a label count that differs from the image count.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ImageSourceError(f"--labels {p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            check_array_file(p, labels_key="")
            try:
                arr = np.load(p, allow_pickle=False)
            except ValueError as e:
                raise ImageSourceError(f"{p}: not a plain .npy array ({str(e).splitlines()[0]})") from None
            labels = labels_from_array(arr, class_names, str(p))
        elif suffix == ".txt":
            lines = p.read_text().splitlines()
            while lines and not lines[-1].strip():
                lines.pop()
            labels = [parse_label(t, class_names, f"{p}:{i + 1}") for i, t in enumerate(lines)]
        elif suffix == ".csv":
            labels = labels_from_csv(p, class_names, files)
        else:
            raise ImageSourceError(f"--labels {p}: unknown labels format {suffix or '(none)'!r} (use .npy, .txt or .csv)")
    except UnicodeDecodeError:
        raise ImageSourceError(f"{p}: not a text file") from None
    if len(labels) != n:
        raise ImageSourceError(f"{p}: {len(labels):,} labels for {n:,} images in {images_where}")
    t = torch.tensor(labels, dtype=torch.int64)
    return t, {"path": str(p.resolve()), "format": suffix[1:], "n": len(labels), "sha256": _sha(t)}


def _per_class(labels: torch.Tensor, class_names: Sequence[str]) -> dict[str, int]:
    counts = torch.bincount(labels, minlength=len(class_names)).tolist()
    return {name: int(c) for name, c in zip(class_names, counts)}


@dataclass
class _Source:
    """What a source holds before color handling: its images array, format, files (folders) and own labels."""

    arr: np.ndarray
    fmt: str
    files: list[Path] = field(default_factory=list)
    labels: list[int] | None = None
    labels_fmt: str | None = None


def _class_folder_files(p: Path, class_names: Sequence[str]) -> tuple[list[Path], list[int]]:
    """The image files of a folder's emotion subfolders (in class order) and the label of each.

    Raises:
        ImageSourceError: no emotion subfolder, a subfolder of images that is not an emotion, no image in them.
    """
    subs = sorted(d for d in p.iterdir() if d.is_dir())
    low = [n.lower() for n in class_names]
    classed = sorted((d for d in subs if d.name.lower() in low), key=lambda d: low.index(d.name.lower()))
    if not classed:
        raise ImageSourceError(f"--images {p}: no images ({', '.join('*' + e for e in IMAGE_EXTENSIONS)}) "
                               f"in the folder, nor subfolders named by emotion ({', '.join(class_names)})")
    stray = [d.name for d in subs if d not in classed and _image_files(d)]
    if stray:
        raise ImageSourceError(f"{p / stray[0]}: a subfolder that is not an emotion "
                               f"(known: {', '.join(class_names)})")
    files: list[Path] = []
    labels: list[int] = []
    for d in classed:
        fs = _image_files(d)
        files += fs
        labels += [low.index(d.name.lower())] * len(fs)
    if not files:
        raise ImageSourceError(f"--images {p}: the emotion subfolders hold no images")
    return files, labels


def _read_folder_source(p: Path, class_names: Sequence[str], progress) -> _Source:
    """A folder: the images directly inside it, else those of its emotion subfolders with their labels."""
    files = _image_files(p)
    if files:
        return _Source(_read_folder(files, p, progress), "image-folder", files)
    files, labels = _class_folder_files(p, class_names)
    return _Source(_read_folder(files, p, progress), "class-folders", files, labels, "subfolder names")


def _read_npz(data, p: Path, class_names: Sequence[str], labels: str | Path | None) -> _Source:
    """An opened .npz: its ``images`` (or ``arr_0``) array and, without a labels file, its ``labels`` (or ``arr_1``)."""
    with data:
        keys = list(data.files)
        key = "images" if "images" in keys else "arr_0" if "arr_0" in keys else None
        if key is None:
            raise ImageSourceError(f"{p}: no 'images' array (holds: {', '.join(keys) or 'nothing'})")
        try:
            src = _Source(data[key], "npz")
            lkey = "labels" if "labels" in keys else "arr_1" if key == "arr_0" and "arr_1" in keys else None
            if lkey is not None and labels is None:
                src.labels = labels_from_array(data[lkey], class_names, f"{p}['{lkey}']")
                src.labels_fmt = f"npz key {lkey!r}"
        except ValueError as e:
            raise ImageSourceError(f"{p}: holds pickled objects ({str(e).splitlines()[0]}); expected plain arrays") from None
    return src


def _read_array_source(p: Path, class_names: Sequence[str], labels: str | Path | None) -> _Source:
    """An .npz / .npy file, its sizes checked from the headers before numpy allocates anything."""
    fmt = p.suffix.lower()[1:]
    check_array_file(p)
    try:
        data = np.load(p, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise ImageSourceError(f"{p}: not a readable {fmt} array file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    src = _Source(data, fmt) if fmt == "npy" else _read_npz(data, p, class_names, labels)
    src.arr = _normalize_array(src.arr, str(p))
    return src


def _images_info(p: Path, fmt: str, images: torch.Tensor, color: str, files: Sequence[Path]) -> dict:
    """The provenance of the images for ``source.json``, with the count of lossy-compressed files if any."""
    info = {"path": str(p.resolve()), "format": fmt, "n": int(images.shape[0]), "shape": list(images.shape[1:]),
            "color": color, "sha256": _sha(images)}
    lossy = sum(f.suffix.lower() in LOSSY_EXTENSIONS for f in files)
    if lossy:  # as torch-fidelity warns: "some are lossy-compressed - this may affect metrics"
        info["lossy_files"] = lossy
    return info


def _set_labels(p: Path, src: _Source, n: int, class_names: Sequence[str],
                labels: str | Path | None) -> tuple[torch.Tensor | None, dict | None]:
    """The labels of the set and their provenance: a labels file, else the source's own, else none."""
    lab_t, linfo = None, None
    if labels is not None:
        if src.labels is not None and src.fmt == "class-folders":
            raise ImageSourceError(f"--labels {labels}: the images already take their labels from the emotion "
                                   f"subfolders of {p}; give one or the other")
        lab_t, linfo = load_labels(labels, n, class_names, src.files, str(p))
    elif src.labels is not None:
        if len(src.labels) != n:
            raise ImageSourceError(f"{p}: {len(src.labels):,} labels for {n:,} images")
        lab_t = torch.tensor(src.labels, dtype=torch.int64)
        linfo = {"path": str(p.resolve()), "format": src.labels_fmt, "n": n, "sha256": _sha(lab_t)}
    if linfo is not None:
        linfo["per_class"] = _per_class(lab_t, class_names)
    return lab_t, linfo


def load_image_set(path: str | Path, class_names: Sequence[str], labels: str | Path | None = None,
                   progress: Callable | None = None) -> ImageSet:
    """Read images (and labels) from a folder, an ``.npz`` or an ``.npy`` (see the module docstring).

    Args:
        path: the folder or array file.
        class_names: the label set the labels index (fer7 names).
        labels: a labels file, overriding labels the source carries; None: the source's own, if any.
        progress: ``progress(desc, total)`` -> context manager yielding ``advance(n)`` (reading a folder).

    Returns:
        An :class:`ImageSet` (uint8 N x 1 x 48 x 48 images, labels or None, provenance).

    Raises:
        ImageSourceError: missing path, no images, a file of another size/mode/dtype/shape, bad labels.
    """
    progress = progress or _null_progress
    p = Path(path).expanduser()
    if not p.exists():
        raise ImageSourceError(f"--images {p}: no such file or folder")
    if p.is_dir():
        src = _read_folder_source(p, class_names, progress)
    elif p.suffix.lower() in (".npz", ".npy"):
        src = _read_array_source(p, class_names, labels)
    else:
        raise ImageSourceError(f"--images {p}: expected a folder of images, an .npz or an .npy file")
    arr, color = _to_gray(src.arr, str(p))
    images = torch.from_numpy(np.ascontiguousarray(arr))
    info = _images_info(p, src.fmt, images, color, src.files)
    lab_t, linfo = _set_labels(p, src, int(images.shape[0]), class_names, labels)
    return ImageSet(images, lab_t, info, linfo, src.files)
