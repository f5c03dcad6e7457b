"""A tiny deterministic model with every capability, for contract tests over every registered metric.

Every output is a fixed function of its inputs, and ``sample`` / ``edit_start`` draw each item from the
generator one at a time, so a protocol sees the same images whatever the batch sizes.
"""

from __future__ import annotations

import torch

from exprbench.data import DataSpec
from exprbench.models.base import ModelPlugin
from exprbench.models.contracts import Conditional, Editor, Encoder, IWLikelihood, Likelihood, Sampler, Translator

ALL = frozenset({"sample", "conditional", "encode", "translate", "edit", "likelihood", "iw_likelihood"})


class FakeModel(ModelPlugin, Sampler, Conditional, Encoder, Translator, Editor, Likelihood, IWLikelihood):
    """Images in [-1, 1] with a class-dependent brightness; z = 8 x 8 average-pooled pixels."""

    name = "fake"
    capabilities = ALL
    likelihood_exact = False
    edit_mode = "offset"
    edit_reference_strength = 1.0

    def __init__(self, spec: DataSpec, capabilities=ALL) -> None:
        super().__init__(None, spec)
        self.capabilities = frozenset(capabilities)

    def _shift(self, c: torch.Tensor) -> torch.Tensor:
        k = self.spec.num_classes
        return (0.6 * (c.float() / max(k - 1, 1) - 0.5)).view(-1, 1, 1, 1)

    def sample(self, n, labels=None, generator=None):
        x = torch.cat([torch.rand(1, self.spec.channels, self.spec.height, self.spec.width, generator=generator)
                       for _ in range(n)]) * 1.2 - 0.6
        if labels is not None:
            x = x + self._shift(labels)
        return x.clamp(-1, 1)

    def encode(self, x):
        z = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
        k = self.spec.num_classes
        c_logits = -((x.mean((1, 2, 3)).view(-1, 1) - self._shift(torch.arange(k)).view(1, -1)) ** 2) * 50
        return {"z": z, "c_logits": c_logits}

    def reconstruct(self, x, c=None):
        return (x * 0.9).clamp(-1, 1)

    def translate(self, x, c_target, c_source=None):
        return (x * 0.7 + self._shift(c_target)).clamp(-1, 1)

    def bits_per_dim(self, x, c=None, generator=None):
        return 6.0 + 0.5 * x.flatten(1).mean(1)

    def iw_bits_per_dim(self, x, c=None, k=64, generator=None):
        return self.bits_per_dim(x, c) - 0.1

    def edit_start(self, n, generator=None, labels=None):
        return torch.cat([torch.rand(1, self.spec.num_classes, generator=generator) for _ in range(n)]) * 0.2

    def edit_direction(self, target, keep=None):
        return torch.eye(self.spec.num_classes)[self.check_class(target, "target")]

    def edit_decode(self, z):
        k = self.spec.num_classes
        img = torch.full((z.shape[0], self.spec.channels, self.spec.height, self.spec.width), -0.5)
        band = max(self.spec.width // k, 1)
        for j in range(k):
            img[:, :, :, j * band: (j + 1) * band] = z[:, j].view(-1, 1, 1, 1)
        return img.clamp(-1, 1)
