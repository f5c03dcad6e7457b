"""Real reference caches are keyed by the decoded content (pixels, labels, splits), not by the data file."""

from __future__ import annotations

import zipfile

import torch

from exprbench.data import load_fer2013
from exprbench.metrics.families.fidelity_inputs import reference_cache_name
from exprbench.metrics.testing import write_fer_csv

from ..conftest import write_zip


def _name(ds) -> str:
    return reference_cache_name(ds.content_sha256(), "train", ds.label_set, "fer-evaluator", "b" * 64, 42)


def test_same_pixels_in_other_containers_share_the_key(tmp_path):
    z = load_fer2013(write_zip(tmp_path / "fer.zip", per_class=2), use_cache=False)
    c = load_fer2013(write_fer_csv(z, tmp_path / "fer2013.csv"), use_cache=False)
    rezipped = tmp_path / "again.zip"  # the same entries, re-compressed into another zip file
    with zipfile.ZipFile(tmp_path / "fer.zip") as src, zipfile.ZipFile(rezipped, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    r = load_fer2013(rezipped, use_cache=False)
    assert len({z.fingerprint, c.fingerprint, r.fingerprint}) == 3  # three different files ...
    assert z.content_sha256() == c.content_sha256() == r.content_sha256()  # ... with the same content
    assert _name(z) == _name(c) == _name(r)


def test_one_changed_pixel_changes_the_key(tmp_path):
    z = load_fer2013(write_zip(tmp_path / "fer.zip", per_class=2), use_cache=False)
    images = z.images.clone()
    images[5, 0, 10, 10] ^= 1
    changed = load_fer2013(write_fer_csv(type(z)(images, z.labels, z.splits, z.class_names, z.label_set,
                                                 z.fingerprint, z.source), tmp_path / "changed.csv"), use_cache=False)
    assert changed.content_sha256() != z.content_sha256()
    assert _name(changed) != _name(z)


def test_labels_and_splits_are_part_of_the_content(tmp_path):
    z = load_fer2013(write_zip(tmp_path / "fer.zip", per_class=2), use_cache=False)
    other = type(z)(z.images, z.labels, torch.zeros_like(z.splits), z.class_names, z.label_set, z.fingerprint,
                    z.source)
    assert other.content_sha256() != z.content_sha256()


def test_content_hash_is_computed_once_per_object(tmp_path, monkeypatch):
    import hashlib

    z = load_fer2013(write_zip(tmp_path / "fer.zip", per_class=2), use_cache=False)
    first = z.content_sha256()
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    assert z.content_sha256() == first and not calls
