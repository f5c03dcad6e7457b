"""FER2013 reader: a zip of the image folders, or a zip holding one ``fer2013.csv``."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterator

from exprbench.core.errors import DataError
from exprbench.data import fer2013 as F
from exprbench.data.fer2013_csv import _parse_csv
from exprbench.data.datasets import Reader, register_reader

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
        imgs = [n for n in names if PurePosixPath(n).suffix.lower() in F._IMAGE_SUFFIXES]
        if imgs:
            for n in sorted(imgs):
                F._check_size(infos[n].file_size, F.MAX_IMAGE_BYTES, f"{path}:{n}", "image")

            def entries() -> Iterator[tuple[PurePosixPath, bytes]]:
                for n in sorted(imgs):
                    rel = F._strip_root(PurePosixPath(n))
                    if rel is None:
                        raise DataError(f"{path}:{n}: not under a train/ or test/ folder")
                    try:
                        raw = zf.read(n)
                    except _ZIP_ERRORS as e:
                        raise _zip_entry_error(path, n, e) from None
                    yield rel, raw
            return F._decode_folder_entries(entries(), str(path))
        if len(csvs) == 1:
            F._check_size(infos[csvs[0]].file_size, F.MAX_CSV_BYTES, f"{path}:{csvs[0]}", "CSV")
            try:
                with zf.open(csvs[0]) as fh:
                    return _parse_csv(io.TextIOWrapper(fh, encoding="utf-8", newline=""), f"{path}:{csvs[0]}")
            except _ZIP_ERRORS as e:
                raise _zip_entry_error(path, csvs[0], e) from None
        raise DataError(f"{path}: zip holds neither FER2013 image folders nor one fer2013.csv")



def _is_zip(path: Path) -> bool:
    return path.is_file() and zipfile.is_zipfile(path)


register_reader(Reader("fer2013", "zip", detect=_is_zip, priority=20, decode=_read_zip))
