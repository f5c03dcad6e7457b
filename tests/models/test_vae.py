"""models/vae.py: training steps, the KL schedule, encode/translate, likelihood bounds, editing, the harness."""

from __future__ import annotations

import json
import math

import pytest
import torch

from exprbench.runs.config import resolve_config
from exprbench.data import FER7, DataSpec
from exprbench.core.errors import ConfigError
from exprbench.runs.harness import Trainer
from exprbench.runs.loader import build_model
from exprbench.models.base import Batch
from exprbench.models.likelihoods import quantize


SPEC = DataSpec(1, 48, 48, FER7, "fer7")
CELEBA = DataSpec(3, 64, 64, ("not_smiling", "smiling"), "celeba-Smiling")
LOGS = {"loss", "recon", "kl", "beta_eff", "bpd", "active_dims"}


def tiny(config: str = "default", spec: DataSpec = SPEC, overrides=()):
    torch.manual_seed(0)
    return build_model(resolve_config("vae", config, ["model.ch=8", "model.z_dim=16", *overrides]), spec,
                       torch.device("cpu"))


def images(n: int, spec: DataSpec = SPEC, seed: int = 0) -> torch.Tensor:
    """n smooth-ish random images on the 256-level grid, float32 in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    small = torch.randint(0, 256, (n, spec.channels, spec.height // 4, spec.width // 4), generator=g)
    return small.repeat_interleave(4, 2).repeat_interleave(4, 3).float() / 127.5 - 1


def labels(n: int, k: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("config", ["default", "reference"])
def test_training_step_updates_e_and_g(config):
    model = tiny(config)
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    logs = model.training_step(Batch(images(8), labels(8)), 0)
    assert LOGS <= set(logs)
    assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values())
    assert logs["kl"] > 0 and logs["bpd"] > 0 and 0 <= logs["active_dims"] <= 16
    after = model.nets.state_dict()
    for net in ("E", "G"):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(net + ".")), net


def test_kl_warmup_and_free_bits():
    model = tiny(overrides=["model.beta=4", "model.kl_warmup=0.4"])
    assert [model.beta_at(p) for p in (0, 0.1, 0.2, 0.4, 1.0)] == pytest.approx([0, 1, 2, 4, 4])
    assert tiny("reference").beta_at(0) == 1.0  # no warm-up: beta from the start
    batch = Batch(images(4), labels(4), progress=0.2)
    assert model.training_step(batch, 50)["beta_eff"] == pytest.approx(2.0)
    # free bits: the KL term is sum_j max(free_bits, mean KL_j); a floor above every KL_j gives z_dim * floor
    fb = tiny(overrides=["model.free_bits=1000", "model.kl_warmup=0", "model.beta=0.5"])
    logs = fb.training_step(batch, 0)
    assert logs["loss"] == pytest.approx(logs["recon"] + 0.5 * 16 * 1000, rel=1e-6)
    assert logs["kl"] < 1000  # the logged KL is the true one


def test_reference_config_facts():
    cfg = resolve_config("vae", "reference")
    m = cfg.model_cfg
    assert (m.arch, m.z_dim, m.channels, m.likelihood, m.beta, m.kl_warmup, m.free_bits, m.lr) == \
        ("reference", 100, (32, 64, 128, 256), "bernoulli", 1.0, 0, 0.0, 1e-3)
    assert cfg.train.batch_size == 256 and cfg.train.steps == 2243 and not cfg.data.augment.hflip
    model = build_model(cfg, SPEC, torch.device("cpu"))
    assert model.nets["E"].head.in_features == 256 * 3 * 3 and model.nets["E"].head.out_features == 200
    assert model.nets["G"].fc[0].in_features == 100 + 7  # [z | onehot c]
    assert model.capabilities == {"sample", "conditional", "encode", "translate", "likelihood", "iw_likelihood", "edit"}
    assert not model.likelihood_exact and model.edit_mode == "offset"
    for bad in (["model.likelihood=gauss"], ["model.arch=dcgan"], ["model.channels=[8,8,8,8,8]"]):
        with pytest.raises(ConfigError):
            build_model(resolve_config("vae", "default", bad), SPEC, torch.device("cpu"))


@pytest.mark.parametrize("config", ["default", "reference"])
def test_sample_refuses_bad_labels(config):
    with pytest.raises(ValueError, match=r"(integer labels in|outside) 0\.\.6|labels for \d+ images"):
        tiny(config).sample(2, torch.tensor([0, 7]))


def test_encode_reconstruct_translate_shapes_and_labels():
    model = tiny()
    model.training_step(Batch(images(8), labels(8)), 0)
    x, c = images(5, seed=3), labels(5, seed=4)
    enc = model.encode(x)
    assert enc["z"].shape == (5, 16) and enc["c_logits"].shape == (5, 7) and enc["c_logits"].dtype == torch.float32
    pred = enc["c_logits"].argmax(1)
    mu, logvar = model.encode_with(x, pred)
    assert mu.shape == logvar.shape == (5, 16)
    assert torch.allclose(enc["z"], mu, atol=1e-5)  # z = mu under the inferred c
    # reconstruct without c uses the inferred class; translate = D(mu(x, c_source), c_target)
    assert torch.allclose(model.reconstruct(x), model.reconstruct(x, pred), atol=1e-5)
    assert torch.allclose(model.reconstruct(x), model.translate(x, pred), atol=1e-5)
    y = model.translate(x, torch.tensor([0, 1, 2, 3, 6]), c_source=c)
    assert y.shape == x.shape and y.dtype == torch.float32 and float(y.abs().max()) <= 1
    assert torch.allclose(model.reconstruct(x, c), model.translate(x, c, c_source=c), atol=1e-6)
    assert torch.allclose(model.decode(model.encode_with(x, c)[0], torch.tensor([0, 1, 2, 3, 6])), y, atol=1e-6)
    for bad in (torch.tensor([0, 1, 2, 3, 7]), torch.tensor([0, 1, -1, 3, 4]), torch.zeros(4, dtype=torch.long),
                torch.zeros(5)):
        with pytest.raises(ValueError, match=r"(integer labels in|outside) 0\.\.6|labels for \d+ images"):
            model.translate(x, bad)
        with pytest.raises(ValueError, match=r"(integer labels in|outside) 0\.\.6|labels for \d+ images"):
            model.translate(x, c, c_source=bad)
        with pytest.raises(ValueError, match=r"(integer labels in|outside) 0\.\.6|labels for \d+ images"):
            model.reconstruct(x, bad)
    with pytest.raises(ValueError, match="expected float images"):
        model.encode(torch.zeros(5, 1, 48, 48, dtype=torch.uint8))
    with pytest.raises(ValueError, match="expected float images"):
        model.reconstruct(torch.zeros(5, 1, 32, 32))
    with pytest.raises(ValueError, match="needs labels"):
        model.encode_with(x, None)


@pytest.mark.parametrize("config", ["default", "reference"])
def test_likelihood_bounds(config):
    # a few steps on the test images, so that log p(x | z) depends on z and the IWAE gap is well above
    # the Monte Carlo noise (at initialization the decoder's scale is broad and the gap is ~1e-5 bits)
    model = tiny(config, overrides=["model.kl_warmup=0", "model.lr=3e-3"])
    x, c = images(16, seed=9), labels(16, seed=9)
    for s in range(10):
        model.training_step(Batch(x, c), s)
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    bpd = model.bits_per_dim(x, c, g(0))
    assert bpd.shape == (16,) and bpd.dtype == torch.float32
    assert bool(torch.isfinite(bpd).all()) and bool((bpd > 0).all())
    assert torch.equal(bpd, model.bits_per_dim(x, c, g(0)))  # reproducible with a seeded generator
    assert torch.allclose(bpd, model.bits_per_dim(x + 0.3 / 255, c, g(0)))  # evaluated on the 256 levels
    # IWAE (Burda et al. 2016): E[iw bound] <= E[ELBO bound], in bits; independent noise on each side
    elbo = model.bits_per_dim(x, c, g(1), samples=16)
    iw = model.iw_bits_per_dim(x, c, k=16, generator=g(2))
    assert iw.shape == (16,) and bool(torch.isfinite(iw).all())
    assert float(iw.mean()) < float(elbo.mean())
    assert float(model.iw_bits_per_dim(x, c, k=64, generator=g(3)).mean()) <= float(iw.mean()) + 1e-4
    # without labels: the class-marginal bound -log sum_c (1/K) exp(ELBO_c), classes drawn in order from g
    marg = model.bits_per_dim(x, None, g(4))
    gen, scale = g(4), model.dims * math.log(2)
    per = torch.stack([-model.bits_per_dim(x, torch.full((16,), k), gen) * scale for k in range(7)])
    assert torch.allclose(marg, -(torch.logsumexp(per, 0) - math.log(7)) / scale, rtol=1e-5)
    assert bool((marg <= per.neg().min(0).values / scale + math.log2(7) / model.dims + 1e-5).all())
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError):
            model.iw_bits_per_dim(x, c, k=bad)
    with pytest.raises(ValueError, match=r"integer labels|outside 0\.\.|labels for \d+ images"):
        model.bits_per_dim(x, torch.full((16,), 7))


def test_celeba_shape_from_spec():
    for config in ("default", "reference"):
        model = tiny(config, CELEBA)
        logs = model.training_step(Batch(images(2, CELEBA), torch.tensor([0, 1])), 0)
        assert all(math.isfinite(v) for v in logs.values())
        assert model.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 3, 64, 64)
        assert model.encode(images(2, CELEBA))["c_logits"].shape == (2, 2)
        assert model.translate(images(2, CELEBA), torch.tensor([1, 0])).shape == (2, 3, 64, 64)
        assert model.bits_per_dim(images(2, CELEBA), torch.tensor([0, 1])).shape == (2,)
        assert model.edit_start(2).shape == (2, 16 + 2)
    with pytest.raises(ConfigError, match="divisible"):
        build_model(resolve_config("vae", "default", ["model.channels=[8,8,8,8,8,8,8]"]), CELEBA, torch.device("cpu"))


def test_edit_api():
    model = tiny()
    model.training_step(Batch(images(16), labels(16)), 0)
    with pytest.raises(RuntimeError, match="edit_fit"):
        model.edit_direction(0)
    fit_x, fit_c = images(28, seed=5), torch.arange(7).repeat(4)
    model.edit_fit(fit_x, fit_c)
    D = 16 + 7
    # start latents: [z | onehot c], the draws of sample(), so decoding them gives the samples
    w0 = model.edit_start(6, torch.Generator().manual_seed(0), labels=torch.tensor([0, 1, 2, 3, 4, 5]))
    assert w0.shape == (6, D) and w0.dtype == torch.float32
    assert torch.equal(w0[:, 16:], torch.eye(7)[:6])
    assert torch.allclose(model.edit_decode(w0), model.sample(6, torch.tensor([0, 1, 2, 3, 4, 5]),
                                                              torch.Generator().manual_seed(0)), atol=1e-6)
    assert torch.allclose(model.edit_decode(model.edit_start(3, torch.Generator().manual_seed(1))),
                          model.sample(3, generator=torch.Generator().manual_seed(1)), atol=1e-6)
    # encoded latents: decoding them reconstructs
    x, c = images(4, seed=6), torch.tensor([0, 3, 5, 6])
    we = model.edit_encode(x, c)
    assert we.shape == (4, D) and torch.allclose(model.edit_decode(we), model.reconstruct(x, c), atol=1e-6)
    assert model.edit_encode(x).shape == (4, D)
    # directions: attribute vectors; label part onehot(e) - frequencies of the others (balanced: 1/6 each)
    for t in range(7):
        v = model.edit_direction(t)
        assert v.shape == (D,) and v.dtype == torch.float32
        assert torch.allclose(v[16:], torch.eye(7)[t] - (1 - torch.eye(7)[t]) / 6, atol=1e-6)
        mu = model.encode_with(fit_x, fit_c)[0]
        assert torch.allclose(v[:16], mu[fit_c == t].mean(0) - mu[fit_c != t].mean(0), atol=1e-5)
        # strength 0 is the identity; strength 1 makes the target the largest label entry
        assert torch.equal(model.edit_move(w0, t, 0.0), w0)
        assert torch.equal(model.edit_decode(model.edit_move(w0, t, 0.0)), model.edit_decode(w0))
        assert bool((model.edit_move(w0, t, 1.0)[:, 16:].argmax(1) == t).all())
        img = model.edit_decode(model.edit_move(we, t, 1.0))
        assert img.shape == (4, 1, 48, 48) and float(img.abs().max()) <= 1
    # conditional manipulation: the keep component is projected out, the length kept
    v, u = model.edit_direction(2, keep=5), model.edit_direction(5)
    assert float(v @ u) == pytest.approx(0.0, abs=1e-4)
    assert float(v.norm()) == pytest.approx(float(model.edit_direction(2).norm()))
    for bad in (dict(target=7), dict(target=-1), dict(target=2, keep=2), dict(target=2, keep=9)):
        with pytest.raises(ValueError):
            model.edit_direction(**bad)
    with pytest.raises(ValueError, match="edit latents"):
        model.edit_decode(torch.zeros(2, 16))
    # z-only attribute vectors: the label part stays
    z_only = tiny(overrides=["model.edit_labels=false"])
    z_only.edit_fit(fit_x, fit_c)
    assert torch.equal(z_only.edit_direction(3)[16:], torch.zeros(7))


def test_trainer_runs_two_steps(tmp_path, tiny_dataset):
    cfg = resolve_config("vae", "default", ["model.ch=8", "model.z_dim=16", "train.batch_size=7", "train.steps=2",
                                            "train.log_every=1", "train.sample_every=0", "train.samples_per_class=1",
                                            "train.ema=true"])
    Trainer(cfg, tmp_path / "run", dataset=tiny_dataset, progress=False).run()
    recs = [json.loads(x) for x in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(LOGS <= set(r) for r in recs)
    # warm-up over 30% of the budget: step index 0 at progress 0, step index 1 at 1/2 > 0.3
    assert [r["beta_eff"] for r in recs] == pytest.approx([0.0, 1.0])  # the default's beta 1
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "completed"
    assert list((tmp_path / "run" / "samples").glob("*.png"))


def test_quantize():
    x = torch.tensor([-1.2, -1.0, -0.999, 0.0, 0.5, 1.0, 1.3])
    q = quantize(x)
    assert torch.equal(((q + 1) * 127.5).round(), torch.tensor([0.0, 0, 0, 128, 191, 255, 255]))


def test_class_prior_kl_matches_torch_distributions():
    from torch.distributions import Normal, kl_divergence

    from exprbench.models.vae_nets import GaussianPrior

    torch.manual_seed(0)
    p = GaussianPrior(5, 3)
    with torch.no_grad():
        p.mu.normal_()
        p.logvar.normal_(0, 0.3)
    mu, logvar, c = torch.randn(4, 5), torch.randn(4, 5) * 0.2, torch.tensor([0, 2, 1, 2])
    want = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(p.mu[c], (0.5 * p.logvar[c]).exp()))
    assert torch.allclose(p.kl(mu, logvar, c), want, atol=1e-5)
    z = torch.randn(4, 5)
    lp = Normal(p.mu[c], (0.5 * p.logvar[c]).exp()).log_prob(z).sum(1) + 0.5 * 5 * math.log(2 * math.pi)
    assert torch.allclose(p.log_prob(z, c), lp, atol=1e-5)
    assert not list(GaussianPrior(5, 0).parameters())  # the standard prior has nothing to learn


def _class_faces(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, 7, (n,), generator=g)
    low = torch.rand(n, 1, 6, 6, generator=g) * 0.3 + (c.view(-1, 1, 1, 1).float() / 7.0) * 0.7
    x = torch.nn.functional.interpolate(low, size=(48, 48), mode="bilinear", align_corners=False)
    return (x * 255).round() / 127.5 - 1.0, c


def test_class_loss_on_decoded_prior_samples_trains_d_and_the_prior_not_c(monkeypatch):
    """CE(C(D(z, c)), c) with z ~ p(z | c): its gradient reaches D and the learned prior; C learns from real faces only."""
    m = tiny(overrides=["model.prior=class", "model.cls_weight=1.0", "model.cls_ch=4", "model.kl_warmup=0"])
    assert "C" in m.nets and "P" in m.nets and m.training_only_nets == {"C"}
    x, c = _class_faces(16, 0)
    logs = m.training_step(Batch(x, c, epoch=0.0, progress=1.0), 0)
    assert {"loss_cls_g", "c_acc_gen", "loss_c", "c_acc_real"} <= set(logs)
    grads = {}
    m.nets["C"].zero_grad(set_to_none=True)
    z = m.prior.sample(torch.randn(16, m.cfg.z_dim), c)
    loss = torch.nn.functional.cross_entropy(m.real_classifier_logits(m.image(m.nets["G"](z, m._onehot(c)))), c)
    loss.backward()
    for name in ("G", "P", "C"):
        grads[name] = sum(float(p.grad.abs().sum()) for p in m.nets[name].parameters() if p.grad is not None)
    assert grads["G"] > 0 and grads["P"] > 0 and grads["C"] == 0


def test_the_class_prior_is_where_samples_come_from():
    m = tiny(overrides=["model.prior=class"])
    with torch.no_grad():
        m.prior.mu[3] = 5.0
        m.prior.logvar[3] = math.log(0.01)
    w = m.edit_start(4, torch.Generator().manual_seed(0), torch.full((4,), 3))
    assert torch.allclose(w[:, : m.cfg.z_dim], torch.full((4, m.cfg.z_dim), 5.0), atol=0.5)
