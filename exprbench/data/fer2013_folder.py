"""FER2013 reader: the image-folder download (``train/<emotion>/Training_<id>.jpg``, ``test/<emotion>/...``),
or a folder holding one ``fer2013.csv``."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Iterator

from exprbench.core.errors import DataError
from exprbench.data import fer2013 as F
from exprbench.data.fer2013_csv import _read_csv
from exprbench.data.datasets import Reader, register_reader


def _read_folder(path: Path):
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in F._IMAGE_SUFFIXES
    )
    if not files:
        csvs = sorted(path.glob("*.csv"))
        if len(csvs) == 1:
            return _read_csv(csvs[0])
        raise DataError(f"{path}: no FER2013 images (train/<emotion>/*.jpg) nor fer2013.csv found")

    for f in files:
        F._check_size(f.stat().st_size, F.MAX_IMAGE_BYTES, str(f), "image")

    def entries() -> Iterator[tuple[PurePosixPath, bytes]]:
        for f in files:
            rel = F._strip_root(PurePosixPath(f.relative_to(path).as_posix()))
            if rel is None:
                raise DataError(f"{f}: not under a train/ or test/ folder")
            yield rel, f.read_bytes()

    return F._decode_folder_entries(entries(), str(path))



# any folder: tried after the readers of more specific folder layouts (CelebA)
register_reader(Reader("fer2013", "folder", detect=Path.is_dir, priority=90, decode=_read_folder))
