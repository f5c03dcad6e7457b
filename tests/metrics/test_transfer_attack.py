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


def test_the_criterion_joins_the_validity_studys_pass_fail_table():
    """criteria.md gets one transfer-attack section: appended once, replaced (not repeated) on a re-run."""
    from exprbench.metrics.validity.transfer_attack import SECTION, with_section

    res = {"criterion": 0.25, "n": 7, "targets_seed": 0, "steps": 2, "chance": 1 / 7,
           "eps": {"4/255": {"source_success": 0.9, "new": 0.1}, "8/255": {"source_success": 1.0, "new": 0.2}},
           "scorers": {"new": {"test_accuracy": 0.69}}, "source": {"weights": "aux.pt"}}
    study = "# Metric validity study\n\n| protocol | blur |\n|---|---|\n| fid | pass |\n\n- a note\n"
    once = with_section(study, res)
    assert once.startswith(study.rstrip("\n")) and once.count(SECTION) == 1
    assert "| new | 0.6900 | 0.100 | 0.200 | pass |" in once
    worse = {**res, "eps": {**res["eps"], "8/255": {"source_success": 1.0, "new": 0.4}}}
    again = with_section(once, worse)
    assert again.count(SECTION) == 1 and "| new | 0.6900 | 0.100 | 0.400 | FAIL |" in again
