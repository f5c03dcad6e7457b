"""Conditioning reaches the nets, fake labels follow the data, the EMA generator is normalised for its
own weights, and sample grids repeat one latent down each column (issue: trained CPU leaderboard)."""

from __future__ import annotations

import pytest
import torch

from exprbench.runs.config import resolve_config
from exprbench.data import FER7, DataSpec
from exprbench.runs.loader import build_model, class_grid
from exprbench.models.base import Batch

SPEC = DataSpec(1, 48, 48, FER7, "fer7")
CONDITIONAL_GZC = ["cgan", "acgan", "bicogan"]


def tiny(name: str, *overrides: str, ema: bool = False):
    torch.manual_seed(0)
    cfg = resolve_config(name, "default", ["model.ch=8", f"train.ema={str(ema).lower()}", *overrides])
    return build_model(cfg, SPEC, torch.device("cpu"))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", CONDITIONAL_GZC)
def test_different_c_same_z_gives_different_images(name):
    model = tiny(name)
    # cBN starts at gain 1, bias 0 for every class: one update gives the classes of the batch their own
    model.training_step(Batch(torch.rand(6, 1, 48, 48) * 2 - 1, torch.tensor([3, 5, 3, 5, 3, 5])), 0)
    model.train(False)
    a = model.sample(2, torch.tensor([3, 3]), gen(1))
    b = model.sample(2, torch.tensor([5, 5]), gen(1))
    assert torch.equal(model.sample(2, torch.tensor([3, 3]), gen(1)), a)  # same z, same c: same image
    assert (a - b).abs().mean() > 1e-6  # same z, other c: another image (cBN reaches G)


def test_projection_d_and_bicogan_d_depend_on_c_per_input():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    cgan = tiny("cgan")
    D = cgan.nets["D"]
    s0, s1 = D(x, torch.tensor([0, 0])), D(x, torch.tensor([6, 6]))
    assert (s0 - s1).abs().min() > 0  # the class embedding reaches D's score
    bico = tiny("bicogan", "model.arch=reference")
    Dr = bico.nets["D"]
    z = torch.randn(2, bico.cfg.z_dim)
    one = torch.eye(7)
    with torch.no_grad():
        d0 = Dr(x, z, one[[0, 0]])[0] - Dr(x, z, one[[6, 6]])[0]
    # with the hidden layer, a change of c no longer shifts every (x, z) by the same amount
    assert abs(float(d0[0] - d0[1])) > 1e-6


@pytest.mark.parametrize("name", ["cgan", "acgan"])
def test_fake_labels_follow_the_real_batch(name):
    model = tiny(name)
    c = torch.tensor([3, 3, 3, 1, 0, 3])
    fake, c_fake = model.draw_fake(c, model.cfg.z_dim)
    assert torch.equal(c_fake, c) and fake.shape == (6, 1, 48, 48)


def test_acgan_default_d_class_head_learns_real_labels():
    """On images whose class is a bright bar at a class-specific row, D's class head must learn the
    real labels (d_acc_real well above chance) within a few dozen steps."""
    torch.manual_seed(0)
    model = tiny("acgan", "model.lr_d=1e-3")
    n = 28
    c = torch.arange(7).repeat(n // 7)
    x = torch.full((n, 1, 48, 48), -1.0)
    for i, k in enumerate(c.tolist()):
        x[i, :, 6 * k:6 * k + 6] = 1.0
    accs = [model.training_step(Batch(x, c), s)["d_acc_real"] for s in range(40)]
    assert sum(accs[-5:]) / 5 > 0.6, accs  # chance is 1/7
    assert model.cfg.cls_fake_d == 0.0 and resolve_config("acgan", "reference").model_cfg.cls_fake_d == 1.0


def test_ema_batchnorm_statistics_are_recomputed_for_the_averaged_weights():
    model = tiny("cgan", ema=True)
    x, c = torch.rand(8, 1, 48, 48) * 2 - 1, torch.randint(0, 7, (8,))
    for s in range(3):
        model.training_step(Batch(x, c), s)
        model.update_ema()
    rng = torch.get_rng_state()
    G = model.sampling_net()
    assert torch.equal(torch.get_rng_state(), rng)  # the training's random stream is untouched
    bn = G.norms[0].bn
    # the first BN sees fc(z) for the calibration latents: its running mean is their mean
    g = gen(20141210)
    n_batches, size = model.ema_bn_batches
    feats = []
    with torch.no_grad():
        for _ in range(n_batches):
            z, _ = model.latent_inputs(size, model.cfg.z_dim, g)
            feats.append(G.fc(z).view(size, G.c0, G.bh, G.bw))
    mean = torch.cat(feats).mean(dim=(0, 2, 3))
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    train_bn = model.nets["G"].norms[0].bn
    assert not torch.allclose(bn.running_mean, train_bn.running_mean)
    # idempotent: a second call changes nothing until the next update
    before = bn.running_var.clone()
    assert torch.equal(model.sampling_net().norms[0].bn.running_var, before)


def test_sample_grid_repeats_one_latent_down_each_column():
    model = tiny("cgan")
    model.train(False)
    imgs, rows = class_grid(model, SPEC, per_class=3, seed=7)
    assert rows == list(FER7) and imgs.shape == (21, 1, 48, 48)
    for r in (0, 4):
        for j in range(3):
            cell = model.sample(1, torch.tensor([r]), gen(7 + j))
            assert torch.equal(imgs[r * 3 + j], ((cell[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
