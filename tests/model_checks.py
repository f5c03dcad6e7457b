"""Checks shared by the per-model test files: one tiny CPU training step, sampling, state round trip."""

from __future__ import annotations

import math

import torch

from exprbench.config import resolve_config
from exprbench.data import DataSpec, FER7
from exprbench.harness import build_model
from exprbench.models.base import Batch

SPEC = DataSpec(1, 48, 48, FER7, "fer7")


def tiny_model(name: str, config: str, overrides=()):
    cfg = resolve_config(name, config, ["model.ch=8", *overrides])
    torch.manual_seed(0)
    return build_model(cfg, SPEC, torch.device("cpu"))


def one_step(name: str, config: str, overrides=()) -> dict:
    model = tiny_model(name, config, overrides)
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    batch = Batch(torch.rand(8, 1, 48, 48) * 2 - 1, torch.randint(0, 7, (8,)))
    logs = model.training_step(batch, 0)
    model.update_ema()
    assert logs and all(isinstance(v, float) and math.isfinite(v) for v in logs.values())
    after = model.nets.state_dict()
    for net in ("G", "D"):
        changed = [k for k in after if k.startswith(net + ".") and not torch.equal(before[k], after[k])]
        assert changed, f"{name}/{config}: {net} was not updated"
    return logs


def sample_contract(name: str, config: str) -> None:
    model = tiny_model(name, config)
    labels = torch.arange(7).repeat(2)
    x = model.sample(14, labels=labels, generator=torch.Generator().manual_seed(1))
    assert x.shape == (14, 1, 48, 48) and x.dtype == torch.float32
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    y = model.sample(14, labels=labels, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, y), "same generator seed must give the same samples"
    assert model.sample(3).shape[0] == 3  # labels drawn when omitted


def state_roundtrip(name: str, config: str) -> None:
    a = tiny_model(name, config)
    a.training_step(Batch(torch.rand(4, 1, 48, 48) * 2 - 1, torch.randint(0, 7, (4,))), 0)
    b = tiny_model(name, config)
    b.load_state_dict(a.state_dict())
    g = torch.Generator().manual_seed(0)
    x = a.sample(4, torch.zeros(4, dtype=torch.long), torch.Generator().manual_seed(0))
    y = b.sample(4, torch.zeros(4, dtype=torch.long), g)
    assert torch.equal(x, y)
