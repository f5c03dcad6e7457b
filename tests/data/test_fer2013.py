"""exprbench.data, FER2013: the three input forms, label sets, cache, and every kind of bad input."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from exprbench import data as D
from exprbench.data import fer2013 as F
from exprbench.data import FER7, LABEL_SETS, load_fer2013, to_float, to_uint8
from exprbench.core.errors import DataError

from ..conftest import make_images, write_csv, write_folder, write_zip


def _check_tiny(ds, per_class=2):
    assert ds.images.dtype == torch.uint8 and tuple(ds.images.shape[1:]) == (1, 48, 48)
    counts = ds.counts()
    assert all(v == per_class for split in counts.values() for v in split.values())
    assert ds.class_names == FER7


def test_csv_form(tmp_path):
    ds = load_fer2013(write_csv(tmp_path / "fer2013.csv"))
    _check_tiny(ds)
    assert D.detect_format(tmp_path / "fer2013.csv") == "csv"
    # pixel values survive exactly
    expected = make_images(42, 0)[0]
    assert np.array_equal(ds.images[0, 0].numpy(), expected)


def test_folder_form(tmp_path):
    ds = load_fer2013(write_folder(tmp_path / "fer2013"))
    _check_tiny(ds)
    # the file-name prefix gives the split: PublicTest -> val, PrivateTest -> test
    assert len(ds.split("val")) == 14 and len(ds.split("test")) == 14


def test_zip_form_and_wrapping_folder(tmp_path):
    _check_tiny(load_fer2013(write_zip(tmp_path / "a.zip")))
    _check_tiny(load_fer2013(write_zip(tmp_path / "b.zip", prefix="fer2013/")))


def test_zip_with_csv(tmp_path):
    csv_path = write_csv(tmp_path / "fer2013.csv")
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as zf:
        zf.write(csv_path, "fer2013/fer2013.csv")
    _check_tiny(load_fer2013(tmp_path / "c.zip"))


def test_forms_agree(tmp_path):
    a = load_fer2013(write_folder(tmp_path / "f"))
    b = load_fer2013(write_zip(tmp_path / "z.zip"))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.splits, b.splits)


def test_fer6_drops_disgust(tmp_path):
    ds = load_fer2013(write_csv(tmp_path / "fer2013.csv"), label_set="fer6")
    assert ds.class_names == LABEL_SETS["fer6"] and "disgust" not in ds.class_names
    assert len(ds) == 6 * 3 * 2 and int(ds.labels.max()) == 5
    full = load_fer2013(tmp_path / "fer2013.csv")
    # the same images keep their emotion names
    keep = full.labels != FER7.index("disgust")
    names7 = [full.class_names[i] for i in full.labels[keep]]
    names6 = [ds.class_names[i] for i in ds.labels]
    assert names7 == names6


def test_split_selection_and_errors(tiny_dataset):
    assert set(tiny_dataset.split("train").splits.tolist()) == {0}
    with pytest.raises(DataError, match="unknown split"):
        tiny_dataset.split("holdout")


def test_empty_split(tmp_path):
    p = tmp_path / "fer2013.csv"
    rows = [ln for ln in write_csv(p).read_text().splitlines() if not ln.endswith("PublicTest")]
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="split 'val' .* is empty"):
        load_fer2013(p).split("val")


def test_cache_reused(tmp_path, monkeypatch):
    p = write_zip(tmp_path / "fer.zip")
    first = load_fer2013(p)
    monkeypatch.setattr(F, "_decode", lambda path: pytest.fail("decoded again instead of using the cache"))
    second = load_fer2013(p)
    assert torch.equal(first.images, second.images) and first.fingerprint == second.fingerprint


def test_cache_invalidated_when_source_changes(tmp_path):
    p = write_csv(tmp_path / "fer2013.csv", seed=0)
    a = load_fer2013(p)
    write_csv(p, seed=1)
    b = load_fer2013(p)
    assert a.fingerprint != b.fingerprint and not torch.equal(a.images, b.images)


def test_fingerprint_is_content_sha256(tmp_path):
    import hashlib

    p = write_csv(tmp_path / "fer2013.csv")
    assert load_fer2013(p).fingerprint == hashlib.sha256(p.read_bytes()).hexdigest()


def _bad_csv(tmp_path, line3: str):
    p = write_csv(tmp_path / "fer2013.csv")
    lines = p.read_text().splitlines()
    lines[2] = line3
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize(
    "row, message",
    [
        ("0," + " ".join(["1"] * 100) + ",Training", r"fer2013.csv:3: 100 pixels, expected 2304"),
        ("0," + " ".join(["x"] * 2304) + ",Training", r"fer2013.csv:3: pixels are not all integers"),
        ("9," + " ".join(["1"] * 2304) + ",Training", r"fer2013.csv:3: emotion 9 outside 0..6"),
        ("a," + " ".join(["1"] * 2304) + ",Training", r"fer2013.csv:3: emotion 'a' is not an integer"),
        ("0," + " ".join(["1"] * 2304) + ",Holdout", r"fer2013.csv:3: Usage 'Holdout'"),
        ("0," + " ".join(["300"] * 2304) + ",Training", r"fer2013.csv:3: pixel values outside 0..255"),
    ],
)
def test_bad_csv_rows_name_the_line(tmp_path, row, message):
    with pytest.raises(DataError, match=message):
        load_fer2013(_bad_csv(tmp_path, row))


def test_bad_csv_leaves_no_cache(tmp_path):
    with pytest.raises(DataError):
        load_fer2013(_bad_csv(tmp_path, "9," + " ".join(["1"] * 2304) + ",Training"))
    cache = D.cache_dir() / "data"
    assert not cache.exists() or not any(cache.iterdir())


def test_bad_header(tmp_path):
    p = tmp_path / "fer2013.csv"
    p.write_text("label,img\n0,1\n")
    with pytest.raises(DataError, match="lacks column"):
        load_fer2013(p)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="dataset not found"):
        load_fer2013(tmp_path / "nope.zip")


def test_unknown_format(tmp_path):
    p = tmp_path / "fer.bin"
    p.write_bytes(b"\x00\x01garbage")
    with pytest.raises(DataError, match="unknown dataset format"):
        load_fer2013(p)


def test_image_wrong_size_names_file(tmp_path):
    root = write_folder(tmp_path / "f")
    from PIL import Image

    bad = root / "train" / "happy" / "Training_bad.png"
    Image.new("L", (64, 64)).save(bad)
    with pytest.raises(DataError, match=r"Training_bad.png: image is 64x64, expected 48x48"):
        load_fer2013(root)


def test_image_undecodable_names_file(tmp_path):
    root = write_folder(tmp_path / "f")
    (root / "test" / "sad" / "PrivateTest_bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"PrivateTest_bad.jpg: cannot decode image"):
        load_fer2013(root)


def test_unknown_emotion_folder(tmp_path):
    root = write_folder(tmp_path / "f")
    (root / "train" / "bored").mkdir()
    src = next((root / "train" / "happy").iterdir())
    src.rename(root / "train" / "bored" / src.name)
    with pytest.raises(DataError, match="folder 'bored' is not an emotion"):
        load_fer2013(root)


def test_corrupt_cache_is_rebuilt(tmp_path):
    p = write_csv(tmp_path / "fer2013.csv")
    load_fer2013(p)
    (cfile,) = (D.cache_dir() / "data").glob("*.pt")
    cfile.write_bytes(cfile.read_bytes()[:100])
    assert len(load_fer2013(p)) == 42


def test_resolve_data_path_env(tmp_path, monkeypatch):
    p = write_csv(tmp_path / "fer2013.csv")
    monkeypatch.setenv("EXPRBENCH_DATA", str(p))
    assert D.resolve_data_path(None) == p
    monkeypatch.setenv("EXPRBENCH_DATA", str(tmp_path / "missing.zip"))
    with pytest.raises(DataError, match="missing.zip"):
        D.resolve_data_path(None)


def test_uint8_float_roundtrip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(to_uint8(to_float(x)), x)
    assert to_uint8(torch.tensor([-2.0, 2.0])).tolist() == [0, 255]
    with pytest.raises(ValueError, match="float"):
        to_uint8(x)


# -- corrupt and oversized archives, unwritable caches ---------------------------------------------


def _zip_with_bad_crc(path):
    """A stored (uncompressed) image-folder zip with one byte of one entry's data flipped."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        from ..conftest import folder_entries

        entries = list(folder_entries())
        for rel, raw in entries:
            zf.writestr(rel, raw)
    victim = entries[3][0]
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(victim)
    raw = bytearray(path.read_bytes())
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 40
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    return victim


def test_zip_entry_with_bad_crc_names_the_entry(tmp_path):
    p = tmp_path / "fer2013.zip"
    victim = _zip_with_bad_crc(p)
    with pytest.raises(DataError, match=rf"fer2013.zip:{victim}: corrupt zip entry \(Bad CRC-32"):
        load_fer2013(p)


def test_zip_csv_entry_with_bad_crc(tmp_path):
    csv = write_csv(tmp_path / "fer2013.csv")
    p = tmp_path / "fer2013.zip"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.write(csv, "fer2013.csv")
    raw = bytearray(p.read_bytes())
    raw[30 + len("fer2013.csv") + 5000] ^= 0x01  # a pixel digit inside the data: only the CRC notices
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"fer2013.zip:fer2013.csv: corrupt zip entry"):
        load_fer2013(p)


def test_zip_entry_size_checked_before_inflating(tmp_path, monkeypatch):
    p = write_zip(tmp_path / "fer2013.zip")
    with zipfile.ZipFile(p, "a") as zf:
        zf.writestr("train/happy/Training_big.png", b"\0" * 5000)  # declares 5,000 bytes uncompressed
    monkeypatch.setattr(F, "MAX_IMAGE_BYTES", 4096)
    read = []
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda self, name, pwd=None: read.append(name))
    with pytest.raises(DataError, match=r"fer2013.zip:train/happy/Training_big.png: 5,000 bytes, more than the "
                                        r"4,096 a FER2013 image can have"):
        load_fer2013(p)
    assert read == []  # refused before any entry was inflated


def test_zip_csv_size_checked(tmp_path, monkeypatch):
    p = tmp_path / "fer2013.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.write(write_csv(tmp_path / "fer2013.csv"), "fer2013.csv")
    monkeypatch.setattr(F, "MAX_CSV_BYTES", 1000)
    with pytest.raises(DataError, match=r"fer2013.csv: [\d,]+ bytes, more than the 1,000 a FER2013 CSV can have"):
        load_fer2013(p)


def test_folder_image_size_checked(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "fer2013")
    monkeypatch.setattr(F, "MAX_IMAGE_BYTES", 10)
    with pytest.raises(DataError, match="bytes, more than the 10 a FER2013 image can have"):
        load_fer2013(root)


def test_unwritable_cache_is_a_clear_error_before_decoding(tmp_path, monkeypatch):
    src = write_csv(tmp_path / "fer2013.csv")
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    monkeypatch.setenv("EXPRBENCH_CACHE", str(blocker / "cache"))
    real_decode = F._decode
    monkeypatch.setattr(F, "_decode", lambda path: pytest.fail("decoded although the cache cannot be written"))
    with pytest.raises(DataError, match=r"\$EXPRBENCH_CACHE folder .*: .* is a file, so the folder cannot be created; "
                                        "set EXPRBENCH_CACHE to a writable folder"):
        load_fer2013(src)
    monkeypatch.setattr(F, "_decode", real_decode)
    assert load_fer2013(src, use_cache=False).images.shape[0] == 42  # without the cache it works


def test_read_only_cache_still_serves_its_entries(tmp_path, monkeypatch):
    from exprbench.core import io as xio

    src = write_csv(tmp_path / "fer2013.csv")
    load_fer2013(src)  # fills the cache
    monkeypatch.setattr(xio, "_can_create_in", lambda folder: False)  # now read-only (e.g. a shared cache)
    assert load_fer2013(src).images.shape[0] == 42
    src.write_text(src.read_text())  # a changed source needs a new entry: refused with one clear line
    import os

    os.utime(src, ns=(1, 1))
    with pytest.raises(DataError, match=r"\$EXPRBENCH_CACHE folder .*: cannot write there: permission denied or read-only; set EXPRBENCH_CACHE"):
        load_fer2013(src)


def test_cache_file_mode_respects_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        load_fer2013(write_csv(tmp_path / "fer2013.csv"))
    finally:
        os.umask(old)
    (entry,) = (D.cache_dir() / "data").iterdir()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o644
