"""Data layer: read a dataset, cache the decoded tensors, select splits and labels.

:func:`load_dataset` is the one entry point of the harness and CLI: it walks the registered readers
(:mod:`.registry`) and loads whichever dataset the path is. The package holds

* :mod:`.container`: :class:`FaceDataset` (uint8 N x C x H x W images, labels, splits) and :class:`DataSpec`;
* :mod:`.pixels`: :func:`to_float` / :func:`to_uint8`, the one conversion between stored and model pixels;
* :mod:`.cache`: the decoded-data cache (``$EXPRBENCH_CACHE/data/``), one code path for every dataset;
* :mod:`.registry`: datasets, their readers, and :func:`load_dataset`;
* FER2013 (:mod:`.fer2013`; readers :mod:`.fer2013_csv`, :mod:`.fer2013_folder`, :mod:`.fer2013_zip`)
  and CelebA (:mod:`.celeba`).

A new dataset or on-disk format is one module here that registers itself (``register_dataset`` /
``register_reader``) and one import line below.
"""

from __future__ import annotations

from exprbench.data.cache import atomic_torch_save, cache_dir, check_cache_writable
from exprbench.data.container import SPLITS, DataSpec, FaceDataset
from exprbench.data.pixels import to_float, to_uint8
from exprbench.data.datasets import DATASETS, READERS, Dataset, Reader, find_reader, load_dataset, register_dataset, register_reader

# datasets and their readers register on import (readers are tried by priority, not import order)
from exprbench.data.fer2013 import (  # noqa: E402
    CACHE_VERSION, DOWNLOAD_HINT, FER7, LABEL_SETS, MAX_CSV_BYTES, MAX_IMAGE_BYTES, SIZE, content_fingerprint,
    detect_format, load_fer2013, resolve_data_path,
)
from exprbench.data import fer2013_csv, fer2013_folder, fer2013_zip  # noqa: E402,F401
from exprbench.data.celeba import (  # noqa: E402
    CELEBA_ATTR_FILE, CELEBA_CACHE_VERSION, CELEBA_CROP, CELEBA_DEFAULT_ATTRIBUTE, CELEBA_HINT, CELEBA_IMAGE_DIR,
    CELEBA_IMAGE_WH, CELEBA_PARTITION_FILE, CELEBA_SIZE, celeba_attribute, celeba_class_names, is_celeba_dir,
    load_celeba,
)

__all__ = [
    "SPLITS", "DataSpec", "FaceDataset", "to_float", "to_uint8",
    "atomic_torch_save", "cache_dir", "check_cache_writable",
    "DATASETS", "READERS", "Dataset", "Reader", "find_reader", "load_dataset", "register_dataset", "register_reader",
    "CACHE_VERSION", "DOWNLOAD_HINT", "FER7", "LABEL_SETS", "MAX_CSV_BYTES", "MAX_IMAGE_BYTES", "SIZE",
    "content_fingerprint", "detect_format", "load_fer2013", "resolve_data_path",
    "CELEBA_ATTR_FILE", "CELEBA_CACHE_VERSION", "CELEBA_CROP", "CELEBA_DEFAULT_ATTRIBUTE", "CELEBA_HINT",
    "CELEBA_IMAGE_DIR", "CELEBA_IMAGE_WH", "CELEBA_PARTITION_FILE", "CELEBA_SIZE", "celeba_attribute",
    "celeba_class_names", "is_celeba_dir", "load_celeba",
]
