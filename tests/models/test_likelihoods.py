"""models/likelihoods.py: the pixel models are normalized distributions over the 256 levels."""

from __future__ import annotations

import math

import pytest
import torch

from exprbench.models.likelihoods import PIXEL_MODELS, Binomial, DiscretizedLogistic, UniformDequantization, to_levels


@pytest.mark.parametrize("likelihood", ["discretized", "bernoulli"])
def test_pixel_models_are_normalized_over_256_levels(likelihood):
    levels = (torch.arange(256).float() / 127.5 - 1).view(256, 1, 1, 1)  # every pixel value, one per image
    model = PIXEL_MODELS[likelihood](1)
    for loc, log_scale in [(0.0, 0.0), (-1.0, -7.0), (0.3, -4.0), (1.2, -2.0), (-0.5, 1.0)]:
        if isinstance(model, DiscretizedLogistic):
            params = torch.cat([torch.full_like(levels, loc), torch.full_like(levels, log_scale)], 1)
        else:
            params = torch.full_like(levels, loc * 5)
        lp = model.log_prob(params, levels)
        assert lp.shape == (256,)
        assert float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-4), (loc, log_scale)
        assert bool((lp <= 1e-6).all())


def test_training_terms_and_means():
    x = torch.rand(2, 3, 4, 4) * 2 - 1
    b = Binomial(3)
    recon, log_px = b.recon_loss(torch.zeros(2, 3, 4, 4, requires_grad=True), x)
    assert recon.requires_grad and not log_px.requires_grad and recon.shape == log_px.shape == (2,)
    assert torch.equal(b.mean(torch.zeros(2, 3, 4, 4)), torch.zeros(2, 3, 4, 4))
    d = DiscretizedLogistic(3)
    params = torch.cat([x, torch.zeros_like(x)], 1)
    recon, log_px = d.recon_loss(params, x)
    assert torch.equal(recon, -log_px) and torch.equal(d.mean(params), x.clamp(-1, 1))


def test_uniform_dequantization_round_trip_and_bpd():
    x = torch.arange(256).float().view(1, 1, 16, 16) / 127.5 - 1
    y = UniformDequantization.dequantize(to_levels(x), 0.5)
    assert float(y.min()) > -0.5 and float(y.max()) < 0.5
    assert torch.allclose(UniformDequantization.to_image(y), x, atol=1e-6)
    # the uniform density on [-0.5, 0.5]^D (log p_y = 0) is 8 bits per dimension
    assert float(UniformDequantization.bits_per_dim(torch.zeros(1), 256)) == pytest.approx(8.0)
    assert math.isclose(float(UniformDequantization.bits_per_dim(torch.tensor([-256 * math.log(2)]), 256)), 9.0, rel_tol=1e-6)
