"""models/cgan.py: one CPU training step per config, the sampling contract, state round trip."""

from __future__ import annotations

import pytest

from .model_checks import one_step, sample_contract, state_roundtrip


@pytest.mark.parametrize("config", ["default", "reference"])
def test_training_step(config):
    one_step("cgan", config)


@pytest.mark.parametrize("config", ["default", "reference"])
def test_sample_contract(config):
    sample_contract("cgan", config)


def test_state_roundtrip():
    state_roundtrip("cgan", "default")
