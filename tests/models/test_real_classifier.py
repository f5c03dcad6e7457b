"""The separate real-face classifier C of the ACGAN, cGAN and CCycleGAN ``default`` configs: trained
on real faces only, read in eval mode for G's class loss, never changed by G's update, and left out of the published weights."""

from __future__ import annotations

import torch

from exprbench.runs.config import resolve_config
from exprbench.data import FER7, DataSpec
from exprbench.runs.loader import build_model
from exprbench.models.base import Batch

SPEC = DataSpec(1, 48, 48, FER7, "fer7")


def tiny(*overrides: str):
    torch.manual_seed(0)
    cfg = resolve_config("acgan", "default", ["model.ch=8", "model.cls_ch=8", "train.ema=false", *overrides])
    return build_model(cfg, SPEC, torch.device("cpu"))


def bars(n: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is a bright bar at a class-specific row (linearly separable), labels N."""
    c = torch.arange(7).repeat(n // 7)
    x = torch.full((n, 1, 48, 48), -1.0)
    for i, k in enumerate(c.tolist()):
        x[i, :, 6 * k:6 * k + 6] = 1.0
    return x, c


def test_default_uses_a_separate_classifier_and_reference_the_shared_head():
    assert resolve_config("acgan", "default").model_cfg.classifier == "separate"
    assert resolve_config("acgan", "reference").model_cfg.classifier == "shared"
    model = tiny()
    assert "C" in model.nets and "C" in model.optimizers and "C" in model.training_only_nets
    assert "C" not in tiny("model.classifier=shared").nets


def test_classifier_learns_real_labels():
    model = tiny()
    x, c = bars()
    accs = [model.training_step(Batch(x, c), s)["c_acc_real"] for s in range(30)]
    assert sum(accs[-5:]) / 5 > 0.6, accs  # chance is 1/7


def test_g_update_leaves_the_classifier_untouched():
    """G's class loss reads C in eval mode without gradients into C: C's weights and BatchNorm
    statistics after a G-only pass equal those before, and C is back in train mode."""
    model = tiny()
    x, c = bars(14)
    model.training_step(Batch(x, c), 0)
    C = model.nets["C"]
    before = {k: v.clone() for k, v in C.state_dict().items()}
    C.zero_grad(set_to_none=True)
    fake, c_fake = model.draw_fake(c, model.cfg.z_dim)
    logits = model._class_logits_for_g(fake, None)
    torch.nn.functional.cross_entropy(logits, c_fake).backward()
    assert all(torch.equal(before[k], v) for k, v in C.state_dict().items())
    assert all(p.grad is None or not p.grad.abs().sum() for p in C.parameters())
    assert C.training and any(p.grad is not None for p in model.nets["G"].parameters())


def test_cgan_default_reads_its_auxiliary_class_loss_from_the_real_face_classifier():
    torch.manual_seed(0)
    cfg = resolve_config("cgan", "default", ["model.ch=8", "model.cls_ch=8", "train.ema=false"])
    model = build_model(cfg, SPEC, torch.device("cpu"))
    assert cfg.model_cfg.aux_cls_weight == 1.0 and "C" in model.nets and "C" in model.training_only_nets
    x, c = bars(14)
    logs = model.training_step(Batch(x, c), 0)
    assert {"loss_c", "c_acc_real", "loss_cls_g"} <= set(logs)
    plain = build_model(resolve_config("cgan", "default", ["model.ch=8", "model.aux_cls_weight=0"]), SPEC,
                        torch.device("cpu"))
    assert "C" not in plain.nets and "loss_cls_g" not in plain.training_step(Batch(x, c), 0)


def test_ccyclegan_default_reads_its_target_class_loss_from_the_real_face_classifier():
    """CCycleGAN's ``default`` reads G's target-class loss from C (trained on real faces only),
    ``reference`` keeps D's class head; C is training-only and learns real labels."""
    assert resolve_config("ccyclegan", "reference").model_cfg.classifier == "shared"
    torch.manual_seed(0)
    cfg = resolve_config("ccyclegan", "default", ["model.ch=8", "model.cls_ch=8", "train.ema=false"])
    assert cfg.model_cfg.classifier == "separate"
    model = build_model(cfg, SPEC, torch.device("cpu"))
    assert "C" in model.nets and "C" in model.training_only_nets
    x, c = bars(14)
    logs = [model.training_step(Batch(x, c), s) for s in range(25)]
    assert {"loss_c", "c_acc_real", "acc_target_c", "acc_target_d"} <= set(logs[0])
    assert sum(step["c_acc_real"] for step in logs[-5:]) / 5 > 0.6, [step["c_acc_real"] for step in logs]
    picks = model._c_reads(4, torch.device("cpu"))  # one of each image's 6 translations (c_reads = 1)
    assert picks.shape == (4,) and torch.equal(picks // 6, torch.arange(4))
    shared = build_model(resolve_config("ccyclegan", "default", ["model.ch=8", "model.classifier=shared"]),
                         SPEC, torch.device("cpu"))
    assert "C" not in shared.nets and "acc_target_c" not in shared.training_step(Batch(x, c), 0)


def test_bicogan_default_reads_its_auxiliary_class_loss_from_the_real_face_classifier():
    """BiCoGAN's ``default`` adds G's class loss read from C (not from E's class head, which is updated
    with G); ``reference`` and ``aux_cls_weight=0`` are the paper's BiCoGAN without C."""
    assert resolve_config("bicogan", "reference").model_cfg.aux_cls_weight == 0
    torch.manual_seed(0)
    cfg = resolve_config("bicogan", "default", ["model.ch=8", "model.cls_ch=8", "train.ema=false"])
    model = build_model(cfg, SPEC, torch.device("cpu"))
    assert cfg.model_cfg.aux_cls_weight == 1.0 and "C" in model.nets and "C" in model.training_only_nets
    x, c = bars(14)
    logs = [model.training_step(Batch(x, c, epoch=0.0), s) for s in range(25)]
    assert {"loss_c", "c_acc_real", "loss_cls_g", "efl"} <= set(logs[0])
    assert sum(step["c_acc_real"] for step in logs[-5:]) / 5 > 0.6, [step["c_acc_real"] for step in logs]
    plain = build_model(resolve_config("bicogan", "default", ["model.ch=8", "model.aux_cls_weight=0"]), SPEC,
                        torch.device("cpu"))
    assert "C" not in plain.nets and "loss_cls_g" not in plain.training_step(Batch(x, c, epoch=0.0), 0)
