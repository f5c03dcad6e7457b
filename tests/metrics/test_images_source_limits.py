"""evaluate --images reads sizes from headers before decoding or allocating (issue 33, finding 6): a 15000 x 15000
PNG, an .npy whose header claims 10^9 images and an .npz of 500,000 tiny images are refused in one line naming
the file and the limit, fast and without the memory they claim."""

from __future__ import annotations

import resource
import time

import numpy as np
import pytest

from exprbench.benchmarks.faults.tamper import huge_png, npy_claiming, npz_of_many
from exprbench.cli import main
from exprbench.data import FER7
from exprbench.metrics.run.array_headers import MAX_IMAGES, ImageSourceError
from exprbench.metrics.run.images_source import load_image_set, load_labels


def refused(path, *match, labels=None):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ImageSourceError) as e:
        load_labels(labels, 1, FER7) if labels else load_image_set(path, FER7)
    assert time.perf_counter() - t0 < 5 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000  # KiB
    msg = str(e.value)
    assert "\n" not in msg and all(m in msg for m in match), msg
    return msg


def test_a_huge_png_is_refused_from_its_header(tmp_path):
    d = tmp_path / "pngs"
    d.mkdir()
    huge_png(d / "000.png", 15000)  # PIL: a decompression bomb
    refused(d, str(d / "000.png"), "at most 1024x1024")
    huge_png(d / "000.png", 9000)  # over PIL's warning threshold, under its error
    refused(d, "at most 1024x1024")
    huge_png(d / "000.png", 1000)
    refused(d, "the image is 1000x1000", "take 48x48")


def test_an_npy_header_claiming_a_billion_images_is_refused(tmp_path):
    f = npy_claiming(tmp_path / "x.npy", (10**9, 48, 48))
    refused(f, str(f), f"at most {MAX_IMAGES:,}")
    f = npy_claiming(tmp_path / "y.npy", (100, 48, 48))  # within the limits, but the data is not in the file
    refused(f, "header claims 230,400 bytes", "the file holds 0")
    f = npy_claiming(tmp_path / "z.npy", (10, 1, 4800, 4800))
    refused(f, "at most 1024x1024")
    f = npy_claiming(tmp_path / "l.npy", (10**9,), "<i8")
    refused(None, "at most 200,000", labels=f)


def test_an_npz_of_500000_tiny_images_is_refused_before_reading(tmp_path):
    f = npz_of_many(tmp_path / "many.npz", 500_000)
    assert f.stat().st_size < 8 * 2**20
    refused(f, f"{f}: holds 500,000 images", f"at most {MAX_IMAGES:,}")


def test_the_cli_says_it_in_one_line(tmp_path, capsys):
    f = npy_claiming(tmp_path / "x.npy", (10**9, 48, 48))
    assert main(["evaluate", "--images", str(f), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "at most 200,000" in err, err
    assert not (tmp_path / "out").exists()


def test_arrays_within_the_limits_still_read(tmp_path):
    arr = np.zeros((5, 48, 48, 3), np.uint8)
    np.savez_compressed(tmp_path / "ok.npz", images=arr, labels=np.arange(5))
    s = load_image_set(tmp_path / "ok.npz", FER7)
    assert tuple(s.images.shape) == (5, 1, 48, 48) and s.labels.tolist() == [0, 1, 2, 3, 4]


def test_a_folder_over_the_image_limit_is_refused_before_reading(tmp_path, monkeypatch):
    import exprbench.metrics.run.images_source as src

    d = tmp_path / "pngs"
    d.mkdir()
    for i in range(4):
        (d / f"{i}.png").write_bytes(b"never read")
    monkeypatch.setattr(src, "MAX_IMAGES", 3)
    refused(d, "4 image files; at most 3 are read")
