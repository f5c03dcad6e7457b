"""models/acgan.py: one CPU training step per config, the sampling contract, state round trip."""

from __future__ import annotations

import pytest

from .model_checks import one_step, sample_contract, state_roundtrip


@pytest.mark.parametrize("config", ["default", "reference"])
def test_training_step(config):
    one_step("acgan", config)


@pytest.mark.parametrize("config", ["default", "reference"])
def test_sample_contract(config):
    sample_contract("acgan", config)


def test_state_roundtrip():
    state_roundtrip("acgan", "default")


def test_class_loss_logged():
    logs = one_step("acgan", "default", ["model.cls_weight=2.0"])
    assert {"loss_cls_d", "loss_cls_g", "d_acc_real", "d_acc_fake"} <= set(logs)
