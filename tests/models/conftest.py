"""Shared fixtures of the model tests: the two data specs, tiny configs per plugin, a built plugin."""

from __future__ import annotations

import pytest
import torch

from exprbench.runs.config import resolve_config
from exprbench.data import FER7, DataSpec
from exprbench.runs.loader import build_model
from exprbench.models.base import Batch, Resources

#: the two image geometries every plugin must handle: FER2013 (gray 48x48, 7 emotions) and CelebA-like
SPECS = {
    "gray48": DataSpec(1, 48, 48, FER7, "fer7"),
    "rgb64": DataSpec(3, 64, 64, ("not_smiling", "smiling"), "celeba"),
}
FER_SPEC = SPECS["gray48"]

#: overrides that make each plugin tiny (reference configs keep their architectures where they fix them)
TINY = {
    "gan": ["model.ch=4"], "cgan": ["model.ch=4"], "bigan": ["model.ch=4"], "bicogan": ["model.ch=4"],
    "acgan": ["model.ch=4", "model.cls_ch=4"],
    "ccyclegan": ["model.ch=4"],
    "vae": ["model.ch=4", "model.z_dim=8"],
    "flow": ["model.ch=8", "model.steps_per_level=1", "model.warmup_steps=0"],
    "diffusion": ["model.ch=4", "model.blocks=1", "model.sample_steps=3", "model.warmup_steps=0"],
    "interfacegan": ["model.n_latents=80", "model.ratio=0.1", "model.score_batch=40", "model.svm=linear_svc",
                     "model.base_run=tiny-gan"],
}


def images(n: int, spec: DataSpec, seed: int = 0) -> torch.Tensor:
    """n uint8-valued float images in [-1, 1] of ``spec``'s shape (smooth noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randint(0, 256, (n, spec.channels, spec.height // 8, spec.width // 8), generator=g).float()
    x = torch.nn.functional.interpolate(low, size=(spec.height, spec.width), mode="nearest")
    return x / 127.5 - 1.0


class FakeScorer:
    """Stands in for the FER evaluator: per-class probabilities from the mean brightness of K image bands."""

    def probs(self, imgs: torch.Tensor, class_names) -> torch.Tensor:
        k, w = len(class_names), imgs.shape[-1]
        bands = torch.stack([imgs[..., (j * w) // k:((j + 1) * w) // k].float().mean((1, 2, 3)) for j in range(k)], 1)
        return torch.softmax(bands / 20.0, 1)


def fake_resources(spec: DataSpec) -> Resources:
    """The trained parts a plugin may need, without a real run: any run directory loads a tiny untrained GAN
    for ``spec``; the scorer is :class:`FakeScorer`."""

    def load_run(run_dir, device="cpu"):
        cfg = resolve_config("gan", "default", ["model.ch=4"])
        torch.manual_seed(1)
        return cfg, build_model(cfg, spec, torch.device("cpu")), spec, 1

    return Resources(load_run=load_run, load_scorer=lambda weights, device: FakeScorer())


def tiny_model(name: str, config: str, spec: DataSpec, overrides=(), seed: int = 0):
    """The plugin ``name`` with config ``config`` and the :data:`TINY` overrides, built on the CPU with
    :func:`fake_resources`."""
    cfg = resolve_config(name, config, [*TINY.get(name, []), *overrides])
    torch.manual_seed(seed)
    return build_model(cfg, spec, torch.device("cpu"), fake_resources(spec))


def train_once(model, spec: DataSpec, n: int = 4, seed: int = 0) -> dict[str, float]:
    """One ``training_step`` on a fixed random batch; asserts finite float logs and that every net
    with an optimizer changed. Returns the logs."""
    import math

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, spec.channels, spec.height, spec.width, generator=g) * 2 - 1
    c = torch.randint(0, spec.num_classes, (n,), generator=g)
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    logs = model.training_step(Batch(x, c, epoch=0.5, progress=0.5), 0)
    model.update_ema()
    assert logs and all(isinstance(v, float) and math.isfinite(v) for v in logs.values()), logs
    after = model.nets.state_dict()
    for net in model.optimizers:
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(net + ".")), f"{net} not updated"
    return logs
