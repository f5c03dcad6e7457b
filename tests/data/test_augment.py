"""exprbench.data.augment: per-image random parameters, shapes and ranges kept, reproducible under a seed."""

from __future__ import annotations

import torch

from exprbench.data.augment import AugmentConfig, augment, build_augment


def test_identity_when_off():
    m = build_augment(AugmentConfig(hflip=False))
    x = torch.rand(4, 1, 48, 48)
    assert torch.equal(augment(x, m), x)


def test_rotation_per_image_and_seeded():
    m = build_augment(AugmentConfig(hflip=False, rotate=(-50, 30)))
    x = torch.rand(1, 1, 48, 48).repeat(6, 1, 1, 1) * 2 - 1
    torch.manual_seed(0)
    y = augment(x, m)
    assert y.shape == x.shape and float(y.min()) >= -1 - 1e-5 and float(y.max()) <= 1 + 1e-5
    assert not torch.allclose(y[0], y[1]), "every image must get its own angle"
    torch.manual_seed(0)
    assert torch.equal(augment(x, m), y)


def test_hflip_flips_some():
    m = build_augment(AugmentConfig(hflip=True))
    x = torch.arange(48.0).view(1, 1, 1, 48).expand(64, 1, 48, 48).contiguous()
    torch.manual_seed(1)
    y = augment(x, m)
    flipped = (y[:, 0, 0, 0] == 47).sum().item()
    assert 10 < flipped < 54
