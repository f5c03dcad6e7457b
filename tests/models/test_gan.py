"""models/gan.py: model-specific facts (the shared contract is tests/models/test_contracts.py)."""

from __future__ import annotations

import pytest

from .conftest import FER_SPEC, tiny_model, train_once


@pytest.mark.parametrize("loss", ["bce", "hinge", "lsgan"])
def test_losses(loss):
    logs = train_once(tiny_model("gan", "default", FER_SPEC, [f"model.loss={loss}"]), FER_SPEC)
    assert {"loss_d", "loss_g", "d_real", "d_fake"} <= set(logs)
