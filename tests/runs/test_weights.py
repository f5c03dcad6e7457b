"""Published weights (exprbench.runs.weights): inference state only, self-verifying, loadable by load_trained."""

from __future__ import annotations

import dataclasses
import shutil
import stat

import pytest
import torch
from safetensors import safe_open

from exprbench.runs.config import resolve_config
from exprbench.core.errors import CheckpointError
from exprbench.runs.harness import Trainer
from exprbench.runs.loader import load_trained
from exprbench.runs.weights import FILENAME, export_weights, read_weights


@pytest.fixture
def trained(tmp_path, tiny_dataset):
    cfg = resolve_config("cgan", "default", ["model.ch=4", "train.batch_size=7", "train.steps=3", "train.log_every=1",
                                             "train.sample_every=0", "train.samples_per_class=1", "train.ema=true"])
    run = tmp_path / "run"
    Trainer(cfg, run, dataset=tiny_dataset, progress=False).run()
    return run


def test_export_then_load_gives_the_checkpoint_samples(trained, tmp_path):
    _, model, spec, step = load_trained(trained)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    want = model.sample(6, torch.arange(6), g())
    pub = tmp_path / "pub"
    pub.mkdir()
    shutil.copy(trained / "config.json", pub / "config.json")
    path = export_weights(model, dataclasses.asdict(spec), step, pub / FILENAME)
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044  # readable by the team (umask 022)
    with safe_open(str(path), framework="pt") as f:
        names = list(f.keys())
    assert not any(n.startswith("nets/D.") for n in names)  # D is not needed for inference
    assert not any(n.startswith("nets/C.") for n in names)  # nor the real-face classifier C
    # with EMA only the EMA copy of G is published (sampling reads it), and the loaded G gets it too
    assert any(n.startswith("ema/") for n in names) and not any(n.startswith("nets/G.") for n in names)
    _, loaded, spec2, step2 = load_trained(pub)  # no checkpoints: the published weights
    assert step2 == step == 3 and spec2 == spec
    assert torch.equal(loaded.sample(6, torch.arange(6), g()), want)
    ema = loaded.ema.module.state_dict()
    assert all(torch.equal(v, ema[k]) for k, v in loaded.nets["G"].state_dict().items())


def test_damaged_weights_are_refused(trained, tmp_path):
    _, model, spec, step = load_trained(trained)
    path = export_weights(model, dataclasses.asdict(spec), step, tmp_path / "w" / FILENAME)
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF  # a flipped bit in the last tensor's bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="do not match the sha256"):
        read_weights(path)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        read_weights(path)


def test_sample_writes_upscaled_png_and_pdf(trained, tmp_path):
    from PIL import Image

    from exprbench.cli import main

    assert main(["sample", str(trained), "--n", "2", "--out", str(tmp_path / "s1.png")]) == 0
    assert main(["sample", str(trained), "--n", "2", "--out", str(tmp_path / "s3.png"), "--scale", "3"]) == 0
    a, b = Image.open(tmp_path / "s1.png"), Image.open(tmp_path / "s3.png")
    assert b.size == (3 * a.size[0], 3 * a.size[1])
    assert main(["sample", str(trained), "--n", "2", "--out", str(tmp_path / "s.pdf"), "--scale", "4"]) == 0
    assert (tmp_path / "s.pdf").read_bytes()[:5] == b"%PDF-"


def test_float16_weights_are_half_the_size_and_sample_nearly_the_same(trained, tmp_path):
    _, model, spec, step = load_trained(trained)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    want = model.sample(6, torch.arange(6), g())
    sizes = {}
    for dtype in ("float32", "float16"):
        pub = tmp_path / dtype
        pub.mkdir()
        shutil.copy(trained / "config.json", pub / "config.json")
        sizes[dtype] = export_weights(model, dataclasses.asdict(spec), step, pub / FILENAME, dtype).stat().st_size
    _, loaded, _, _ = load_trained(tmp_path / "float16")
    assert all(p.dtype == torch.float32 for p in loaded.nets["G"].parameters())  # cast back on load
    got = loaded.sample(6, torch.arange(6), g())
    assert sizes["float16"] < 0.6 * sizes["float32"]
    assert (got - want).abs().max() < 0.02 and not torch.equal(got, want)
    with pytest.raises(ValueError, match="stored dtype"):
        export_weights(model, dataclasses.asdict(spec), step, tmp_path / "x" / FILENAME, "int8")
