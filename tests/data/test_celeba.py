"""exprbench.data, CelebA: the original folder layout, crop and resize, attribute labels, cache,
every kind of malformed file (one-line DataError naming file and line, CLI exit code 2), the
load_dataset dispatch, the real 548-image sample, and one training step of the GANs at 3 x 64 x 64."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from exprbench import data as D
from exprbench.data import celeba as C
from exprbench.cli import main
from exprbench.runs.config import resolve_config
from exprbench.data import DataSpec, load_celeba, load_dataset, load_fer2013
from exprbench.core.errors import DataError
from exprbench.runs.loader import build_model
from exprbench.models.base import Batch

from ..conftest import REPO, write_csv

ATTRS = ("Bald", "Eyeglasses", "Male", "Smiling", "Young")
# per image: (Smiling, Eyeglasses, partition)
ROWS = [(1, -1, 0), (-1, -1, 0), (1, 1, 0), (-1, 1, 0), (1, -1, 0), (-1, -1, 0),
        (1, -1, 1), (-1, 1, 1), (1, -1, 2), (-1, -1, 2)]
INNER, OUTER = (20, 60, 220), (230, 30, 30)  # colours inside / outside the 140x140 center crop
REAL_SAMPLE = REPO.parent / "shared" / "data" / "celeba-sample"


def _jpeg(i: int, size=(178, 218)) -> bytes:
    """An aligned-CelebA-sized JPEG: OUTER everywhere, INNER in the 140x140 center box, a gray square
    whose brightness encodes ``i`` in the middle (so images differ)."""
    w, h = size
    arr = np.empty((h, w, 3), np.uint8)
    arr[:] = OUTER
    arr[39:179, 19:159] = INNER
    arr[h // 2 - 8: h // 2 + 8, w // 2 - 8: w // 2 + 8] = 10 * i
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95, subsampling=0)  # 4:4:4: crisp colour edges
    return buf.getvalue()


def write_celeba(root: Path, rows=ROWS) -> Path:
    """A CelebA-format folder with ``len(rows)`` images named 000001.jpg ..."""
    (root / "img_align_celeba").mkdir(parents=True)
    attr = [str(len(rows)), " ".join(ATTRS) + " "]
    part = []
    for i, (smiling, glasses, p) in enumerate(rows, 1):
        name = f"{i:06d}.jpg"
        (root / "img_align_celeba" / name).write_bytes(_jpeg(i))
        vals = {"Bald": -1, "Eyeglasses": glasses, "Male": 1 if i % 2 else -1, "Smiling": smiling, "Young": 1}
        attr.append(name + " " + " ".join(f"{vals[a]:2d}" for a in ATTRS))
        part.append(f"{name} {p}")
    (root / "list_attr_celeba.txt").write_text("\n".join(attr) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(part) + "\n")
    return root


@pytest.fixture
def celeba(tmp_path) -> Path:
    return write_celeba(tmp_path / "celeba")


def _edit_line(path: Path, lineno: int, fn) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = fn(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# parsing, shapes, labels


def test_parse_shapes_labels_splits(celeba):
    ds = load_dataset(celeba, "celeba")
    assert ds.images.dtype == torch.uint8 and tuple(ds.images.shape) == (10, 3, 64, 64)
    assert ds.labels.dtype == torch.int64 and ds.splits.dtype == torch.int8
    assert ds.class_names == ("not_smiling", "smiling") and ds.label_set == "celeba-Smiling"
    assert ds.labels.tolist() == [int(s == 1) for s, _, _ in ROWS]
    assert ds.splits.tolist() == [p for _, _, p in ROWS]
    assert ds.counts() == {"train": {"not_smiling": 3, "smiling": 3}, "val": {"not_smiling": 1, "smiling": 1},
                           "test": {"not_smiling": 1, "smiling": 1}}
    assert ds.spec == DataSpec(3, 64, 64, ("not_smiling", "smiling"), "celeba-Smiling")
    assert len(ds.fingerprint) == 64 and ds.source == str(celeba)
    assert len(ds.split("val")) == 2
    # "celeba" and "celeba-Smiling" are the same data under one canonical name
    same = load_dataset(celeba, "celeba-Smiling")
    assert torch.equal(same.images, ds.images) and same.label_set == ds.label_set
    # no label set: a CelebA folder gets "celeba"
    assert load_dataset(celeba).label_set == "celeba-Smiling"


def test_center_crop_and_resize(celeba):
    ds = load_celeba(celeba)  # 140x140 center crop: only the INNER colour
    corners = ds.images[0, :, 1:5, 1:5].float().mean(dim=(1, 2))
    assert torch.allclose(corners, torch.tensor(INNER, dtype=torch.float), atol=8)
    wide = load_celeba(celeba, crop=178, size=32)  # full-width square: OUTER on the left and right
    assert tuple(wide.images.shape) == (10, 3, 32, 32)
    left = wide.images[0, :, 16, 0].float()
    assert torch.allclose(left, torch.tensor(OUTER, dtype=torch.float), atol=12)
    centre = wide.images[0, :, 16, 8].float()
    assert torch.allclose(centre, torch.tensor(INNER, dtype=torch.float), atol=12)
    assert wide.fingerprint != ds.fingerprint  # the preprocessing is part of the fingerprint
    # the brightness square in the middle tells the images apart, in file order
    mids = ds.images[:, 0, 30:34, 30:34].float().mean(dim=(1, 2))
    assert torch.all(mids[1:] > mids[:-1])


def test_attribute_choice(celeba):
    ds = load_dataset(celeba, "celeba-Eyeglasses")
    assert ds.class_names == ("not_eyeglasses", "eyeglasses") and ds.label_set == "celeba-Eyeglasses"
    assert ds.labels.tolist() == [int(g == 1) for _, g, _ in ROWS]
    male = load_celeba(celeba, "Male")
    assert male.labels.tolist() == [i % 2 for i in range(1, 11)]
    assert int(load_celeba(celeba, "Bald").labels.sum()) == 0


def test_bad_size_and_crop(celeba):
    with pytest.raises(DataError, match="crop must be an integer in 1..178"):
        load_celeba(celeba, crop=200)
    with pytest.raises(DataError, match="size must be a positive integer"):
        load_celeba(celeba, size=0)


# --------------------------------------------------------------------------------------------
# cache


def test_cache_reuse_and_invalidation(celeba, monkeypatch):
    a = load_celeba(celeba)
    files = list((D.cache_dir() / "data").glob("celeba-*.pt"))
    assert len(files) == 1

    def no_decode(*a, **k):
        raise AssertionError("decoded again")

    decode = C._decode_celeba
    monkeypatch.setattr(C, "_decode_celeba", no_decode)
    b = load_celeba(celeba)  # from the cache
    assert torch.equal(a.images, b.images) and a.fingerprint == b.fingerprint
    assert load_celeba(celeba, "Eyeglasses").labels.sum() == 3  # any attribute from the same entry
    with pytest.raises(AssertionError, match="decoded again"):
        load_celeba(celeba, size=32)  # another resolution: another key
    with pytest.raises(AssertionError, match="decoded again"):
        load_celeba(celeba, crop=178)  # another crop: another key
    attr = celeba / "list_attr_celeba.txt"
    _edit_line(attr, 3, lambda s: s.replace(" 1 ", "-1 ", 1))  # an edited list: another key
    with pytest.raises(AssertionError, match="decoded again"):
        load_celeba(celeba)
    monkeypatch.setattr(C, "_decode_celeba", decode)  # (not undo(): that would drop the isolated cache too)
    c = load_celeba(celeba)
    assert len(list((D.cache_dir() / "data").glob("celeba-*.pt"))) == 2 and len(c) == 10
    (celeba / "img_align_celeba" / "000002.jpg").write_bytes(_jpeg(7))  # a changed image
    d = load_celeba(celeba)
    assert d.fingerprint != c.fingerprint and torch.equal(d.images[1], d.images[6])


def test_damaged_cache_is_rebuilt(celeba):
    a = load_celeba(celeba)
    (cfile,) = (D.cache_dir() / "data").glob("celeba-*.pt")
    cfile.write_bytes(b"garbage")
    b = load_celeba(celeba)
    assert torch.equal(a.images, b.images)


def test_no_cache_writes_nothing(celeba):
    load_celeba(celeba, use_cache=False)
    assert not list((D.cache_dir() / "data").glob("celeba-*.pt"))


# --------------------------------------------------------------------------------------------
# malformed input: one line naming the file (and line), exit code 2 through the CLI

ATTR, PART, IMG = "list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba"


def _attr(root):
    return root / ATTR


def _part(root):
    return root / PART


BAD = {
    "count_mismatch": (lambda r: _edit_line(_attr(r), 1, lambda s: "11"),
                       "celeba", rf"{ATTR}:1: says 11 images but 10 are listed"),
    "count_not_integer": (lambda r: _edit_line(_attr(r), 1, lambda s: "many"),
                          "celeba", rf"{ATTR}:1: expected the image count, got 'many'"),
    "too_few_columns": (lambda r: _edit_line(_attr(r), 5, lambda s: s.rsplit(" ", 1)[0]),
                        "celeba", rf"{ATTR}:5: 5 columns, expected 6"),
    "too_many_columns": (lambda r: _edit_line(_attr(r), 12, lambda s: s + " 1"),
                         "celeba", rf"{ATTR}:12: 7 columns, expected 6"),
    "value_not_pm1": (lambda r: _edit_line(_attr(r), 4, lambda s: s[:-2] + " 0"),
                      "celeba", rf"{ATTR}:4: value '0' of Young \(column 6\) is not 1 or -1"),
    "duplicate_image": (lambda r: _edit_line(_attr(r), 6, lambda s: "000001.jpg" + s[10:]),
                        "celeba", rf"{ATTR}:6: 000001.jpg is listed twice \(first on line 3\)"),
    "duplicate_attribute": (lambda r: _edit_line(_attr(r), 2, lambda s: s.replace("Male", "Bald")),
                            "celeba", rf"{ATTR}:2: attribute 'Bald' named twice"),
    "unknown_attribute": (lambda r: None, "celeba-Smile",
                          rf"{ATTR}:2: unknown attribute 'Smile' \(known: Bald, Eyeglasses, Male, Smiling, Young\)"),
    "attribute_case": (lambda r: None, "celeba-smiling",
                       rf"{ATTR}:2: unknown attribute 'smiling' \(did you mean 'Smiling'\?\)"),
    "attr_file_empty": (lambda r: _attr(r).write_text("3\n"), "celeba", rf"{ATTR}:2: file ends early"),
    "image_missing": (lambda r: (r / IMG / "000003.jpg").unlink(),
                      "celeba", rf"{IMG}/000003.jpg: listed in {ATTR}:5 but missing"),
    "image_folder_missing": (lambda r: [p.unlink() for p in (r / IMG).iterdir()] and (r / IMG).rmdir(),
                             "celeba", rf"{IMG}: folder missing"),
    "image_wrong_size": (lambda r: (r / IMG / "000004.jpg").write_bytes(_jpeg(4, size=(178, 178))),
                         "celeba", rf"{IMG}/000004.jpg: image is 178x178, expected 178x218"),
    "image_not_an_image": (lambda r: (r / IMG / "000004.jpg").write_bytes(b"not a jpeg"),
                           "celeba", rf"{IMG}/000004.jpg: cannot decode image"),
    "partition_value": (lambda r: _edit_line(_part(r), 2, lambda s: s[:-1] + "3"),
                        "celeba", rf"{PART}:2: partition '3' of 000002.jpg is not 0 \(train\), 1 \(val\) or 2 \(test\)"),
    "partition_columns": (lambda r: _edit_line(_part(r), 3, lambda s: s + " x"),
                          "celeba", rf"{PART}:3: 3 columns, expected 2"),
    "partition_duplicate": (lambda r: _edit_line(_part(r), 4, lambda s: "000001.jpg 0"),
                            "celeba", rf"{PART}:4: 000001.jpg is listed twice"),
    "partition_lacks_image": (lambda r: _edit_line(_part(r), 4, lambda s: ""),
                              "celeba", rf"{PART}: 000004.jpg \({ATTR}:6\) is missing from the partition list"),
    "partition_file_missing": (lambda r: _part(r).unlink(), "celeba", rf"{PART}: file missing"),
    "fer_label_set": (lambda r: None, "fer7", r"is a CelebA folder: use the label set 'celeba'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_files(case, celeba):
    edit, label_set, message = BAD[case]
    edit(celeba)
    with pytest.raises(DataError, match=message) as e:
        load_dataset(celeba, label_set)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_files_exit_2_through_cli(case, celeba, capsys):
    edit, label_set, message = BAD[case]
    edit(celeba)
    code = main(["data", "info", "--data", str(celeba), "--label-set", label_set])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(message, lines[0]), lines[0]


def test_label_set_and_data_kind_must_agree(tmp_path, celeba):
    csv = write_csv(tmp_path / "fer2013.csv")
    with pytest.raises(DataError, match="label set 'celeba' needs a CelebA folder"):
        load_dataset(csv, "celeba")
    with pytest.raises(DataError, match="pass the CelebA folder above it"):
        load_dataset(celeba / IMG, "fer7")
    with pytest.raises(DataError, match="dataset not found: .*nope.*CelebA"):
        load_dataset(tmp_path / "nope", "celeba")
    # the FER2013-only loader (metrics, evaluator) refuses CelebA label sets clearly
    with pytest.raises(DataError, match="is a CelebA one: this works on FER2013 only"):
        load_fer2013(csv, "celeba-Smiling")


def test_fer2013_through_load_dataset_unchanged(tmp_path):
    csv = write_csv(tmp_path / "fer2013.csv")
    for ls in ("fer7", "fer6"):
        a, b = load_dataset(csv, ls), load_fer2013(csv, ls)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert a.class_names == b.class_names and a.fingerprint == b.fingerprint
    assert load_dataset(csv).label_set == "fer7"
    with pytest.raises(DataError, match="unknown label set 'fer5'"):
        load_dataset(csv, "fer5")


def test_cli_data_info(celeba, capsys):
    code = main(["data", "info", "--data", str(celeba)])
    out = capsys.readouterr().out
    assert code == 0 and "not_smiling" in out and "celeba-Smiling" in out and "(3, 64, 64)" in out
    code = main(["data", "info", "--data", str(celeba), "--label-set", "celeba-Eyeglasses"])
    out = capsys.readouterr().out
    assert code == 0 and "eyeglasses" in out


# --------------------------------------------------------------------------------------------
# the real sample


@pytest.mark.skipif(not REAL_SAMPLE.exists(), reason="../shared/data/celeba-sample not found")
def test_real_sample():
    ds = load_dataset(REAL_SAMPLE, "celeba")
    assert tuple(ds.images.shape) == (548, 3, 64, 64) and ds.images.dtype == torch.uint8
    assert int(ds.labels.sum()) == 246 and set(ds.splits.tolist()) == {0}
    assert len(ds.split("train")) == 548
    # real faces: not constant, use the whole range, RGB channels differ
    assert int(ds.images.min()) < 20 and int(ds.images.max()) > 235
    assert not torch.equal(ds.images[:, 0], ds.images[:, 2])
    names = C._read_celeba_lists(REAL_SAMPLE).names
    assert len(names) == 40 and names[31] == "Smiling"


# --------------------------------------------------------------------------------------------
# the models at 3 x 64 x 64

SPEC64 = DataSpec(3, 64, 64, ("not_smiling", "smiling"), "celeba-Smiling")


@pytest.mark.parametrize("name", ["gan", "cgan", "acgan"])
@pytest.mark.parametrize("config", ["default", "reference"])
def test_one_training_step_rgb64(name, config):
    cfg = resolve_config(name, config, ["model.ch=8"])
    torch.manual_seed(0)
    model = build_model(cfg, SPEC64, torch.device("cpu"))
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    logs = model.training_step(Batch(torch.rand(4, 3, 64, 64) * 2 - 1, torch.tensor([0, 1, 0, 1])), 0)
    assert logs and all(math.isfinite(v) for v in logs.values())
    after = model.nets.state_dict()
    for net in ("G", "D"):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(net + ".")), net
    x = model.sample(4, labels=torch.tensor([0, 1, 0, 1]), generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 64, 64) and float(x.min()) >= -1 and float(x.max()) <= 1


def test_train_on_celeba_folder_end_to_end(celeba, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "cgan", "--data", str(celeba), "--out", str(out), "--steps", "2",
                 "--set", "data.label_set=celeba", "--set", "model.ch=8", "--set", "train.batch_size=4",
                 "--set", "train.samples_per_class=2", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "completed" and status["step"] == 2
    with Image.open(out / "samples" / "step_000002.png") as im:
        assert im.mode == "RGB" and im.height == 2 * 66 + 2  # two rows of 64 px + padding
    # the FER2013 evaluator's protocols do not apply to CelebA: each is skipped with its reason; the ones that
    # read no network (the spectral footprint, the response to c) run on any images
    code = main(["evaluate", str(out), "--device", "cpu", "--n-samples", "40"])
    capsys.readouterr()
    assert code == 0
    entries = json.loads((out / "eval.json").read_text())["metrics"]
    free = {name for name, e in entries.items() if e["extractor"] in ("pixel-fft", "pixels")}
    assert free == {"spectral40"} and entries["spectral40"]["status"] == "ok"
    assert all(e["status"] in ("skipped", "unavailable") for n, e in entries.items() if n not in free)
    assert any("48 x 48" in (e.get("reason") or "") for e in entries.values())
