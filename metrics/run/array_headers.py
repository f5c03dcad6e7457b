"""Checks of image and label arrays read from their headers, before anything is decoded or allocated (the
``.npy`` / ``.npz`` sources of ``exprbench evaluate --images``, :mod:`.images_source`): dtype, layout, at
most :data:`MAX_IMAGES` images of at most :data:`MAX_SIDE` pixels a side, sizes the file can hold."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from exprbench.core.errors import UserError

SIZE = (48, 48)
MAX_IMAGES = 200_000  # images read from one source (FER2013 itself has 35,887)
MAX_SIDE = 1024  # pixels on a side of one image, read from its header before decoding
MAX_LABEL_BYTES = 256  # one label of a labels array (an index or an emotion name)


class ImageSourceError(UserError):
    """Images or labels that cannot be scored: the message names the file and the value."""


def _check_images_header(shape: tuple, dtype: np.dtype, where: str) -> bool:
    """Check an images array by its shape and dtype alone (before it is read): uint8, a known layout, at
    most :data:`MAX_IMAGES` images of at most :data:`MAX_SIDE` on a side, 48 x 48. Returns whether the
    layout is N x H x W x C (channels last).

    Raises:
        ImageSourceError: names ``where`` and the value.
    """
    if dtype != np.uint8:
        hint = " (float images: quantize them to 0..255 first)" if np.issubdtype(dtype, np.floating) else ""
        raise ImageSourceError(f"{where}: images have dtype {dtype}; expected uint8 (0..255){hint}")
    shape = tuple(int(d) for d in shape)
    if len(shape) not in (3, 4):
        raise ImageSourceError(f"{where}: images have shape {shape}; expected N x H x W, N x C x H x W "
                               "or N x H x W x C")
    last = len(shape) == 4 and shape[1] not in (1, 3) and shape[-1] in (1, 3)  # N x H x W x C
    if len(shape) == 4 and not last and shape[1] not in (1, 3):
        raise ImageSourceError(f"{where}: images have shape {shape}; expected N x C x H x W or "
                               "N x H x W x C with C = 1 (gray) or 3 (RGB)")
    if shape[0] == 0:
        raise ImageSourceError(f"{where}: no images (the array is empty)")
    if shape[0] > MAX_IMAGES:
        raise ImageSourceError(f"{where}: holds {shape[0]:,} images; at most {MAX_IMAGES:,} are read from one source")
    h, w = shape[1:3] if last else shape[-2:]
    if max(h, w) > MAX_SIDE:
        raise ImageSourceError(f"{where}: images are {h}x{w}; at most {MAX_SIDE}x{MAX_SIDE} are read "
                               f"(and the FER2013 metrics take {SIZE[0]}x{SIZE[1]})")
    if (h, w) != SIZE:
        raise ImageSourceError(
            f"{where}: images are {h}x{w}; the FER2013 metrics take {SIZE[0]}x{SIZE[1]} "
            "images (exprbench never resizes: resize them yourself if that is what you mean)")
    return last


def _normalize_array(arr: np.ndarray, where: str) -> np.ndarray:
    """An images array of any accepted layout -> uint8 N x C x H x W (checked as :func:`_check_images_header`)."""
    last = _check_images_header(arr.shape, arr.dtype, where)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif last:
        arr = np.transpose(arr, (0, 3, 1, 2))
    return np.ascontiguousarray(arr)


def _npy_header(fh, where: str) -> tuple[tuple, np.dtype, int]:
    """``(shape, dtype, data bytes)`` from the header of the ``.npy`` stream ``fh`` (nothing else is read).

    Raises:
        ImageSourceError: not an .npy header (names ``where``).
    """
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy format version {version[0]}.{version[1]}")
        read = npf.read_array_header_1_0 if version == (1, 0) else npf.read_array_header_2_0
        shape, _, dtype = read(fh)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise ImageSourceError(f"{where}: not a readable .npy array ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if dtype.hasobject:
        raise ImageSourceError(f"{where}: holds pickled objects; expected plain arrays")
    return tuple(shape), dtype, int(np.prod(shape, dtype=np.float64)) * dtype.itemsize


def _check_labels_header(shape: tuple, dtype: np.dtype, where: str) -> None:
    if len(shape) != 1 or shape[0] > MAX_IMAGES or dtype.itemsize > MAX_LABEL_BYTES:
        raise ImageSourceError(f"{where}: labels of shape {shape}, dtype {dtype}; expected one label per image "
                               f"(1-D, at most {MAX_IMAGES:,}, each at most {MAX_LABEL_BYTES} bytes)")


def check_array_file(p: Path, labels_key: str | None = None) -> None:
    """Check the headers of an ``.npy`` (images, or labels when ``labels_key`` is ``""``) or of an ``.npz``'s
    members (``images``/``arr_0``, and ``labels``/``arr_1``) before numpy reads them: sizes and dtype bounded
    (see :func:`_check_images_header`), and no header claiming more bytes than the file holds.

    Raises:
        ImageSourceError: names the file (and the member) and the limit.
    """
    if p.suffix.lower() == ".npy":
        with open(p, "rb") as fh:
            shape, dtype, nbytes = _npy_header(fh, str(p))
            have = p.stat().st_size - fh.tell()
        members = [(str(p), shape, dtype, nbytes, have, labels_key == "")]
    else:
        members = []
        try:
            with zipfile.ZipFile(p) as zf:
                for info in zf.infolist():
                    key = info.filename[:-4] if info.filename.endswith(".npy") else None
                    if key in ("images", "arr_0", "labels", "arr_1"):
                        where = f"{p}['{key}']" if key in ("labels", "arr_1") else str(p)  # as the messages after loading
                        with zf.open(info) as fh:
                            shape, dtype, nbytes = _npy_header(fh, where)
                            have = info.file_size - fh.tell()
                        members.append((where, shape, dtype, nbytes, have, key in ("labels", "arr_1")))
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ImageSourceError(f"{p}: not a readable npz array file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    for where, shape, dtype, nbytes, have, is_labels in members:
        (_check_labels_header if is_labels else _check_images_header)(shape, dtype, where)
        if nbytes > have:
            raise ImageSourceError(f"{where}: its header claims {nbytes:,} bytes of data ({shape}, {dtype}) but "
                                   f"the file holds {max(have, 0):,}: truncated or not an .npy array")
