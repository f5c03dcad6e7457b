"""Auxiliary-classifier GAN (Odena et al. 2017, arXiv:1610.09585): G(z, c); D(x) -> (real/fake, class).

Losses: D maximizes the adversarial objective plus the log-likelihood of the right class on real and
fake images (L_S + L_C in the paper); G minimizes its adversarial loss plus the class cross-entropy of
its fakes. ``cls_fake_d`` weights the fake-image class term in D's loss: 1 is the paper's L_C; the
``default`` config drops it (0), because with it G and D collude: D learns to read on fakes whatever
G writes into them for the label, not the expression (measured: D's class accuracy on real faces
stayed at 0.20-0.26 while its class loss on fakes fell from ln 7 to 1.0, and the samples read at
chance). With 0, D's classifier learns real expressions only and G must draw them (the remedy of
the AC-GAN analyses of Shu et al. 2017 and Gong et al. 2019, TAC-GAN). ``d_acc_real`` (D's class
accuracy on the real batch) and ``d_acc_fake`` are logged so the collusion is visible.

``classifier = "separate"`` (the ``default`` config) reads G's class loss from a second net C, a small
BatchNorm CNN (:class:`~.blocks.BNClassifier`) trained by cross-entropy on the real batch only,
instead of D's class head: a classifier on D's spectrally normalized trunk learns expressions far
more slowly than the adversarial game needs (measured: on real faces alone, 300 Adam steps of 64
left such a trunk at the label prior, 0.23-0.25 validation accuracy), so G got no class signal
within the budget. C reads fakes in eval mode (its running statistics are those of real faces) and
is never trained on them, so G cannot collude with it; D keeps its class head on real faces.
``c_acc_real`` logs C's accuracy on the real batch. C is training-only: it is not published. Class logits go straight into ``cross_entropy`` (the known bug of a softmax before
CrossEntropyLoss is avoided).

Configs:
    ``reference``  the Keras FER2013 ACGAN (docs/MODELS.md): D Conv32(3x3 s2)+LeakyReLU+Dropout 0.5
                   -> Conv64(s2)+BN -> Conv128(s2)+BN -> Conv256(s1)+BN (LeakyReLU 0.2, Dropout 0.5 each)
                   -> two heads; G [Dense(384 x H/4 x W/4)+ReLU | label map] -> ConvT192(5x5 s2)+BN+ReLU
                   -> ConvT(C, 5x5 s2) -> tanh; BCE + CE, Adam 2e-4 beta1 0.5, batch 64. No budget in the
                   facts: 100 epochs (44,858 steps).
    ``default``    SNGAN standard CNN with cBN in G, an auxiliary linear class head on the SN trunk
                   (real faces only), G's class loss from a separate BatchNorm classifier C, hinge
                   loss, G EMA, flips.
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
class ACGANConfig(AdversarialConfig):
    """Hyper-parameters of the ACGAN: :class:`AdversarialConfig` plus

    Attributes:
        cls_weight: weight of the class cross-entropy in both losses.
        cls_fake_d: weight of the fake-image class term in D's loss (relative to the real-image term;
            1 = the paper, 0 = dropped, see the module docstring).
        classifier: where G's class loss is read: ``shared`` (D's class head, the paper) or
            ``separate`` (a BatchNorm classifier C of width ``cls_ch`` trained on real faces only, with
            Adam at ``lr_c``; see the module docstring).
    """

    cls_weight: float = field(default=1.0, metadata={'min': 0})
    cls_fake_d: float = field(default=0.0, metadata={'min': 0})
    classifier: str = field(default="shared", metadata={'choices': ['shared', 'separate']})
    cls_ch: int = field(default=24, metadata={'min': 1})
    lr_c: float = field(default=1e-3, metadata={'gt': 0})


class RefGenerator(nn.Module):
    """Keras FER2013 ACGAN generator (see module docstring); output N x C x H x W in [-1, 1]."""

    def __init__(self, spec: DataSpec, z_dim: int) -> None:
        super().__init__()
        self.bh, self.bw = spec.height // 4, spec.width // 4
        self.label = LabelMap(spec.num_classes, self.bh, self.bw)
        self.fc = nn.Sequential(nn.Linear(z_dim, 384 * self.bh * self.bw), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(385, 192, 5, 2, 2, output_padding=1), nn.BatchNorm2d(192), nn.ReLU(),
            nn.ConvTranspose2d(192, spec.channels, 5, 2, 2, output_padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 384, self.bh, self.bw)
        return self.net(torch.cat([h, self.label(c)], dim=1))


class RefDiscriminator(nn.Module):
    """Keras FER2013 ACGAN discriminator; returns (real/fake logit N, class logits N x K)."""

    def __init__(self, spec: DataSpec) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int, bn: bool) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, 1), *([nn.BatchNorm2d(cout)] if bn else []),
                    nn.LeakyReLU(0.2), nn.Dropout(0.5)]

        self.net = nn.Sequential(
            *block(spec.channels, 32, 2, False), *block(32, 64, 2, True),
            *block(64, 128, 2, True), *block(128, 256, 1, True), nn.Flatten(),
        )
        feat = 256 * ((spec.height + 7) // 8) * ((spec.width + 7) // 8)
        self.adv, self.cls = nn.Linear(feat, 1), nn.Linear(feat, spec.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x)
        return self.adv(h).squeeze(1), self.cls(h)


class SNACDiscriminator(nn.Module):
    """SNGAN trunk with a spectrally normalized real/fake head and a linear class head."""

    def __init__(self, spec: DataSpec, ch: int) -> None:
        super().__init__()
        self.trunk = SNDiscriminatorTrunk(spec, ch)
        self.adv = nn.utils.parametrizations.spectral_norm(nn.Linear(self.trunk.out_dim, 1))
        self.cls = nn.Linear(self.trunk.out_dim, spec.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.adv(h).squeeze(1), self.cls(h)


@register_model("acgan")
class ACGAN(AdversarialPlugin, Sampler, Conditional):
    """ACGAN plugin: G(z, c) -> x, D(x) -> (logit, class logits); one D then one G update per step."""

    Config = ACGANConfig
    training_only_nets = frozenset({"D", "C"})
    named_configs = {
        # resize-conv up-sampling (results/ablation: cGAN FID_ml 4.91 -> 3.13, checker energy 35x -> 0.4x real faces')
        "default": {"model.upsample": "nearest", "train.ema": True, "train.batch_size": 64, "train.steps": 20000,
                    "model.classifier": "separate"},
        "reference": {
            "model.arch": "reference", "model.z_dim": 100, "model.loss": "bce", "model.cls_fake_d": 1.0,
            "model.lr_g": 2e-4, "model.lr_d": 2e-4, "model.betas": [0.5, 0.999],
            "train.batch_size": 64, "train.steps": 44858, "data.augment.hflip": False,
        },
    }

    def __init__(self, cfg: ACGANConfig, spec: DataSpec, device="cpu", channels_last: bool = False) -> None:
        super().__init__(cfg, spec, device, channels_last)
        self.init_adversarial({
            "reference": lambda: (RefGenerator(spec, cfg.z_dim), RefDiscriminator(spec)),
            "sngan": lambda: (DCGenerator(spec, cfg.z_dim, cfg.ch, upsample=cfg.upsample, num_classes=spec.num_classes),
                              SNACDiscriminator(spec, cfg.ch)),
        })
        if cfg.classifier == "separate":
            self.init_real_classifier(cfg.cls_ch, cfg.lr_c)

    def _class_logits_for_g(self, fake: torch.Tensor, d_cls: torch.Tensor) -> torch.Tensor:
        """G's class logits for ``fake``: D's head (``shared``) or C in eval mode (``separate``)."""
        return self.real_classifier_logits(fake) if "C" in self.nets else d_cls

    def pre_step(self, batch: Batch) -> dict[str, float]:
        """The ``separate`` classifier C's cross-entropy step on the real batch (none for ``shared``)."""
        return self.real_classifier_step(batch)

    def d_inputs(self, batch: Batch):
        fake, c_fake = self.draw_fake(batch.c, self.cfg.z_dim)
        return (batch.x,), (fake,), {"c_fake": c_fake}

    def d_objective(self, batch: Batch, real_out, fake_out, ctx):
        (real_logit, real_cls), (fake_logit, fake_cls) = real_out, fake_out
        loss_cls_d = F.cross_entropy(real_cls, batch.c) + self.cfg.cls_fake_d * F.cross_entropy(fake_cls, ctx["c_fake"])
        loss_d = d_loss(self.cfg.loss, real_logit, fake_logit) + self.cfg.cls_weight * loss_cls_d
        return loss_d, {"loss_cls_d": loss_cls_d.item(),
                        "d_acc_real": (real_cls.argmax(1) == batch.c).float().mean().item(),
                        "d_acc_fake": (fake_cls.argmax(1) == ctx["c_fake"]).float().mean().item()}

    def g_objective(self, batch: Batch, ctx):
        fake, c_fake = self.draw_fake(batch.c, self.cfg.z_dim)
        adv, cls = self.nets["D"](fake)
        loss_cls_g = F.cross_entropy(self._class_logits_for_g(fake, cls), c_fake)
        return g_loss(self.cfg.loss, adv) + self.cfg.cls_weight * loss_cls_g, {"loss_cls_g": loss_cls_g.item()}

    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """G(z, c): z then (when None) uniform labels drawn with the CPU ``generator``; float32 n x C x H x W in [-1, 1]."""
        return self.conditional_sample(n, self.cfg.z_dim, labels, generator)
