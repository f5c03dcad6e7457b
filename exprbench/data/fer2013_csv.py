"""FER2013 reader: ``fer2013.csv`` (columns ``emotion,pixels,Usage``; one row per face, 2304 pixel values)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from exprbench.core.errors import DataError
from exprbench.data import fer2013 as F
from exprbench.data.datasets import Reader, register_reader


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
    n_px = F.SIZE * F.SIZE
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
            if not 0 <= label < len(F.FER7):
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
            if usage not in F._USAGE_TO_SPLIT:
                raise DataError(f"{where}:{line}: Usage {usage!r} is not Training, PublicTest or PrivateTest")
            images.append(px.astype(np.uint8).reshape(F.SIZE, F.SIZE))
            labels.append(label)
            splits.append(F._USAGE_TO_SPLIT[usage])
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"{where}:{reader.line_num}: malformed CSV ({e})") from None
    if not images:
        raise DataError(f"{where}: no data rows")
    return np.stack(images), np.asarray(labels), np.asarray(splits)



def _is_csv(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(4096)
    return path.suffix.lower() == ".csv" or b"emotion" in head.split(b"\n", 1)[0].lower()


register_reader(Reader("fer2013", "csv", detect=_is_csv, priority=30, decode=_read_csv))
