"""exprbench.score / exprbench.load: the Python API (arrays, tensors and folders; a trained run's plugin)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import exprbench
from exprbench.runs.config import resolve_config
from exprbench.core.errors import UserError
from exprbench.runs.harness import Trainer

from ..conftest import write_csv


@pytest.fixture
def csv(tmp_path):
    return write_csv(tmp_path / "fer2013.csv", per_class=4)


def test_score_takes_arrays_tensors_and_folders_alike(tmp_path, csv):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (14, 48, 48), dtype=np.uint8)
    labels = np.repeat(np.arange(7), 2)
    a = exprbench.score(imgs, labels=labels, metrics=["fid14_train", "acc_gen14"], data=csv, device="cpu")
    t = exprbench.score(torch.from_numpy(imgs).float()[:, None] / 127.5 - 1.0, labels=torch.from_numpy(labels),
                        metrics=["fid14_train", "acc_gen14"], data=csv, device="cpu")
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(folder / f"{i:03d}.png")
    f = exprbench.score(str(folder), metrics=["fid14_train"], data=csv, device="cpu")
    assert set(a) == {"fid14_train", "acc_gen14"} and 0.0 <= a["acc_gen14"] <= 1.0
    assert t == pytest.approx(a) and f["fid14_train"] == pytest.approx(a["fid14_train"])
    full = exprbench.score(imgs, metrics=["fid14_train"], data=csv, device="cpu", details=True)
    assert full["fid14_train"]["status"] == "ok" and "fid14_train" in full["references"]


def test_score_refuses_float_images_outside_the_range(csv):
    with pytest.raises(UserError, match=r"float images must lie in \[-1, 1\]"):
        exprbench.score(np.full((4, 48, 48), 3.0, dtype=np.float32), data=csv)


def test_load_gives_a_plugin_ready_to_sample(tmp_path, csv):
    from exprbench.data import load_fer2013

    cfg = resolve_config("cgan", "default", ["model.ch=4", "train.batch_size=4", "train.steps=2", "train.sample_every=0"])
    Trainer(cfg, tmp_path / "run", dataset=load_fer2013(csv, use_cache=False), progress=False).run()
    model = exprbench.load(tmp_path / "run")
    x = model.sample(3, labels=torch.tensor([0, 3, 6]), generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 48, 48) and float(x.abs().max()) <= 1.0


def test_importing_exprbench_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, exprbench; assert 'torch' not in sys.modules; print(exprbench.__version__)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).returncode == 0
