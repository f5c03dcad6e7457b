"""models/acgan.py: model-specific facts (the shared contract is tests/models/test_contracts.py)."""

from __future__ import annotations

from .conftest import FER_SPEC, tiny_model, train_once


def test_class_loss_logged():
    logs = train_once(tiny_model("acgan", "default", FER_SPEC, ["model.cls_weight=2.0"]), FER_SPEC)
    assert {"loss_cls_d", "loss_cls_g", "d_acc_real", "d_acc_fake", "loss_c", "c_acc_real"} <= set(logs)


def test_shared_classifier_has_no_c():
    model = tiny_model("acgan", "reference", FER_SPEC)
    assert "C" not in model.nets and "loss_c" not in train_once(model, FER_SPEC)
