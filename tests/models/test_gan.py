"""models/gan.py: one CPU training step per config, the sampling contract, state round trip."""

from __future__ import annotations

import pytest

from .model_checks import one_step, sample_contract, state_roundtrip


@pytest.mark.parametrize("config", ["default", "reference"])
def test_training_step(config):
    one_step("gan", config)


@pytest.mark.parametrize("config", ["default", "reference"])
def test_sample_contract(config):
    sample_contract("gan", config)


def test_state_roundtrip():
    state_roundtrip("gan", "default")


@pytest.mark.parametrize("loss", ["bce", "hinge", "lsgan"])
def test_losses(loss):
    one_step("gan", "default", [f"model.loss={loss}"])
