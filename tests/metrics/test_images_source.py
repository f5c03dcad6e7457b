"""metrics/run/images_source.py: images from folders / .npz / .npy and their labels, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from exprbench.data import FER7
from exprbench.core.errors import UserError
from exprbench.metrics.run.images_source import ImageSourceError, load_image_set, load_labels


def _imgs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 48, 48), dtype=np.uint8)


def _folder(root, arr, mode="L"):
    root.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(arr):
        im = Image.fromarray(a)
        (im.convert(mode) if mode != "L" else im).save(root / f"{i:03d}.png")
    return root


def test_png_folder_sorted_gray(tmp_path):
    arr = _imgs(12)
    s = load_image_set(_folder(tmp_path / "d", arr), FER7)
    assert s.images.dtype == torch.uint8 and tuple(s.images.shape) == (12, 1, 48, 48)
    assert torch.equal(s.images[:, 0], torch.from_numpy(arr)) and s.labels is None
    assert s.info["format"] == "image-folder" and s.info["color"] == "gray" and s.info["n"] == 12
    (tmp_path / "d" / "notes.txt").write_text("ignored")
    assert load_image_set(tmp_path / "d", FER7).info["sha256"] == s.info["sha256"]


def test_rgb_png_with_equal_channels_is_gray_losslessly(tmp_path):
    """torchvision.utils.save_image writes gray images as RGB: they read back exactly."""
    arr = _imgs(5)
    s = load_image_set(_folder(tmp_path / "d", arr, mode="RGB"), FER7)
    assert torch.equal(s.images[:, 0], torch.from_numpy(arr)) and "lossless" in s.info["color"]


def test_class_subfolders_give_labels(tmp_path):
    for k, name in ((0, "angry"), (3, "Happy")):
        _folder(tmp_path / "d" / name, _imgs(3, k))
    s = load_image_set(tmp_path / "d", FER7)
    assert s.labels.tolist() == [0, 0, 0, 3, 3, 3] and s.info["format"] == "class-folders"
    assert s.labels_info["per_class"]["happy"] == 3
    with pytest.raises(ImageSourceError, match="give one or the other"):
        (tmp_path / "l.txt").write_text("angry\n" * 6)
        load_image_set(tmp_path / "d", FER7, labels=tmp_path / "l.txt")


@pytest.mark.parametrize("layout", ["nhw", "nchw", "nhwc", "arr_0"])
def test_npz_layouts(tmp_path, layout):
    arr = _imgs(6)
    lab = np.arange(6) % 7
    f = tmp_path / "s.npz"
    if layout == "nhw":
        np.savez(f, images=arr, labels=lab)
    elif layout == "nchw":
        np.savez(f, images=arr[:, None], labels=lab)
    elif layout == "nhwc":
        np.savez(f, images=np.repeat(arr[..., None], 3, axis=3), labels=lab)
    else:  # np.savez(f, images, labels): guided-diffusion's sample files
        np.savez(f, arr, lab)
    s = load_image_set(f, FER7)
    assert torch.equal(s.images[:, 0], torch.from_numpy(arr)) and s.labels.tolist() == lab.tolist()


def test_npy_images_and_label_files(tmp_path):
    arr = _imgs(4)
    np.save(tmp_path / "x.npy", arr)
    names = ["happy", "SAD", "3", "neutral"]
    (tmp_path / "l.txt").write_text("\n".join(names) + "\n\n")
    s = load_image_set(tmp_path / "x.npy", FER7, labels=tmp_path / "l.txt")
    assert s.labels.tolist() == [3, 4, 3, 6] and s.labels_info["format"] == "txt"
    np.save(tmp_path / "l.npy", np.array(["happy", "sad", "happy", "neutral"]))
    assert load_labels(tmp_path / "l.npy", 4, FER7)[0].tolist() == [3, 4, 3, 6]
    np.save(tmp_path / "i.npy", np.array([3, 4, 3, 6]))
    assert load_labels(tmp_path / "i.npy", 4, FER7)[0].tolist() == [3, 4, 3, 6]
    (tmp_path / "l.csv").write_text("label\nhappy\nsad\nhappy\nneutral\n")
    assert load_labels(tmp_path / "l.csv", 4, FER7)[0].tolist() == [3, 4, 3, 6]


def test_csv_with_file_column_matches_names(tmp_path):
    d = _folder(tmp_path / "d", _imgs(3))
    (tmp_path / "l.csv").write_text("file,label\n002.png,sad\n000.png,angry\n001.png,happy\n")
    s = load_image_set(d, FER7, labels=tmp_path / "l.csv")
    assert s.labels.tolist() == [0, 3, 4]
    (tmp_path / "m.csv").write_text("file,label\n002.png,sad\n000.png,angry\n")
    with pytest.raises(ImageSourceError, match="no label for image '001.png'"):
        load_image_set(d, FER7, labels=tmp_path / "m.csv")


@pytest.mark.parametrize("make, match", [
    (lambda p: np.savez(p / "s.npz", images=np.zeros((3, 48, 48), np.float32)), r"s.npz: images have dtype float32; expected uint8"),
    (lambda p: np.savez(p / "s.npz", images=np.zeros((3, 64, 64), np.uint8)), r"s.npz: images are 64x64; the FER2013 metrics take 48x48"),
    (lambda p: np.savez(p / "s.npz", images=np.zeros((3, 5, 48, 48), np.uint8)), r"s.npz: images have shape \(3, 5, 48, 48\)"),
    (lambda p: np.savez(p / "s.npz", images=np.zeros((48, 48), np.uint8)), r"s.npz: images have shape \(48, 48\)"),
    (lambda p: np.savez(p / "s.npz", pixels=np.zeros((3, 48, 48), np.uint8)), r"s.npz: no 'images' array \(holds: pixels\)"),
    (lambda p: np.savez(p / "s.npz", images=np.zeros((0, 48, 48), np.uint8)), r"s.npz: no images"),
    (lambda p: np.savez(p / "s.npz", images=np.zeros((3, 48, 48), np.uint8), labels=np.array([0, 1, 9])),
     r"s.npz\['labels'\]\[2\]: class index 9 outside 0..6"),
    (lambda p: (p / "s.npz").write_bytes(b"not a zip"), r"s.npz: not a readable npz"),
])
def test_bad_arrays(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(ImageSourceError, match=match) as e:
        load_image_set(tmp_path / "s.npz", FER7)
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)


def test_bad_folders_and_files(tmp_path):
    with pytest.raises(ImageSourceError, match="no such file or folder"):
        load_image_set(tmp_path / "missing", FER7)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageSourceError, match="no images"):
        load_image_set(tmp_path / "empty", FER7)
    d = _folder(tmp_path / "d", _imgs(2))
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(d / "big.png")
    with pytest.raises(ImageSourceError, match=r"big.png: the image is 64x64"):
        load_image_set(d, FER7)
    (d / "big.png").write_bytes(b"garbage")
    with pytest.raises(ImageSourceError, match=r"big.png: not a readable image"):
        load_image_set(d, FER7)
    (d / "big.png").unlink()
    Image.fromarray(np.zeros((48, 48), np.uint16)).save(d / "deep.png")
    with pytest.raises(ImageSourceError, match=r"deep.png: a I;16 .* image; expected 8-bit"):
        load_image_set(d, FER7)
    (tmp_path / "x.tiff").write_bytes(b"")
    with pytest.raises(ImageSourceError, match="expected a folder of images, an .npz or an .npy"):
        load_image_set(tmp_path / "x.tiff", FER7)


def test_bad_labels(tmp_path):
    d = _folder(tmp_path / "d", _imgs(3))
    cases = [("a.txt", "happy\nhapppy\nsad\n", r"a.txt:2: unknown emotion 'happpy' \(known: angry"),
             ("b.txt", "happy\nsad\n", r"b.txt: 2 labels for 3 images in"),
             ("c.txt", "happy\n\nsad\n", r"c.txt:2: empty label"),
             ("d.txt", "happy\n7\nsad\n", r"d.txt:2: class index 7 outside 0..6"),
             ("e.json", "[]", r"unknown labels format '.json'"),
             ("f.csv", "a,b\n1,2\n", r"f.csv:1: 2 columns but no 'label' column")]
    for name, text, match in cases:
        (tmp_path / name).write_text(text)
        with pytest.raises(ImageSourceError, match=match):
            load_image_set(d, FER7, labels=tmp_path / name)
    np.save(tmp_path / "g.npy", np.array([0.5, 1.0, 2.0]))
    with pytest.raises(ImageSourceError, match=r"g.npy: labels have dtype float64"):
        load_image_set(d, FER7, labels=tmp_path / "g.npy")
    with pytest.raises(ImageSourceError, match=r"--labels .*nope.txt: no such file"):
        load_image_set(d, FER7, labels=tmp_path / "nope.txt")


def test_jpeg_files_are_counted_as_lossy(tmp_path):
    d = _folder(tmp_path / "d", _imgs(2))
    Image.fromarray(_imgs(1)[0]).save(d / "x.jpg", quality=95)
    s = load_image_set(d, FER7)
    assert s.info["n"] == 3 and s.info["lossy_files"] == 1
    assert "lossy_files" not in load_image_set(_folder(tmp_path / "e", _imgs(2)), FER7).info
