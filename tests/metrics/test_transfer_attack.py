"""metrics/validity/transfer_attack.py: targeted PGD stays in its ball and raises the source's own targeted success."""

from __future__ import annotations

import torch

from exprbench.metrics.extractors.evaluator_net import NetConfig, build_net
from exprbench.metrics.validity.transfer_attack import targeted_pgd


def test_pgd_stays_within_eps_and_moves_the_source_toward_the_target():
    torch.manual_seed(0)
    net = build_net(NetConfig(width=4, feat_dim=8, dropout=0.0)).eval()
    x = torch.rand(16, 1, 48, 48) * 2 - 1
    target = torch.randint(0, 7, (16,))
    adv = targeted_pgd(net, x, target, 8 / 255, steps=10, generator=torch.Generator().manual_seed(0))
    assert float((adv - x).abs().max()) <= 2 * 8 / 255 + 1e-6 and float(adv.abs().max()) <= 1
    ce = lambda im: torch.nn.functional.cross_entropy(net(im)[1], target)  # noqa: E731
    with torch.no_grad():
        assert float(ce(adv)) < float(ce(x))
