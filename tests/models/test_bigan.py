"""models/bigan.py: one CPU training step per config (G, E and D updated), sampling, encode/reconstruct."""

from __future__ import annotations

import math

import pytest
import torch

from exprbench.runs.config import resolve_config
from exprbench.data import FER7, DataSpec
from exprbench.runs.loader import build_model
from exprbench.models.base import Batch
from exprbench.models.bigan import ge_loss


SPEC = DataSpec(1, 48, 48, FER7, "fer7")


def tiny(config: str, spec: DataSpec = SPEC, overrides=()):
    torch.manual_seed(0)
    return build_model(resolve_config("bigan", config, ["model.ch=8", *overrides]), spec, torch.device("cpu"))


@pytest.mark.parametrize("config", ["default", "reference"])
def test_training_step_updates_g_e_d(config):
    model = tiny(config)
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    logs = model.training_step(Batch(torch.rand(4, 1, 48, 48) * 2 - 1, torch.randint(0, 7, (4,))), 0)
    model.update_ema()
    assert {"loss_d", "loss_ge"} <= set(logs) and all(math.isfinite(v) for v in logs.values())
    after = model.nets.state_dict()
    for net in ("G", "E", "D"):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(net + ".")), net


def test_reference_config_facts():
    cfg = resolve_config("bigan", "reference")
    assert cfg.model_cfg.arch == "reference" and cfg.model_cfg.z_dim == 100 and cfg.train.steps == 20000
    model = build_model(cfg, SPEC, torch.device("cpu"))
    assert [m.out_channels for m in model.nets["E"].net if isinstance(m, torch.nn.Conv2d)] == [64, 128, 256, 512]
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in model.nets["E"].net)  # the reference's missing activations


def test_encode_and_reconstruct_shapes():
    model = tiny("default")
    x = torch.rand(5, 1, 48, 48) * 2 - 1
    enc = model.encode(x)
    assert set(enc) == {"z"} and enc["z"].shape == (5, 128) and enc["z"].dtype == torch.float32
    rec = model.reconstruct(x)
    assert rec.shape == x.shape and float(rec.abs().max()) <= 1
    assert model.nets["E"].training  # modes restored
    with pytest.raises(ValueError, match="expected float images N x 1 x 48 x 48"):
        model.encode(torch.rand(5, 1, 32, 32))
    assert model.capabilities == {"sample", "encode"} and not hasattr(model, "translate")  # no stub


def test_other_image_sizes_from_spec():
    spec = DataSpec(3, 64, 64, ("not_smiling", "smiling"), "celeba")
    for config in ("default", "reference"):
        model = tiny(config, spec)
        model.training_step(Batch(torch.rand(2, 3, 64, 64) * 2 - 1, torch.tensor([0, 1])), 0)
        assert model.sample(2).shape == (2, 3, 64, 64)
        assert model.reconstruct(torch.zeros(2, 3, 64, 64)).shape == (2, 3, 64, 64)


def test_ge_loss_pushes_e_towards_fake():
    real, fake = torch.tensor([3.0]), torch.tensor([-3.0])
    for kind in ("bce", "hinge", "lsgan"):
        assert ge_loss(kind, real, fake) > ge_loss(kind, -real, -fake)
