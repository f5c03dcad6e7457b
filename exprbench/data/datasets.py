"""The dataset and format registry, and :func:`load_dataset`, the one entry point of the harness and CLI.

A dataset (FER2013, CelebA) registers a :class:`Dataset` (its label sets, where its data is looked for,
how it loads); each on-disk form of it registers a :class:`Reader` (how to recognise that form, and
how to decode it). :func:`load_dataset` walks the readers in priority order, so adding a dataset or a
format is one new module under ``exprbench/data/`` that calls :func:`register_dataset` /
:func:`register_reader` on import (and one import line in ``exprbench/data/__init__.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from exprbench.core.errors import DataError
from exprbench.core.validate import check_labels, check_uint8_images
from exprbench.data.container import FaceDataset


@dataclass(frozen=True)
class Dataset:
    """A dataset: its label sets, how its path is found, and how it loads.

    Attributes:
        name: short name (``fer2013``, ``celeba``), also the ``dataset`` of its readers.
        title: the name people read (``FER2013``, ``CelebA``).
        owns: ``owns(label_set) -> bool``: the label set names of this dataset.
        default_label_set: the label set of ``load_dataset(path)`` without one.
        resolve: ``resolve(path or None) -> Path``: the given path (checked to exist), else the
            dataset's default place; raises DataError with the download hint.
        load: ``load(path, label_set, use_cache) -> FaceDataset``.
        requires: ``requires(path, label_set) -> message or None``: why ``path`` (not recognised by
            this dataset's readers) cannot serve one of its label sets; None lets the load report.
        wrong_label_set: ``wrong_label_set(path, label_set) -> message``: ``path`` is this dataset but
            the label set is another's.
        misplaced: ``misplaced(path) -> message or None``: ``path`` is a part of this dataset's layout
            (e.g. its image folder) given instead of its root.
        default: the dataset of label sets nobody owns (it reports them unknown).
    """

    name: str
    title: str
    owns: Callable[[str], bool]
    default_label_set: str
    resolve: Callable[[Any], Path]
    load: Callable[[Path, str, bool], FaceDataset]
    requires: Callable[[Path, str], str | None] = lambda path, label_set: None
    wrong_label_set: Callable[[Path, str], str] = lambda path, label_set: f"{path}: label set {label_set!r} does not apply"
    misplaced: Callable[[Path], str | None] = lambda path: None
    default: bool = False


@dataclass(frozen=True)
class Reader:
    """One on-disk form of a dataset.

    Attributes:
        dataset: the :class:`Dataset` name it reads.
        format: the form's name (``zip``, ``csv``, ``folder``); the reader is ``<dataset>-<format>``.
        detect: ``detect(path) -> bool`` for an existing path; cheap (no decoding).
        priority: readers are tried in increasing priority (a catch-all form such as "any folder"
            goes last).
        decode: the dataset's decoder of this form (its signature is the dataset's business).
    """

    dataset: str
    format: str
    detect: Callable[[Path], bool]
    priority: int = 50
    decode: Callable[..., Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.format}"


DATASETS: dict[str, Dataset] = {}
READERS: list[Reader] = []


def register_dataset(ds: Dataset) -> Dataset:
    """Add a dataset.

    Raises:
        ValueError: a name registered twice, a second default dataset, a non-callable hook.
    """
    if ds.name in DATASETS:
        raise ValueError(f"dataset {ds.name!r} is registered twice")
    if ds.default and any(d.default for d in DATASETS.values()):
        raise ValueError(f"dataset {ds.name!r}: there is already a default dataset")
    for hook in ("owns", "resolve", "load", "requires", "wrong_label_set", "misplaced"):
        if not callable(getattr(ds, hook)):
            raise ValueError(f"dataset {ds.name!r}: {hook} is not callable")
    DATASETS[ds.name] = ds
    return ds


def register_reader(reader: Reader) -> Reader:
    """Add a reader of a registered dataset, kept in priority order.

    Raises:
        ValueError: unknown dataset, a reader name registered twice, ``detect`` not callable.
    """
    if reader.dataset not in DATASETS:
        raise ValueError(f"reader {reader.name!r}: register the dataset {reader.dataset!r} first")
    if any(r.name == reader.name for r in READERS):
        raise ValueError(f"reader {reader.name!r} is registered twice")
    if not callable(reader.detect):
        raise ValueError(f"reader {reader.name!r}: detect is not callable")
    READERS.append(reader)
    READERS.sort(key=lambda r: r.priority)
    return reader


def find_reader(path: Path, dataset: str | None = None) -> Reader | None:
    """The first reader (by priority) that recognises the existing ``path``, of ``dataset`` if given."""
    for r in READERS:
        if (dataset is None or r.dataset == dataset) and r.detect(path):
            return r
    return None


def default_dataset() -> Dataset:
    """The dataset of label sets that no dataset owns (FER2013)."""
    return next(d for d in DATASETS.values() if d.default)


def dataset_of(label_set: str | None) -> Dataset:
    """The dataset owning ``label_set``; the default dataset for None or a label set nobody owns."""
    if label_set is not None:
        for d in DATASETS.values():
            if d.owns(label_set):
                return d
    return default_dataset()


def load_dataset(
    path: str | os.PathLike | None = None, label_set: str | None = None, use_cache: bool = True
) -> FaceDataset:
    """Load whichever registered dataset ``path`` is, with ``label_set``: the loader of the harness and CLI.

    ``label_set`` names the dataset (``fer7``/``fer6``: FER2013; ``celeba`` = ``celeba-Smiling`` or
    ``celeba-<Attribute>``: CelebA); ``None`` takes the dataset that ``path`` is, with its default
    label set (``fer7`` for FER2013, ``celeba`` for CelebA).

    Returns:
        A :class:`FaceDataset` (FER2013: uint8 N x 1 x 48 x 48; CelebA: uint8 N x 3 x 64 x 64). A CelebA
        dataset's ``label_set`` is always the full ``celeba-<Attribute>`` name.

    Raises:
        DataError: what the loader raises; a label set of one dataset for the data of another; a reader
            that returned something other than uint8 N x C x H x W images with N labels in 0..K-1.
    """
    if label_set is None:
        home = default_dataset()
        p = home.resolve(path)
    else:
        home = dataset_of(label_set)
        p = home.resolve(path)
        found = find_reader(p) if p.exists() else None
        if found is None or found.dataset != home.name:
            why = home.requires(p, label_set)
            if why:
                raise DataError(why)
            if found is not None:
                raise DataError(DATASETS[found.dataset].wrong_label_set(p, label_set))
    for d in DATASETS.values():
        why = d.misplaced(p)
        if why:
            raise DataError(why)
    if label_set is None:
        found = find_reader(p) if p.exists() else None
        home = DATASETS[found.dataset] if found is not None else home
        label_set = home.default_label_set
    return _checked(home.load(p, label_set, use_cache), home)


def _checked(ds: FaceDataset, home: Dataset) -> FaceDataset:
    """What every reader must return: uint8 N x C x H x W images, N labels in 0..K-1, N split ids."""
    where = f"{ds.source} ({home.title} reader)"
    check_uint8_images(ds.images, where, channels=None, error=DataError, allow_empty=True)
    check_labels(ds.labels, ds.images.shape[0], len(ds.class_names), f"{where} labels", error=DataError)
    if ds.splits.shape != ds.labels.shape:
        raise DataError(f"{where}: {tuple(ds.splits.shape)} split ids for {ds.labels.shape[0]} images")
    return ds
