"""Conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784): G(z, c) and D(x, c).

Configs:
    ``reference``  the Keras FER2013 cGAN (docs/MODELS.md): label maps from
                   Embedding(K, 50) -> Dense concatenated as an extra channel in G (at H/4) and D
                   (at H); G Dense(128*12*12)+LeakyReLU -> ConvT(128, 4x4, s2)+LeakyReLU x2 ->
                   Conv(1, 12x12, same) -> tanh; D Conv(128, 3x3, s2)+LeakyReLU(0.2) x2 -> Dropout 0.4
                   -> Dense(1); z=100, BCE, Adam 2e-4 beta1 0.5, batch 128. The facts give no budget:
                   100 epochs (22,430 steps), as the tutorial it follows.
    ``default``    SNGAN standard CNN with conditional batch norm in G (de Vries et al. 2017) and a
                   projection discriminator (Miyato & Koyama 2018, eq. 3), hinge loss, G EMA, flips,
                   and an auxiliary class loss for G read from a real-face classifier C
                   (``aux_cls_weight``; see below).

``aux_cls_weight > 0`` adds ``aux_cls_weight * CE(C(G(z, c)), c)`` to G's loss, where C is a small
BatchNorm classifier trained on real faces only (the ACGAN ``default``'s C, see
:meth:`~.adversarial.AdversarialPlugin.init_real_classifier`): within the CPU suite's budget the
projection term alone left G ignoring c (cpu suite, seed 0: the evaluator read the samples at chance,
acc_gen 0.142). 0 is the plain projection cGAN.
Capabilities: ``sample``, ``conditional``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from exprbench.data import DataSpec

from . import register_model
from .adversarial import AdversarialPlugin
from .base import Batch
from .contracts import Conditional, Sampler
from .blocks import AdversarialConfig, DCGenerator, LabelMap, SNDiscriminatorTrunk, d_loss, g_loss


@dataclass
class CGANConfig(AdversarialConfig):
    """Hyper-parameters of the cGAN: :class:`AdversarialConfig` plus

    Attributes:
        aux_cls_weight: weight of G's class loss read from the real-face classifier C (0 = no C).
        cls_ch: width of C.
        lr_c: Adam learning rate of C.
    """

    aux_cls_weight: float = field(default=0.0, metadata={'min': 0})
    cls_ch: int = field(default=24, metadata={'min': 1})
    lr_c: float = field(default=1e-3, metadata={'gt': 0})


class RefGenerator(nn.Module):
    """Keras FER2013 cGAN generator: [Dense(128 x H/4 x W/4) | label map] -> 2 x ConvT s2 -> Conv 12x12 -> tanh."""

    def __init__(self, spec: DataSpec, z_dim: int) -> None:
        super().__init__()
        self.bh, self.bw = spec.height // 4, spec.width // 4
        self.label = LabelMap(spec.num_classes, self.bh, self.bw)
        self.fc = nn.Sequential(nn.Linear(z_dim, 128 * self.bh * self.bw), nn.LeakyReLU(0.2))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(129, 128, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(128, 128, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ZeroPad2d((5, 6, 5, 6)),  # Keras/TF 'same' for a 12x12 kernel: 5 before, 6 after
            nn.Conv2d(128, spec.channels, 12, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 128, self.bh, self.bw)
        return self.net(torch.cat([h, self.label(c)], dim=1))


class RefDiscriminator(nn.Module):
    """Keras FER2013 cGAN discriminator: [image | label map] -> Conv(128, 3x3, s2) x2 -> Dropout 0.4 -> Dense(1)."""

    def __init__(self, spec: DataSpec) -> None:
        super().__init__()
        self.label = LabelMap(spec.num_classes, spec.height, spec.width)
        self.net = nn.Sequential(
            nn.Conv2d(spec.channels + 1, 128, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(128, 128, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Dropout(0.4),
            nn.Linear(128 * ((spec.height + 3) // 4) * ((spec.width + 3) // 4), 1),
        )

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.label(c)], dim=1)).squeeze(1)


class ProjectionDiscriminator(nn.Module):
    """SNGAN trunk phi(x) with output psi(phi) + <embed(c), phi> (Miyato & Koyama 2018, eq. 3)."""

    def __init__(self, spec: DataSpec, ch: int) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.trunk = SNDiscriminatorTrunk(spec, ch)
        self.head = sn(nn.Linear(self.trunk.out_dim, 1))
        self.embed = sn(nn.Embedding(spec.num_classes, self.trunk.out_dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        return self.head(h).squeeze(1) + (self.embed(c) * h).sum(dim=1)


@register_model("cgan")
class CGAN(AdversarialPlugin, Sampler, Conditional):
    """Class-conditional GAN plugin: G(z, c) -> x, D(x, c) -> logit; one D then one G update per step.

    Fakes in both updates carry the real batch's labels (the training-label distribution, see
    :meth:`~.adversarial.AdversarialPlugin.draw_fake`).
    """

    Config = CGANConfig
    training_only_nets = frozenset({"D", "C"})
    named_configs = {
        # resize-conv up-sampling (results/ablation: cGAN FID_ml 4.91 -> 3.13, checker energy 35x -> 0.4x real faces')
        "default": {"model.upsample": "nearest", "train.ema": True, "train.batch_size": 64, "train.steps": 20000, "model.aux_cls_weight": 1.0},
        "reference": {
            "model.arch": "reference", "model.z_dim": 100, "model.loss": "bce",
            "model.lr_g": 2e-4, "model.lr_d": 2e-4, "model.betas": [0.5, 0.999],
            "train.batch_size": 128, "train.steps": 22430, "data.augment.hflip": False,
        },
    }

    def __init__(self, cfg: CGANConfig, spec: DataSpec, device="cpu", channels_last: bool = False) -> None:
        super().__init__(cfg, spec, device, channels_last)
        self.init_adversarial({
            "reference": lambda: (RefGenerator(spec, cfg.z_dim), RefDiscriminator(spec)),
            "sngan": lambda: (DCGenerator(spec, cfg.z_dim, cfg.ch, upsample=cfg.upsample, num_classes=spec.num_classes),
                              ProjectionDiscriminator(spec, cfg.ch)),
        })
        if cfg.aux_cls_weight > 0:
            self.init_real_classifier(cfg.cls_ch, cfg.lr_c)

    def pre_step(self, batch: Batch) -> dict[str, float]:
        """C's cross-entropy step on the real batch (none without C)."""
        return self.real_classifier_step(batch)

    def d_inputs(self, batch: Batch):
        fake, c_fake = self.draw_fake(batch.c, self.cfg.z_dim)
        return (batch.x, batch.c), (fake, c_fake), {}

    def d_objective(self, batch: Batch, real_logit, fake_logit, ctx):
        return d_loss(self.cfg.loss, real_logit, fake_logit), {"d_real": real_logit.mean().item(),
                                                                "d_fake": fake_logit.mean().item()}

    def g_objective(self, batch: Batch, ctx):
        fake, c_fake = self.draw_fake(batch.c, self.cfg.z_dim)
        loss = g_loss(self.cfg.loss, self.nets["D"](fake, c_fake))
        if "C" not in self.nets:
            return loss, {}
        loss_cls_g = F.cross_entropy(self.real_classifier_logits(fake), c_fake)
        return loss + self.cfg.aux_cls_weight * loss_cls_g, {"loss_cls_g": loss_cls_g.item()}

    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """G(z, c): z then (when None) uniform labels drawn with the CPU ``generator``; float32 n x C x H x W in [-1, 1]."""
        return self.conditional_sample(n, self.cfg.z_dim, labels, generator)
