"""metrics/families/conditioning.py: the c_response protocol's statistic on fakes whose dependence on c is known."""

from __future__ import annotations

import pytest
import torch

from exprbench.metrics.families.conditioning import c_response


class _Fake:
    """sample(n, labels, generator) = a * z-image + b * label-image, z drawn from the generator first."""

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = a, b

    def sample(self, n, labels=None, generator=None):
        z = torch.rand(n, 1, 8, 8, generator=generator) * 2 - 1
        lab = (labels.float() / 6.0 * 2 - 1).view(-1, 1, 1, 1).expand(n, 1, 8, 8)
        return (self.a * z + self.b * lab).clamp(-1, 1)


def test_a_generator_that_ignores_c_scores_zero_and_one_that_reads_only_c_scores_high():
    assert c_response(_Fake(1.0, 0.0), 200, 7, 0)["value"] == 0.0
    assert c_response(_Fake(0.5, 0.5), 200, 7, 0)["value"] > 0.5
    low, high = c_response(_Fake(1.0, 0.1), 200, 7, 0)["value"], c_response(_Fake(1.0, 0.4), 200, 7, 0)["value"]
    assert 0 < low < high


def test_c_response_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        c_response(_Fake(1.0, 1.0), 10, 1, 0)
