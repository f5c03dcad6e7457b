"""exprbench.data's registry: a third dataset is one module that registers itself; load_dataset walks it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from exprbench import data as D
from exprbench.data import datasets as R
from exprbench.data.cache import cached
from exprbench.core.errors import DataError

from ..conftest import write_csv, write_folder, write_zip


def test_builtin_readers_in_priority_order():
    assert [r.name for r in D.READERS] == ["celeba-folder", "fer2013-zip", "fer2013-csv", "fer2013-folder"]
    assert R.default_dataset().name == "fer2013"
    assert R.dataset_of("fer6").name == "fer2013" and R.dataset_of("celeba-Eyeglasses").name == "celeba"
    assert R.dataset_of("nonsense").name == "fer2013"  # nobody owns it: the default dataset reports it


@pytest.mark.parametrize("form, write", [("csv", write_csv), ("zip", write_zip), ("folder", write_folder)])
def test_every_fer2013_form_has_its_reader(tmp_path, form, write):
    p = write(tmp_path / ("fer2013" + {"csv": ".csv", "zip": ".zip", "folder": ""}[form]))
    assert D.find_reader(p).name == f"fer2013-{form}" and D.detect_format(p) == form


@pytest.fixture
def toy_dataset(monkeypatch):
    """A throw-away third dataset ("toy": a folder with toy.npz, 2 classes, 3 x 8 x 8) registered at run time."""
    datasets, readers = dict(R.DATASETS), list(R.READERS)
    monkeypatch.setattr(R, "DATASETS", datasets)
    monkeypatch.setattr(R, "READERS", readers)

    def load(path: Path, label_set: str, use_cache: bool) -> D.FaceDataset:
        if label_set != "toy2":
            raise DataError(f"unknown label set {label_set!r} (known: toy2)")

        def build() -> dict:
            z = np.load(path / "toy.npz")
            return {"version": 1, "images": torch.from_numpy(z["images"]), "labels": torch.from_numpy(z["labels"]),
                    "splits": torch.from_numpy(z["splits"])}

        raw = cached(D.cache_dir() / "data" / "toy-test.pt", 1, build, use_cache)
        return D.FaceDataset(raw["images"], raw["labels"], raw["splits"], ("a", "b"), "toy2", "f" * 64, str(path))

    D.register_dataset(D.Dataset(
        name="toy", title="Toy", owns=lambda s: s == "toy2", default_label_set="toy2",
        resolve=lambda p: Path(p), load=load,
        wrong_label_set=lambda p, s: f"{p} is a Toy folder: use the label set 'toy2', not {s!r}"))
    D.register_reader(D.Reader("toy", "folder", detect=lambda p: (p / "toy.npz").is_file(), priority=15))


def _toy(root: Path) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    np.savez(root / "toy.npz", images=rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8),
             labels=np.array([0, 1, 0, 1, 0, 1]), splits=np.array([0, 0, 1, 1, 2, 2], dtype=np.int8))
    return root


def test_a_third_dataset_is_one_registration(toy_dataset, tmp_path):
    root = _toy(tmp_path / "toy")
    ds = D.load_dataset(root)  # no label set: the reader that recognises the folder, its default label set
    assert ds.label_set == "toy2" and tuple(ds.images.shape) == (6, 3, 8, 8) and ds.spec.num_classes == 2
    assert len(D.load_dataset(root, "toy2").split("val")) == 2
    assert (D.cache_dir() / "data" / "toy-test.pt").exists()  # through the one cache helper
    with pytest.raises(DataError, match="is a Toy folder: use the label set 'toy2', not 'fer7'"):
        D.load_dataset(root, "fer7")
    assert len(D.load_dataset(write_csv(tmp_path / "fer2013.csv"))) == 42  # the others are unchanged


def test_what_a_reader_returns_is_checked(toy_dataset, tmp_path, monkeypatch):
    root = _toy(tmp_path / "toy")
    z = dict(np.load(root / "toy.npz"))
    np.savez(root / "toy.npz", **{**z, "labels": np.array([0, 1, 0, 1, 0, 2])})
    with pytest.raises(DataError, match=r"toy \(Toy reader\) labels: label 2 outside 0..1"):
        D.load_dataset(root, use_cache=False)
    np.savez(root / "toy.npz", **{**z, "images": z["images"].astype(np.float32)})
    with pytest.raises(DataError, match="expected dtype uint8"):
        D.load_dataset(root, use_cache=False)


def test_registration_is_validated(toy_dataset):
    with pytest.raises(ValueError, match="registered twice"):
        D.register_dataset(R.DATASETS["toy"])
    with pytest.raises(ValueError, match="register the dataset 'nope' first"):
        D.register_reader(D.Reader("nope", "zip", detect=lambda p: False))
    with pytest.raises(ValueError, match="already a default dataset"):
        D.register_dataset(D.Dataset(name="other", title="Other", owns=lambda s: False, default_label_set="x",
                                     resolve=Path, load=lambda *a: None, default=True))


def test_cache_helper_rebuilds_other_versions_and_damage(tmp_path):
    cfile = tmp_path / "data" / "x.pt"
    calls = []

    def build(v=1):
        calls.append(v)
        return {"version": v, "x": torch.arange(3)}

    assert cached(cfile, 1, build)["x"].tolist() == [0, 1, 2] and calls == [1]
    cached(cfile, 1, lambda: pytest.fail("rebuilt a good entry"))
    cached(cfile, 2, lambda: build(2))  # another version: rebuilt
    assert calls == [1, 2]
    cfile.write_bytes(b"garbage")
    cached(cfile, 2, lambda: build(2))
    assert calls == [1, 2, 2]
    cached(tmp_path / "nocache.pt", 1, build, use_cache=False)
    assert not (tmp_path / "nocache.pt").exists()
