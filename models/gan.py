"""Unconditional GAN (Goodfellow et al. 2014, arXiv:1406.2661) with DCGAN nets (Radford et al. 2016,
arXiv:1511.06434).

Configs:
    ``reference``  the TensorFlow DCGAN tutorial adapted to 48x48 (docs/MODELS.md):
                   G Dense(12*12*256)+BN+LeakyReLU -> ConvT 128 (s1), 64 (s2), 1 (s2), 5x5 -> tanh;
                   D Conv 64, 128 (5x5 s2) + LeakyReLU + Dropout 0.3 -> Dense(1) logits; BCE,
                   Adam 1e-4 (betas 0.9, 0.999), batch 256, 100 epochs (11,215 steps).
    ``default``    SNGAN standard CNN (spectral norm in D, Miyato et al. 2018), hinge loss,
                   Adam 2e-4 (0.5, 0.999), R1 penalty gamma 1 on real images (Mescheder et al. 2018:
                   without it D won outright by step 100 at width 32 and G collapsed to black
                   images), G EMA, horizontal flips. ``model.mapping_layers`` > 0 puts a StyleGAN-style
                   mapping network z -> w in front of G (for InterFaceGAN's W space; off by default).
Capabilities: ``sample``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from exprbench.data import DataSpec

from . import register_model
from .adversarial import AdversarialPlugin
from .base import Batch
from .contracts import Sampler
from .blocks import AdversarialConfig, DCGenerator, SNDiscriminatorTrunk, d_loss, g_loss, r1_penalty


@dataclass
class GANConfig(AdversarialConfig):
    """Hyper-parameters of the unconditional GAN (see :class:`AdversarialConfig`).

    Attributes:
        r1_gamma: weight gamma of the R1 penalty gamma/2 * E||grad_x D(x)||^2 on real images in D's loss
            (Mescheder et al. 2018); 0 is off. Range: >= 0.
        mapping_layers: a mapping network z -> w of this many layers in front of the ``sngan`` generator
            (:class:`MappedGenerator`; 0 = none, the DCGAN/SNGAN generator of z).
    """

    r1_gamma: float = field(default=0.0, metadata={"min": 0})
    mapping_layers: int = field(default=0, metadata={"min": 0})


class MappingNetwork(nn.Module):
    """z -> w: normalise z to unit mean square, then ``layers`` x (Linear(D, D) + LeakyReLU 0.2), as StyleGAN's
    mapping network (Karras et al. 2019, sec. 2; 8 layers there, a few here). Input and output float N x D."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.net = nn.Sequential(*[m for _ in range(layers) for m in (nn.Linear(dim, dim), nn.LeakyReLU(0.2))])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8))


class MappedGenerator(nn.Module):
    """G(z) = synthesis(mapping(z)): a :class:`MappingNetwork` in front of a generator of w, so that an editor
    (InterFaceGAN's ``model.space = "w"``) can work in the intermediate latent space W, which Shen et al. 2020
    (sec. 4) and Karras et al. 2019 (sec. 4) find more linearly separable than Z. Input z float N x D."""

    def __init__(self, mapping: MappingNetwork, synthesis: nn.Module) -> None:
        super().__init__()
        self.mapping, self.synthesis = mapping, synthesis

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.mapping(z))


class RefGenerator(nn.Module):
    """TF DCGAN tutorial generator at H/4: z -> Dense -> 256 x H/4 -> ConvT 128, 64, C (5x5) -> tanh."""

    def __init__(self, spec: DataSpec, z_dim: int) -> None:
        super().__init__()
        self.bh, self.bw = spec.height // 4, spec.width // 4
        self.fc = nn.Sequential(nn.Linear(z_dim, 256 * self.bh * self.bw, bias=False),
                                nn.BatchNorm1d(256 * self.bh * self.bw), nn.LeakyReLU(0.3))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(64, spec.channels, 5, 2, 2, output_padding=1, bias=False), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, 256, self.bh, self.bw))


class RefDiscriminator(nn.Module):
    """TF DCGAN tutorial discriminator: Conv 64, 128 (5x5 s2) + LeakyReLU + Dropout 0.3 -> Dense(1)."""

    def __init__(self, spec: DataSpec) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(spec.channels, 64, 5, 2, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
            nn.Conv2d(64, 128, 5, 2, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
            nn.Flatten(), nn.Linear(128 * (spec.height // 4) * (spec.width // 4), 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class SNDiscriminator(nn.Module):
    """SNGAN standard-CNN discriminator with one linear real/fake logit."""

    def __init__(self, spec: DataSpec, ch: int) -> None:
        super().__init__()
        self.trunk = SNDiscriminatorTrunk(spec, ch)
        self.head = nn.utils.parametrizations.spectral_norm(nn.Linear(self.trunk.out_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)).squeeze(1)


@register_model("gan")
class GAN(AdversarialPlugin, Sampler):
    """Unconditional GAN plugin: G(z) -> x, D(x) -> logit. ``training_step`` does one D then one G update."""

    Config = GANConfig
    named_configs = {
        # resize-conv up-sampling (results/ablation: cGAN FID_ml 4.91 -> 3.13, checker energy 35x -> 0.4x real faces')
        "default": {"model.upsample": "nearest", "train.ema": True, "train.batch_size": 64, "train.steps": 20000, "model.r1_gamma": 1.0},
        "reference": {
            "model.arch": "reference", "model.z_dim": 100, "model.loss": "bce",
            "model.lr_g": 1e-4, "model.lr_d": 1e-4, "model.betas": [0.9, 0.999],
            "train.batch_size": 256, "train.steps": 11215, "data.augment.hflip": False,
        },
    }

    def __init__(self, cfg: GANConfig, spec: DataSpec, device="cpu", channels_last: bool = False) -> None:
        super().__init__(cfg, spec, device, channels_last)
        self.init_adversarial({
            "reference": lambda: (RefGenerator(spec, cfg.z_dim), RefDiscriminator(spec)),
            "sngan": lambda: (self._sngan_generator(spec), SNDiscriminator(spec, cfg.ch)),
        })

    def _sngan_generator(self, spec: DataSpec) -> nn.Module:
        """The SNGAN generator, behind a mapping network when ``mapping_layers`` > 0."""
        cfg = self.cfg
        G = DCGenerator(spec, cfg.z_dim, cfg.ch, upsample=cfg.upsample)
        return MappedGenerator(MappingNetwork(cfg.z_dim, cfg.mapping_layers), G) if cfg.mapping_layers else G

    def d_inputs(self, batch: Batch):
        x = batch.x.detach().requires_grad_(True) if self.cfg.r1_gamma > 0 else batch.x
        return (x,), (self.nets["G"](self.noise(batch.x.shape[0])),), {"x_real": x}

    def d_objective(self, batch: Batch, real_logit, fake_logit, ctx):
        loss = d_loss(self.cfg.loss, real_logit, fake_logit)
        logs = {"d_real": real_logit.mean().item(), "d_fake": fake_logit.mean().item()}
        if self.cfg.r1_gamma > 0:
            r1 = r1_penalty(real_logit, ctx["x_real"])
            loss = loss + 0.5 * self.cfg.r1_gamma * r1
            logs["r1"] = r1.item()
        return loss, logs

    def g_objective(self, batch: Batch, ctx):
        return g_loss(self.cfg.loss, self.nets["D"](self.nets["G"](self.noise(batch.x.shape[0])))), {}

    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """G(z) for z ~ N(0, I) drawn with the CPU ``generator``: float32 n x C x H x W in [-1, 1]; ``labels`` ignored."""
        return self.generate(self.randn(n, self.cfg.z_dim, generator=generator))
