"""models/bicogan.py: training steps, the EFL weight schedule, encode/translate shapes and label handling."""

from __future__ import annotations

import json
import math

import pytest
import torch

from exprbench.runs.config import resolve_config
from exprbench.data import FER7, LABEL_SETS, DataSpec
from exprbench.runs.harness import Trainer
from exprbench.runs.loader import build_model
from exprbench.models.base import Batch
from exprbench.models.bicogan import efl_gamma


FER6 = DataSpec(1, 48, 48, LABEL_SETS["fer6"], "fer6")
FER7_SPEC = DataSpec(1, 48, 48, FER7, "fer7")


def tiny(config: str = "default", spec: DataSpec = FER7_SPEC, overrides=()):
    torch.manual_seed(0)
    return build_model(resolve_config("bicogan", config, ["model.ch=8", *overrides]), spec, torch.device("cpu"))


@pytest.mark.parametrize("config, overrides", [("default", []), ("reference", []),
                                               ("default", ["model.real_c=encoded", "model.loss=bce"])])
def test_training_step_updates_g_e_d_and_logs_efl(config, overrides):
    spec = FER6 if config == "reference" else FER7_SPEC
    model = tiny(config, spec, overrides)
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    batch = Batch(torch.rand(4, 1, 48, 48) * 2 - 1, torch.randint(0, spec.num_classes, (4,)))
    logs = model.training_step(batch, 0)
    assert {"efl", "efl_gamma", "acc_enc", "loss_d", "loss_ge"} <= set(logs)
    assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values())
    assert logs["efl_gamma"] == 1.0  # alpha at t = 0
    after = model.nets.state_dict()
    for net in ("G", "E", "D"):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(net + ".")), net


def test_efl_gamma_schedule_values():
    assert efl_gamma(0, 1.0, 0.5, 10.0) == 1.0
    assert efl_gamma(2, 1.0, 0.5, 10.0) == pytest.approx(math.e)
    assert efl_gamma(2, 0.5, 0.25, 10.0) == pytest.approx(0.5 * math.exp(0.5))
    assert efl_gamma(4.6, 1.0, 0.5, 10.0) == pytest.approx(math.exp(2.3))
    assert efl_gamma(5, 1.0, 0.5, 10.0) == 10.0  # capped at phi
    assert efl_gamma(1e9, 1.0, 0.5, 10.0) == 10.0  # no overflow
    model = tiny(overrides=["model.efl_alpha=2", "model.efl_rho=0.1", "model.efl_phi=3"])
    assert model.gamma(0.0) == 2.0
    assert model.gamma(4.0) == pytest.approx(2 * math.exp(0.1 * 4))
    assert model.gamma(1000.0) == 3.0


def test_efl_gamma_logged_by_the_harness_in_epochs(tmp_path, tiny_dataset):
    n_train = len(tiny_dataset.split("train"))  # 42
    cfg = resolve_config("bicogan", "default", ["model.ch=8", "train.batch_size=7", "train.steps=4", "train.log_every=1",
                                                "train.sample_every=0", "train.samples_per_class=1", "model.efl_rho=1.0",
                                                "model.efl_phi=100"])
    Trainer(cfg, tmp_path / "run", dataset=tiny_dataset, progress=False).run()
    recs = [json.loads(x) for x in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    gammas = [r["efl_gamma"] for r in recs]
    # record of step s holds the step index s - 1: t = (s - 1) * 7 / 42 epochs
    assert gammas == pytest.approx([math.exp((s - 1) * 7 / n_train) for s in (1, 2, 3, 4)])
    assert all("efl" in r for r in recs)


def test_reference_config_facts():
    cfg = resolve_config("bicogan", "reference")
    assert cfg.data.label_set == "fer6" and cfg.data.augment.rotate == (-50.0, 30.0) and not cfg.data.augment.hflip
    assert cfg.train.batch_size == 128 and cfg.train.steps == 18610 and cfg.model_cfg.z_dim == 100
    assert cfg.model_cfg.lr_g == 2e-4 and cfg.model_cfg.betas[0] == 0.5 and cfg.model_cfg.loss == "bce"
    model = build_model(cfg, FER6, torch.device("cpu"))
    assert model.nets["D"].out[0].in_features == 100 + 1152 + 2304  # [z, x_feat 3x3x128, label 48*48]
    assert model.nets["D"].out[-1].in_features == 1024  # the hidden layer of the paper's D (fixed bug 5)
    assert model.nets["E"].c.out_features == 6  # E predicts c (a bug of the original fixed)


def test_encode_translate_shapes_and_labels():
    model = tiny()
    x = torch.rand(5, 1, 48, 48) * 2 - 1
    enc = model.encode(x)
    assert enc["z"].shape == (5, 128) and enc["c_logits"].shape == (5, 7)
    y = model.translate(x, torch.tensor([0, 1, 2, 3, 6]))
    assert y.shape == x.shape and y.dtype == torch.float32 and float(y.abs().max()) <= 1
    # translate = G(E_z(x), c_target); reconstruct without c uses the predicted class
    pred = enc["c_logits"].argmax(1)
    assert torch.allclose(model.reconstruct(x), model.translate(x, pred), atol=1e-6)
    assert torch.allclose(model.reconstruct(x, pred), model.translate(x, pred, c_source=pred), atol=1e-6)
    for bad in (torch.tensor([0, 1, 2, 3, 7]), torch.tensor([0, 1, -1, 3, 4]), torch.zeros(4, dtype=torch.long),
                torch.zeros(5)):
        with pytest.raises(ValueError, match=r"(integer labels in|outside) 0\.\.6|labels for \d+ images"):
            model.translate(x, bad)
    with pytest.raises(ValueError, match="expected float images"):
        model.translate(torch.zeros(5, 1, 48, 48, dtype=torch.uint8), torch.zeros(5, dtype=torch.long))
    assert model.capabilities == {"sample", "conditional", "encode", "translate"}


def test_celeba_shape_from_spec():
    spec = DataSpec(3, 64, 64, ("not_smiling", "smiling"), "celeba")
    for config in ("default", "reference"):
        model = tiny(config, spec)
        model.training_step(Batch(torch.rand(2, 3, 64, 64) * 2 - 1, torch.tensor([0, 1])), 0)
        assert model.translate(torch.zeros(2, 3, 64, 64), torch.tensor([1, 0])).shape == (2, 3, 64, 64)
        assert model.encode(torch.zeros(2, 3, 64, 64))["c_logits"].shape == (2, 2)


def test_recon_variant_adds_an_l1_reconstruction_that_reaches_e():
    assert tiny("recon").cfg.recon_weight > 0 and tiny().cfg.recon_weight == 0  # the faithful default has none
    x, c = torch.rand(4, 1, 48, 48) * 2 - 1, torch.randint(0, 7, (4,))
    assert tiny("recon").training_step(Batch(x, c), 0)["loss_rec"] > 0
    grads = {}
    for w in (0.0, 1.0):  # the same nets and noise; only the reconstruction term differs
        model = tiny(overrides=[f"model.recon_weight={w}", "model.aux_cls_weight=0"])
        torch.manual_seed(1)
        loss, logs = model.g_objective(Batch(x, c), None)
        model.nets.zero_grad()
        loss.backward()
        grads[w] = torch.cat([q.grad.flatten() for q in model.nets["E"].parameters() if q.grad is not None])
    assert ("loss_rec" in logs) and not torch.allclose(grads[0.0], grads[1.0])
