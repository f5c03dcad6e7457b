"""models/gan.py: model-specific facts (the shared contract is tests/models/test_contracts.py)."""

from __future__ import annotations

import pytest

from .conftest import FER_SPEC, tiny_model, train_once


@pytest.mark.parametrize("loss", ["bce", "hinge", "lsgan"])
def test_losses(loss):
    logs = train_once(tiny_model("gan", "default", FER_SPEC, [f"model.loss={loss}"]), FER_SPEC)
    assert {"loss_d", "loss_g", "d_real", "d_fake"} <= set(logs)


def test_r1_penalty_is_logged_and_off_at_zero():
    assert "r1" in train_once(tiny_model("gan", "default", FER_SPEC), FER_SPEC)  # default: gamma 1
    assert "r1" not in train_once(tiny_model("gan", "default", FER_SPEC, ["model.r1_gamma=0"]), FER_SPEC)


def test_r1_penalty_is_the_squared_input_gradient():
    import torch

    from exprbench.models.blocks import r1_penalty

    x = torch.randn(5, 1, 4, 4, requires_grad=True)
    logit = (3.0 * x).flatten(1).sum(1)  # d logit / dx = 3 everywhere: ||grad||^2 = 9 * 16
    assert float(r1_penalty(logit, x)) == pytest.approx(9 * 16)
