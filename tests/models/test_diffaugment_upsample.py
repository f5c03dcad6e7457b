"""models/diffaugment.py and the resize-conv option of models/blocks.py (issue: artefact-free adversarial
baselines)."""

from __future__ import annotations

import pytest
import torch

from exprbench.models.blocks import DCGenerator
from exprbench.models.diffaugment import cutout, diff_augment, parse_policy, translation

from .conftest import FER_SPEC, tiny_model, train_once


def _checker_share(x: torch.Tensor) -> float:
    p = torch.fft.fft2(x - x.mean((-2, -1), keepdim=True)).abs().pow(2).mean((0, 1))
    h = p.shape[-1] // 2
    return float(p[h, h] / p.sum().clamp_min(1e-30))


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_resize_conv_generator_has_no_period2_footprint_at_init(mode):
    torch.manual_seed(0)
    layer = DCGenerator(FER_SPEC, 8, 4, upsample=mode).ups[0]
    x = torch.ones(2, 32, 6, 6)  # a constant input: any period-2 pattern comes from the layer itself
    y = layer(x).detach()[..., 2:-2, 2:-2]  # away from the zero-padded border
    assert float((y - y.mean((-2, -1), keepdim=True)).abs().max()) < 1e-5
    deconv = DCGenerator(FER_SPEC, 8, 4, upsample="deconv").ups[0](x).detach()[..., 2:-2, 2:-2]
    assert _checker_share(deconv) > 0.1  # the transposed convolution does print one


def test_unknown_upsample_and_policy_are_refused():
    with pytest.raises(ValueError, match="model.upsample='pixel'"):
        DCGenerator(FER_SPEC, 8, 4, upsample="pixel")
    with pytest.raises(ValueError, match="unknown policy 'flip'"):
        parse_policy("translation,flip")
    assert parse_policy("cutout, translation") == ("translation", "cutout")


def test_diffaugment_is_differentiable_and_keeps_shape():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 48, 48, requires_grad=True)
    y = diff_augment(x, parse_policy("color,translation,cutout"))
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    x.grad = None
    diff_augment(x, parse_policy("translation,cutout")).sum().backward()
    assert bool((x.grad == 0).any()) and bool((x.grad == 1).any())  # cut-out pixels pass no gradient, kept ones 1


def test_translation_is_an_integer_shift_with_zero_padding():
    torch.manual_seed(1)
    x = torch.arange(48 * 48, dtype=torch.float32).view(1, 1, 48, 48) + 1
    y = translation(x)
    inside = y[y > 0]
    # every kept value is a source pixel value (no resampling) and the shift is at most 3 pixels
    assert bool(torch.isin(inside, x.flatten()).all())
    assert int((y == 0).sum()) <= 48 * 6 + 6 * 48


def test_cutout_zeroes_a_square_of_half_the_size():
    torch.manual_seed(2)
    y = cutout(torch.ones(8, 1, 48, 48))
    zeros = (y == 0).flatten(1).sum(1)
    assert bool((zeros > 0).all()) and bool((zeros <= 24 * 24).all())


@pytest.mark.parametrize("model", ["gan", "cgan", "acgan", "bigan", "bicogan", "ccyclegan"])
def test_d_and_c_see_augmented_real_and_fake_images(model):
    """The hook is on D (and C where there is one): every image they are called with in a step is augmented."""
    m = tiny_model(model, "default", FER_SPEC, ["model.diffaugment=translation,cutout"])
    seen = []
    for name in ("D", "C"):
        if name in m.nets:
            m.nets[name].register_forward_pre_hook(lambda mod, args, name=name: seen.append((name, args[0].detach())))
    train_once(m, FER_SPEC)
    assert seen, "D was never called"
    # cutout: every image D or C saw has a zeroed square (real images in [-1, 1] are never exactly 0 in bulk)
    for name, x in seen:
        zero_frac = (x == 0).flatten(1).float().mean(1)
        assert bool((zero_frac > 0.05).all()), name
    assert m.nets["D"]._diffaugment == ("translation", "cutout")


def test_diffaugment_off_leaves_d_untouched():
    m = tiny_model("gan", "default", FER_SPEC)
    assert getattr(m.nets["D"], "_diffaugment", None) is None
    assert not m.nets["D"]._forward_pre_hooks
