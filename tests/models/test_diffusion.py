"""The EDM diffusion plugin (models/diffusion.py): its equations against direct computations from the paper
(Karras et al. 2022, arXiv:2206.00364), classifier-free guidance, the Heun sampler, configs and errors.
Registry and capability contracts are covered by test_contracts.py / test_registration.py."""

from __future__ import annotations

import json
import math

import pytest
import torch

from exprbench.cli import main
from exprbench.runs.config import resolve_config
from exprbench.data import DataSpec
from exprbench.core.errors import ConfigError
from exprbench.runs.loader import load_trained
from exprbench.models.base import Batch
from exprbench.models.diffusion import (Diffusion, EDMLoss, cfg_denoiser, edm_precond, edm_sigmas, heun_sampler,
                                        precond_denoiser)

from ..conftest import write_csv
from .conftest import FER_SPEC, SPECS, TINY, images, tiny_model

SD = 0.5  # sigma_data


def perturbed(config: str = "default", spec: DataSpec = FER_SPEC, overrides=()) -> Diffusion:
    """A tiny model whose weights are all randomly moved (its zero-initialized layers made non-zero), so
    that F depends on x, sigma and the label."""
    model = tiny_model("diffusion", config, spec, overrides)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.nets["F"].parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    if model.ema is not None:
        model.update_ema()  # the first update copies the weights
    model.train(False)
    return model


def test_preconditioning_coefficients_are_the_papers():
    sigmas = [0.002, 0.1, 0.5, 1.0, 80.0]
    c_skip, c_out, c_in, c_noise = edm_precond(torch.tensor(sigmas, dtype=torch.float64), SD)
    for i, s in enumerate(sigmas):
        assert c_skip[i].item() == pytest.approx(SD ** 2 / (s ** 2 + SD ** 2), rel=1e-12)
        assert c_out[i].item() == pytest.approx(s * SD / math.sqrt(s ** 2 + SD ** 2), rel=1e-12)
        assert c_in[i].item() == pytest.approx(1 / math.sqrt(s ** 2 + SD ** 2), rel=1e-12)
        assert c_noise[i].item() == pytest.approx(math.log(s) / 4, rel=1e-12)
        # EDM sec. 5: the loss weight lambda = 1 / c_out^2 gives F's target unit weight
        assert ((s ** 2 + SD ** 2) / (s * SD) ** 2) * c_out[i].item() ** 2 == pytest.approx(1.0, rel=1e-12)
    assert c_skip[0] > 0.9999 and c_out[0] < 0.0021 and c_skip[-1] < 1e-4  # D ~ x at low noise, ~ F at high


def test_edm_loss_at_a_fixed_sigma_equals_the_direct_formula():
    model = perturbed()
    F = model.nets["F"]
    x, labels = images(4, FER_SPEC), torch.tensor([0, 3, 6, 7])  # 7 = the null class
    sigma = torch.tensor([0.01, 0.3, 2.0, 40.0])
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = model.loss(model.denoiser(F), x, labels, sigma=sigma, noise=noise)
        s = sigma.view(-1, 1, 1, 1)
        y = x + noise * s
        out = F(y / torch.sqrt(s ** 2 + SD ** 2), torch.log(sigma) / 4, labels)
        d = SD ** 2 / (s ** 2 + SD ** 2) * y + s * SD / torch.sqrt(s ** 2 + SD ** 2) * out
        want = (s ** 2 + SD ** 2) / (s * SD) ** 2 * (d - x) ** 2
    assert got.shape == x.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)  # float32; lambda(0.01) = 1e4


def test_edm_loss_draws_log_normal_sigmas():
    seen = []

    def D(y, sigma, labels):
        seen.append(sigma)
        return y

    torch.manual_seed(0)
    EDMLoss(-1.2, 1.2, SD)(D, torch.zeros(20000, 1, 1, 1), torch.zeros(20000, dtype=torch.long))
    log_sigma = seen[0].log()
    assert abs(log_sigma.mean().item() + 1.2) < 0.03 and abs(log_sigma.std().item() - 1.2) < 0.03


def test_sigma_steps_follow_eq_5():
    t = edm_sigmas(18, 0.002, 80.0, 7.0)
    assert t.shape == (19,) and t.dtype == torch.float64 and t[-1] == 0
    assert t[0].item() == pytest.approx(80.0) and t[17].item() == pytest.approx(0.002)
    i = 5
    want = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert t[i].item() == pytest.approx(want, rel=1e-12) and bool((t[:-1] > t[1:]).all())
    for bad in ((1, 0.002, 80.0), (18, 80.0, 0.002)):
        with pytest.raises(ValueError, match="model.sample_steps=1|model.sigma_min=80.0"):
            edm_sigmas(*bad)


def test_heun_sampler_takes_a_one_point_dataset_to_its_point():
    x0 = torch.linspace(-1, 1, 2 * 48 * 48).view(2, 1, 48, 48)
    calls = []

    def D(x, sigma):
        calls.append(sigma)
        return x0

    latents = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    out = heun_sampler(D, latents, edm_sigmas(18))
    assert len(calls) == 35  # 2N - 1 evaluations
    torch.testing.assert_close(out, x0.double(), rtol=0, atol=1e-9)


def test_heun_sampler_solves_the_ode_of_a_gaussian_dataset():
    """Data N(mu, s^2): D(x; sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu) exactly, the probability-flow ODE
    dx/dsigma = sigma / (s^2 + sigma^2) (x - mu) keeps (x - mu) / sqrt(s^2 + sigma^2) constant, so x_T =
    sigma_max z goes to mu + s (x_T - mu) / sqrt(s^2 + sigma_max^2); Heun's error falls as 1 / N^2."""
    mu, s = 0.3, 0.5
    latents = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    want = mu + s * (80.0 * latents.double() - mu) / math.sqrt(s ** 2 + 80.0 ** 2)

    def error(steps: int) -> float:
        out = heun_sampler(lambda x, sigma: mu + s ** 2 / (s ** 2 + sigma ** 2) * (x - mu), latents, edm_sigmas(steps))
        return (out - want).abs().max().item()

    e18, e72 = error(18), error(72)
    assert e18 < 0.15 and e72 < e18 / 10 and error(400) < 1e-3  # measured: 0.109, 0.0057, 0.00016


def test_guidance_zero_is_the_conditional_model():
    model = perturbed()
    labels = torch.tensor([0, 2, 5])
    latents = torch.randn(3, 1, 48, 48, generator=torch.Generator().manual_seed(3))
    D = model.denoiser(model.sampling_net())
    sigmas = edm_sigmas(model.cfg.sample_steps)
    with torch.no_grad():
        conditional = heun_sampler(lambda x, sigma: D(x, sigma, labels), latents, sigmas)
        guided = heun_sampler(cfg_denoiser(D, labels, model.null, 0.0), latents, sigmas)
    torch.testing.assert_close(guided, conditional, rtol=1e-4, atol=1e-4)
    sampled = model.sample(3, labels, torch.Generator().manual_seed(3))  # the same latents from the generator
    torch.testing.assert_close(sampled, (conditional / model.scale).float().clamp(-1, 1), rtol=1e-5, atol=1e-5)


def test_guided_denoiser_is_the_cfg_combination():
    model = perturbed()
    labels = torch.tensor([1, 4])
    x = torch.randn(2, 1, 48, 48, generator=torch.Generator().manual_seed(4))
    D = model.denoiser(model.sampling_net())
    with torch.no_grad():
        d_c, d_u = D(x, 1.5, labels), D(x, 1.5, torch.full_like(labels, model.null))
        torch.testing.assert_close(cfg_denoiser(D, labels, model.null, 2.0)(x, 1.5), 3 * d_c - 2 * d_u, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(d_c, d_u)
    g = torch.Generator
    plain = model.sample(2, labels, g().manual_seed(0))
    model.cfg.guidance = 2.0
    assert not torch.equal(model.sample(2, labels, g().manual_seed(0)), plain)


def test_tiny_model_trains_and_samples_every_class():
    model = tiny_model("diffusion", "default", FER_SPEC)
    x, c = images(8, FER_SPEC), torch.arange(8) % 7
    for step in range(3):
        logs = model.training_step(Batch(x, c), step)
        model.update_ema()
        assert math.isfinite(logs["loss"]) and logs["lr"] == model.cfg.lr
    model.train(False)
    rng = torch.get_rng_state()
    out = model.sample(7, torch.arange(7), torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), rng)  # sampling draws from its generator only
    assert out.shape == (7, 1, 48, 48) and out.dtype == torch.float32 and not out.is_inference()
    assert bool(torch.isfinite(out).all()) and out.min() >= -1 and out.max() <= 1
    assert model.nets["F"].training is False and model.sampling_net() is model.ema.module


def test_training_sees_the_images_at_std_sigma_data():
    model = tiny_model("diffusion", "default", FER_SPEC)
    seen, loss = [], model.loss
    model.loss = lambda D, x, labels: (seen.append(x), loss(D, x, labels))[1]
    x = images(4, FER_SPEC)
    model.training_step(Batch(x, torch.zeros(4, dtype=torch.long)), 0)
    torch.testing.assert_close(seen[0], x * (0.5 / model.cfg.data_std))


def test_label_dropout_and_learning_rate_ramp():
    model = tiny_model("diffusion", "default", FER_SPEC, ["model.label_dropout=0.5", "model.warmup_steps=4"])
    x, c = images(64, FER_SPEC), torch.zeros(64, dtype=torch.long)
    torch.manual_seed(0)
    logs = model.training_step(Batch(x, c), 0)
    assert 0.3 < logs["label_dropped"] < 0.7 and logs["lr"] == pytest.approx(model.cfg.lr / 4)
    assert model.lr_at(3) == model.lr_at(100) == model.cfg.lr


def test_rgb_64_images():
    spec = SPECS["rgb64"]
    model = tiny_model("diffusion", "reference", spec)
    model.training_step(Batch(images(2, spec), torch.tensor([0, 1])), 0)
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 64, 64)


def test_named_configs():
    ref = resolve_config("diffusion", "reference")
    m, t = ref.model_cfg, ref.train
    assert (m.ch, tuple(m.mult), m.blocks, tuple(m.attn_levels), m.dropout) == (128, (2, 2, 2), 4, (1,), 0.13)
    assert t.batch_size == 512 and t.steps == round(200e6 / 512) and m.warmup_steps == round(10e6 / 512)
    assert t.ema_decay == pytest.approx(0.5 ** (512 / 500_000), abs=1e-6)  # EMA half-life 0.5 Mimg
    assert (m.sigma_min, m.sigma_max, m.rho, m.sample_steps, m.p_mean, m.p_std) == (0.002, 80.0, 7.0, 18, -1.2, 1.2)
    default = resolve_config("diffusion", "default")
    assert default.train.batch_size == 64 and default.train.ema and default.model_cfg.ch == 16
    model = Diffusion(default.model_cfg, FER_SPEC)
    assert model.num_evaluations() == 35 and model.scale == pytest.approx(0.5 / 0.614)  # FER train std 0.614


@pytest.mark.parametrize("override, message", [
    ("model.sample_steps=1", r"model.sample_steps=1: must be >= 2"),
    ("model.guidance=-1", r"model.guidance=-1.0: must be >= 0"),
    ("model.label_dropout=1", r"model.label_dropout=1.0: must be < 1"),
    ("model.sigma_min=100", r"model.sigma_min=100.0, model.sigma_max=80.0: expected 0 < sigma_min < sigma_max"),
    ("model.attn_levels=[3]", r"model.attn_levels=\[3\]: expected levels in 0..2"),
    ("model.mult=[1,2,4,8,16,32]", r"images 48x48 not divisible by 2\*\*\(len\(model.mult\) - 1\) = 32"),
])
def test_bad_configs_are_refused_in_one_line(override, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        tiny_model("diffusion", "default", FER_SPEC, [override])


def test_precond_denoiser_accepts_a_scalar_or_one_sigma_per_image():
    model = perturbed()
    x, labels = images(2, FER_SPEC), torch.tensor([0, 1])
    with torch.no_grad():
        one = precond_denoiser(model.nets["F"], x, 0.7, labels)
        each = precond_denoiser(model.nets["F"], x, torch.tensor([0.7, 0.7]), labels)
    assert torch.equal(one, each) and one.dtype == torch.float32


def test_train_resume_and_sample_through_the_cli(tmp_path, capsys):
    """The harness: EMA, checkpoints (loaded with weights_only=True), resume, the sample grid and ``sample``."""
    data = write_csv(tmp_path / "fer2013.csv", per_class=4)
    out = tmp_path / "run"
    sets = [a for kv in [*TINY["diffusion"], "train.batch_size=8", "train.log_every=1", "train.samples_per_class=1",
                         "train.ckpt_every=1"] for a in ("--set", kv)]
    assert main(["train", "diffusion", "--data", str(data), "--out", str(out), "--steps", "1", *sets]) == 0, capsys.readouterr().err
    assert main(["train", "diffusion", "--data", str(data), "--out", str(out), "--steps", "2", "--resume", *sets]) == 0
    recs = [json.loads(r) for r in (out / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2] and all(math.isfinite(r["loss"]) for r in recs)
    code = main(["sample", str(out), "--label", "happy", "--label", "sad", "--n", "2", "--out", str(tmp_path / "g.png")])
    assert code == 0, capsys.readouterr().err
    _, model, _, step = load_trained(out)
    assert step == 2 and model.ema is not None and model.sampling_net() is model.ema.module


def test_published_weights_sample_like_the_run(tmp_path):
    """``exprbench.runs.weights``: the EMA copy of F is published alone and samples as the trained model does."""
    import dataclasses

    from exprbench.runs.weights import export_weights, load_weights

    model = tiny_model("diffusion", "default", FER_SPEC)
    model.training_step(Batch(images(4, FER_SPEC), torch.arange(4)), 0)
    model.update_ema()
    model.training_step(Batch(images(4, FER_SPEC, seed=1), torch.arange(4)), 1)
    model.update_ema()
    path = export_weights(model, dataclasses.asdict(FER_SPEC), 2, tmp_path / "w.safetensors")
    other = tiny_model("diffusion", "default", FER_SPEC, seed=9)
    assert load_weights(other, path) == 2
    want = model.sample(3, torch.tensor([0, 3, 6]), torch.Generator().manual_seed(0))
    assert torch.equal(other.sample(3, torch.tensor([0, 3, 6]), torch.Generator().manual_seed(0)), want)



def test_curve_sampling_uses_fewer_steps_and_sampling_info_says_so():
    from .conftest import FER_SPEC, tiny_model

    m = tiny_model("diffusion", "default", FER_SPEC, ["model.sample_steps=5", "model.curve_steps=2"])
    assert m.sampling_info() == {"sampler": "edm-heun", "steps": 5, "evaluations": 9, "guidance": 0.0}
    with m.curve_sampling():
        assert m.sampling_info()["steps"] == 2 and m.num_evaluations() == 3
    assert m.sampling_info()["steps"] == 5  # restored
    assert tiny_model("gan", "default", FER_SPEC).sampling_info() == {}  # other plugins record nothing
