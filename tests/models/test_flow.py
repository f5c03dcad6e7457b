"""models/flow.py: Glow training step, exact invertibility, bits/dim against hand-computed densities and an
autograd Jacobian, sampling, encoding, the edit API, input checks, other image shapes, the harness."""

from __future__ import annotations

import json
import math

import pytest
import torch

from exprbench.cli import main
from exprbench.core.errors import ConfigError
from exprbench.runs.config import resolve_config
from exprbench.data import FER7, DataSpec
from exprbench.runs.loader import build_model, load_trained
from exprbench.models.base import Batch
from exprbench.models.flow import Flow, dequantize, latent_shapes

from ..conftest import write_csv

SPEC = DataSpec(1, 48, 48, FER7, "fer7")
CELEBA = DataSpec(3, 64, 64, ("not_smiling", "smiling"), "celeba-Smiling")
TINY = ["model.levels=2", "model.steps_per_level=2", "model.ch=16"]
LOG2PI = math.log(2 * math.pi)


def tiny(spec: DataSpec = SPEC, overrides=(), config: str = "default") -> Flow:
    torch.manual_seed(0)
    return build_model(resolve_config("flow", config, [*TINY, *overrides]), spec, torch.device("cpu"))


def images(n: int, spec: DataSpec = SPEC, seed: int = 0) -> torch.Tensor:
    """n random uint8-valued images in [-1, 1] (x_int / 127.5 - 1)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, spec.channels, spec.height, spec.width), generator=g).float() / 127.5 - 1


def perturb(model: Flow, scale: float = 0.05, seed: int = 1) -> Flow:
    """Random non-zero weights everywhere (the couplings start as zero maps) and a data-initialized actnorm."""
    g = torch.Generator().manual_seed(seed)
    x = images(16, model.spec, seed)
    model.net.data_init(dequantize(((x + 1) * 127.5).round(), 0.5))
    with torch.no_grad():
        for p in model.nets.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def test_training_step_updates_parameters_and_logs_floats():
    model = tiny()
    assert not bool(model.net.initialized)
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    logs = model.training_step(Batch(images(8), torch.randint(0, 7, (8,))), 0)
    assert {"loss", "bpd", "grad_norm", "skipped", "lr"} <= set(logs)
    assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values())
    assert logs["loss"] == logs["bpd"] and logs["skipped"] == 0.0
    assert logs["lr"] == pytest.approx(1e-3 / 500)  # warm-up step 1 of 500
    assert 7.5 < logs["bpd"] < 9.5  # uniform noise images: ~8.25 bits/dim after actnorm init
    after = model.nets.state_dict()
    changed = [k for k in after if not torch.equal(before[k], after[k])]
    assert any(k.endswith(".s") for k in changed) and any("param_map" in k for k in changed)
    assert any(k.endswith("q0.0.loc") for k in changed) and bool(model.net.initialized)
    assert model.lr_at(499) == 1e-3 and model.lr_at(10_000) == 1e-3


def test_invertible_x_to_z_to_x():
    model = perturb(tiny())
    x = images(6)
    z = model.encode(x)["z"]
    assert float(z.std()) > 0.1  # not a degenerate map
    assert float((model.reconstruct(x) - x).abs().max()) < 1e-4
    # and z -> y -> z in the flow's own space, from prior samples
    zs = model.edit_start(4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        back, _ = model.net.latents(model.net.generate(model.net.unflatten(zs)))
    assert float((model.net.flatten(back) - zs).abs().max()) < 1e-4


def test_bits_per_dim_of_an_orthogonal_flow_by_hand():
    """Fresh model with exp couplings: actnorm identity, zero couplings (identity), orthogonal 1x1 convs,
    squeeze/split permutations: the map y -> z is orthogonal (|det| = 1, |z| = |y|), so the density is the
    prior's: first N(0, I) (computed with no help from the model), then random class-conditional priors."""
    model = tiny(overrides=["model.scale_map=exp"])
    x, c, d = images(5), torch.tensor([0, 1, 2, 5, 6]), 48 * 48
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    y = (((x + 1) * 127.5).round() + u) / 256 - 0.5
    expected = (0.5 * d * LOG2PI + 0.5 * y.flatten(1).pow(2).sum(1)) / (d * math.log(2)) + 8
    got = model.bits_per_dim(x, c, torch.Generator().manual_seed(3))
    assert got.dtype == torch.float32 and got.shape == (5,)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    assert torch.allclose(model.bits_per_dim(x, None, torch.Generator().manual_seed(3)), expected, atol=1e-5, rtol=0)

    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for q in model.net.flow.q0:
            q.loc.copy_(torch.randn(q.loc.shape, generator=g))
            q.log_scale.copy_(0.3 * torch.randn(q.log_scale.shape, generator=g))
        zs, log_det = model.net.latents(y)
    z = model.net.flatten(zs)
    assert float(log_det.abs().max()) < 1e-3 and torch.allclose(z.norm(dim=1), y.flatten(1).norm(dim=1), atol=1e-4)
    loc, log_scale = model.net.prior_params(c)
    log_pz = (-0.5 * LOG2PI - log_scale - 0.5 * ((z - loc) / log_scale.exp()) ** 2).sum(1)
    expected = -log_pz / (d * math.log(2)) + 8
    got = model.bits_per_dim(x, c, torch.Generator().manual_seed(3))
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    assert float((got - 8).abs().min()) > 0.1  # the prior change matters
    # the marginal over the uniform class prior: -log2 mean_k p(x | k) / D
    per_class = torch.stack([model.bits_per_dim(x, torch.full((5,), k), torch.Generator().manual_seed(3))
                             for k in range(7)], 1)
    marginal = -(torch.logsumexp(-per_class.double() * d * math.log(2), 1) - math.log(7)) / (d * math.log(2))
    assert torch.allclose(model.bits_per_dim(x, None, torch.Generator().manual_seed(3)).double(), marginal, atol=1e-5)


def test_log_density_matches_autograd_jacobian():
    """Change of variables on a random (non-linear) flow: the library's log-det equals log|det dz/dy|
    from autograd, in float64 on a tiny 3 x 4 x 4 image (D = 48)."""
    spec = DataSpec(3, 4, 4, ("a", "b"), "tiny")
    model = perturb(tiny(spec), scale=0.2)
    net = model.net.double()
    y = torch.rand(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) - 0.5
    with torch.no_grad():
        zs, log_det = net.latents(y)
    for i in range(2):
        jac = torch.autograd.functional.jacobian(lambda v: net.flatten(net.latents(v.view(1, 3, 4, 4))[0])[0],
                                                 y[i].flatten())
        assert jac.shape == (48, 48)
        assert float(torch.linalg.slogdet(jac)[1]) == pytest.approx(float(log_det[i]), abs=1e-8)
    assert abs(float(log_det[0])) > 0.5  # a genuinely non-volume-preserving map
    c = torch.tensor([0, 1])
    manual = sum(q.log_prob(z, c) for q, z in zip(net.flow.q0, zs)) + log_det
    assert torch.allclose(net.log_prob(y, c), manual)


def test_training_loss_is_the_bits_per_dim_objective():
    model = tiny()
    x, c = images(4), torch.tensor([1, 2, 3, 4])
    model.net.data_init(dequantize(((x + 1) * 127.5).round(), 0.5))
    bpd = model.bits_per_dim(x, c, torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    logs = model.training_step(Batch(x, c), 0)  # different noise draw: equal up to dequantization noise
    assert logs["bpd"] == pytest.approx(float(bpd.mean()), abs=0.05)


def test_loaded_model_is_not_reinitialized():
    a = tiny()
    a.training_step(Batch(images(4), torch.tensor([0, 1, 2, 3])), 0)
    b = tiny()
    b.load_state_dict(a.state_dict())
    assert bool(b.net.initialized)
    b.net.data_init = lambda y: pytest.fail("data-dependent init after loading a checkpoint")
    b.training_step(Batch(images(4, seed=9), torch.tensor([0, 1, 2, 3])), 1)
    x = images(3)
    assert not torch.equal(a.encode(x)["z"], tiny().encode(x)["z"])  # trained != fresh
    b2 = tiny()
    b2.load_state_dict(a.state_dict())
    assert torch.equal(a.encode(x)["z"], b2.encode(x)["z"])


def test_sampling_uses_the_class_prior_at_temperature():
    model = perturb(tiny(overrides=["model.temperature=0.5"]))
    labels = torch.tensor([0, 3, 6])
    z = model.edit_start(3, torch.Generator().manual_seed(2), labels)
    eps = torch.randn(3, 48 * 48, generator=torch.Generator().manual_seed(2))
    loc, log_scale = model.net.prior_params(labels)
    assert torch.allclose(z, loc + 0.5 * log_scale.exp() * eps, atol=1e-6)
    x = model.sample(3, labels, torch.Generator().manual_seed(2))
    assert torch.equal(x, model.edit_decode(z)) and x.shape == (3, 1, 48, 48)
    assert float(x.min()) >= -1 and float(x.max()) <= 1


def test_encode_shapes_and_bayes_class_logits():
    model = perturb(tiny())
    x = images(5)
    enc = model.encode(x)
    assert enc["z"].shape == (5, 2304) and enc["z"].dtype == torch.float32
    assert enc["c_logits"].shape == (5, 7) and enc["c_logits"].dtype == torch.float32
    assert torch.equal(model.encode(x)["z"], enc["z"])  # deterministic (centered dequantization)
    z = enc["z"]
    for k in (0, 4):
        loc, log_scale = model.net.prior_params(torch.full((5,), k))
        log_pz = (-0.5 * LOG2PI - log_scale - 0.5 * ((z - loc) / log_scale.exp()) ** 2).sum(1)
        assert torch.allclose(enc["c_logits"][:, k], log_pz - math.log(7), rtol=1e-5, atol=1e-2)
    assert torch.equal(model.edit_encode(x, torch.zeros(5, dtype=torch.long)), enc["z"])


def test_edit_api():
    model = perturb(tiny())
    x, c = images(21), torch.arange(7).repeat(3)
    with pytest.raises(RuntimeError, match="call edit_fit first"):
        model.edit_direction(1)
    model.edit_fit(x, c)
    z = model.encode(x)["z"].double()
    v3 = z[c == 3].mean(0) - z[c != 3].mean(0)
    v = model.edit_direction(3)
    assert v.shape == (2304,) and v.dtype == torch.float32 and torch.allclose(v.double(), v3, atol=1e-5)
    w = model.edit_direction(3, keep=5)
    v5 = model.edit_direction(5)
    assert abs(float(w @ v5)) < 1e-3 * float(w.norm() * v5.norm()) and float(w.norm()) == pytest.approx(float(v.norm()))
    start = model.edit_start(4, torch.Generator().manual_seed(0), torch.tensor([0, 1, 2, 3]))
    assert start.shape == (4, 2304)
    assert torch.equal(model.edit_move(start, 3, 0.0), start)
    assert torch.allclose(model.edit_move(start, 3, 1.0), start + v)
    out = model.edit_decode(model.edit_move(start, 3, 1.0, keep=5))
    assert out.shape == (4, 1, 48, 48) and out.dtype == torch.float32 and float(out.abs().max()) <= 1
    assert torch.equal(model.edit_decode(start),
                       model.sample(4, torch.tensor([0, 1, 2, 3]), torch.Generator().manual_seed(0)))
    assert model.edit_mode == "offset" and model.edit_reference_strength == 1.0 and model.likelihood_exact
    for bad in (7, -1, 2.0, True):
        with pytest.raises(ValueError, match="expected a class index 0..6"):
            model.edit_direction(bad)
    with pytest.raises(ValueError, match="equals target"):
        model.edit_direction(2, keep=2)
    with pytest.raises(ValueError, match="latents N x 2304"):
        model.edit_decode(torch.zeros(2, 100))
    with pytest.raises(ValueError, match="no images of class"):
        model.edit_fit(x[:6], c[:6])
    assert model.capabilities == {"sample", "conditional", "encode", "likelihood", "edit"}


def test_bad_inputs_raise_value_error():
    model = tiny()
    for bad in (torch.zeros(2, 1, 48, 47), torch.zeros(2, 3, 48, 48), torch.zeros(1, 48, 48),
                torch.zeros(2, 1, 48, 48, dtype=torch.uint8)):
        for call in (model.encode, model.bits_per_dim, model.reconstruct, model.edit_encode):
            with pytest.raises(ValueError, match="expected float images N x 1 x 48 x 48"):
                call(bad)
    x = images(2)
    for labels in (torch.tensor([0, 7]), torch.tensor([-1, 0]), torch.zeros(3, dtype=torch.long), torch.zeros(2)):
        with pytest.raises(ValueError, match=r"(integer labels in|outside) 0\.\.6|labels for \d+ images"):
            model.bits_per_dim(x, labels)
        with pytest.raises(ValueError, match=r"(integer labels in|outside) 0\.\.6|labels for \d+ images"):
            model.sample(2, labels)
    with pytest.raises(ValueError, match=r"images 1x50x48: .*divisible by 2\*\*levels = 4"):
        Flow(resolve_config("flow", "default", TINY).model_cfg, DataSpec(1, 50, 48, FER7, "fer7"))
    with pytest.raises(ValueError, match="images 1x48x48: .*divisible by 2\\*\\*levels = 32"):
        latent_shapes(SPEC, 5)
    assert latent_shapes(SPEC, 4)[0] == (32, 3, 3)  # 48 = 16 * 3: four levels fit
    for key in ("model.scale_map=tanh", "model.split_mode=diagonal", "model.temperature=0"):
        with pytest.raises(ConfigError, match=key.split("=")[0]):  # refused by the declared range
            Flow(resolve_config("flow", "default", [*TINY, key]).model_cfg, SPEC)


def test_celeba_shape_from_spec():
    model = tiny(CELEBA)
    x = images(2, CELEBA)
    logs = model.training_step(Batch(x, torch.tensor([0, 1])), 0)
    assert math.isfinite(logs["bpd"])
    enc = model.encode(x)
    assert enc["z"].shape == (2, 3 * 64 * 64) and enc["c_logits"].shape == (2, 2)
    assert float((model.reconstruct(x) - x).abs().max()) < 1e-4
    assert model.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 3, 64, 64)
    assert model.bits_per_dim(x, torch.tensor([1, 0])).shape == (2,)


def test_reference_config_facts():
    cfg = resolve_config("flow", "reference")
    m = cfg.model_cfg
    assert (m.levels, m.steps_per_level, m.ch, m.lr, m.scale_map) == (3, 32, 512, 1e-3, "sigmoid")
    assert cfg.data.label_set == "fer7" and cfg.train.batch_size == 64 and not cfg.train.amp
    assert latent_shapes(SPEC, m.levels) == [(16, 6, 6), (4, 12, 12), (2, 24, 24)]
    d = resolve_config("flow", "default")
    assert d.model_cfg.levels == 3 and d.data.augment.hflip and not d.train.ema


def test_train_and_sample_through_the_cli(tmp_path, capsys):
    data = write_csv(tmp_path / "fer2013.csv", per_class=4)
    out = tmp_path / "run"
    sets = [a for kv in [*TINY, "train.batch_size=8", "train.log_every=1", "train.samples_per_class=2"]
            for a in ("--set", kv)]
    code = main(["train", "flow", "--data", str(data), "--out", str(out), "--steps", "2", *sets])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    recs = [json.loads(r) for r in (out / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2] and all(math.isfinite(r["bpd"]) for r in recs)
    code = main(["sample", str(out), "--label", "happy", "--label", "sad", "--n", "3", "--out", str(tmp_path / "g.png")])
    assert code == 0, capsys.readouterr().err
    _, model, spec, step = load_trained(out)
    assert step == 2 and bool(model.net.initialized)
    assert torch.isfinite(model.bits_per_dim(images(2), torch.tensor([0, 1]))).all()


def _faces(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth uint8-valued images in [-1, 1] whose brightness depends on the class (a learnable c)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, 7, (n,), generator=g)
    low = torch.rand(n, 1, 6, 6, generator=g) * 0.4 + (c.view(-1, 1, 1, 1).float() / 7.0) * 0.6
    x = torch.nn.functional.interpolate(low, size=(48, 48), mode="bilinear", align_corners=False)
    return (x * 255).round() / 127.5 - 1.0, c


@pytest.mark.parametrize("scale_map", ["sigmoid_inv"])
def test_a_trained_tiny_flow_samples_2000_finite_images_at_temperature_1(scale_map):
    """The sampling direction of ``sigmoid_inv`` only contracts: no overflow, so no sample is drawn again."""
    m = tiny(overrides=[f"model.scale_map={scale_map}", "model.warmup_steps=0", "model.temperature=1.0"])
    for step in range(30):
        x, c = _faces(32, step)
        logs = m.training_step(Batch(x, c, epoch=0.0, progress=0.0), step)
    assert math.isfinite(logs["bpd"])
    x = m.sample(2000, torch.arange(7).repeat_interleave(286)[:2000], generator=torch.Generator().manual_seed(0))
    assert x.shape == (2000, 1, 48, 48) and bool(torch.isfinite(x).all())
    assert m.nonfinite_resampled == 0


def test_non_finite_samples_are_drawn_again_and_counted(monkeypatch):
    m = tiny()
    real = Flow.edit_decode
    calls = []

    def sometimes_nan(self, z):
        out = real(self, z)
        calls.append(len(z))
        if len(calls) == 1:
            out[::3] = float("nan")  # the first decode: every third sample overflowed
        return out

    monkeypatch.setattr(Flow, "edit_decode", sometimes_nan)
    x = m.sample(9, torch.arange(9) % 7, generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(x).all()) and m.nonfinite_resampled == 3 and calls == [9, 3]


def test_glow_class_loss_is_logged_and_its_head_exists_only_when_weighted():
    assert not hasattr(tiny().net, "y_head")  # runs written before weight_y load unchanged
    m = tiny(overrides=["model.weight_y=0.05"])
    x, c = _faces(8, 0)
    logs = m.training_step(Batch(x, c, epoch=0.0, progress=0.0), 0)
    assert logs["bits_y"] == pytest.approx(math.log2(7), rel=1e-4)  # zero-initialised head: uniform logits
    assert logs["loss"] == pytest.approx(logs["bpd"] + 0.05 * logs["bits_y"], rel=1e-5)
