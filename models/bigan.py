"""Bidirectional GAN (BiGAN, Donahue et al. 2017, "Adversarial Feature Learning", arXiv:1605.09782;
equivalently ALI, Dumoulin et al. 2017): G(z) -> x, E(x) -> z, D(x, z).

D separates the pairs (x, E(x)), x real, from (G(z), z), z ~ N(0, I); G and E are trained together to
fool it (the paper's eq. 3 objective V(D, E, G), non-saturating for both, as in Donahue et al. sec. 3.4).
At the optimum E inverts G, so E(x) is a feature of x learnt without labels (the linear-probe metric
in ``metrics/families/encoding.py`` measures how much emotion it carries).

Configs:
    ``reference``  the FER2013 BiGAN of docs/MODELS.md: E Conv(64, 5x5 s2) -> Conv(128)+BN ->
                   Conv(256)+BN -> Conv(512)+BN (all 5x5 s2) -> Flatten -> Dense(z); G the GAN's second
                   reference (Dense(128 x H/4 x W/4)+LeakyReLU(0.2) -> 2 x ConvT(128, 4x4 s2)+LeakyReLU ->
                   Conv(C, 12x12, same) -> tanh); D concat[z, flatten(x)] -> 3 x (Dense 1024 + LeakyReLU +
                   Dropout 0.5) -> 1. 20,000 iterations, BCE, z=100. Fixed: the reference E had no
                   activations (a linear map of x); LeakyReLU(0.2) added. Not in the facts, taken from the
                   other Keras FER2013 references: Adam 2e-4 beta1 0.5, batch 128, no flips.
    ``default``    SNGAN-style nets (Miyato et al. 2018): G the standard-CNN generator, E a strided-conv
                   encoder with batch norm, D the BigBiGAN joint discriminator (Donahue & Simonyan 2019,
                   sec. 3: an SN image trunk F(x), an SN MLP H(z), a joint MLP J(F, H), and the unary scores
                   s_x, s_z beside the joint s_xz, each with its own loss), hinge loss, G EMA for sampling,
                   horizontal flips.
Capabilities: ``sample``, ``encode``. ``sample`` uses the EMA generator when enabled; ``encode`` and
``reconstruct`` use E and the *training* G (E was trained to invert that one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from exprbench.data import DataSpec

from . import register_model
from .adversarial import AdversarialPlugin
from .base import Batch
from .contracts import Encoder, Sampler
from .runtime import evaluating
from .blocks import AdversarialConfig, DCGenerator, SNDiscriminatorTrunk, d_loss, g_loss


# --------------------------------------------------------------------------------------------
# losses and helpers shared with BiCoGAN


def ge_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Loss of G and E together from D's logits on (x, E(x)) (``real``) and (G(z), z) (``fake``), scalar.

    Non-saturating for both sides (Donahue et al. 2017, sec. 3.4): G wants ``fake`` scored real, E wants
    ``real`` scored fake. ``bce``: softplus(-fake) + softplus(real); ``hinge``: -fake + real (BigBiGAN,
    Donahue & Simonyan 2019, eq. 4); ``lsgan``: 0.5 (fake - 1)^2 + 0.5 real^2 (targets 1 / 0).

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "lsgan":
        return g_loss(kind, fake) + 0.5 * real.pow(2).mean()
    return g_loss(kind, fake) + g_loss(kind, -real)


def _strided(size: int, k: int, s: int, p: int, times: int) -> int:
    for _ in range(times):
        size = (size + 2 * p - k) // s + 1
    return size


# --------------------------------------------------------------------------------------------
# reference nets (also used by BiCoGAN's reference)


class RefEncoder(nn.Module):
    """Keras FER2013 BiGAN encoder, with LeakyReLU(0.2) added: 4 x Conv 5x5 s2 (64, 128+BN, 256+BN, 512+BN).

    Input float N x C x H x W in [-1, 1]; output z float N x z_dim, and, with ``num_classes > 0``
    (BiCoGAN's E_c head), class logits float N x K: ``forward`` returns ``(z, logits or None)``.
    """

    def __init__(self, spec: DataSpec, z_dim: int, num_classes: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = spec.channels
        for i, cout in enumerate((64, 128, 256, 512)):
            layers += [nn.Conv2d(cin, cout, 5, 2, 2), *([nn.BatchNorm2d(cout)] if i else []), nn.LeakyReLU(0.2)]
            cin = cout
        self.net = nn.Sequential(*layers, nn.Flatten())
        feat = 512 * _strided(spec.height, 5, 2, 2, 4) * _strided(spec.width, 5, 2, 2, 4)
        self.z = nn.Linear(feat, z_dim)
        self.c = nn.Linear(feat, num_classes) if num_classes else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.net(x)
        return self.z(h), (self.c(h) if self.c is not None else None)


class RefGenerator(nn.Module):
    """The GAN's second Keras reference: Dense(128 x H/4 x W/4)+LeakyReLU(0.2) -> 2 x ConvT(128, 4x4 s2)
    + LeakyReLU(0.2) -> Conv(C, 12x12, same) -> tanh.

    With ``num_classes > 0`` (BiCoGAN reference) z is first multiplied element-wise by
    Embedding(K, z_dim)(c). Input z float N x z_dim (c int64 N); output float N x C x H x W in [-1, 1].
    """

    def __init__(self, spec: DataSpec, z_dim: int, num_classes: int = 0) -> None:
        super().__init__()
        self.bh, self.bw = spec.height // 4, spec.width // 4
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes else None
        self.fc = nn.Sequential(nn.Linear(z_dim, 128 * self.bh * self.bw), nn.LeakyReLU(0.2))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(128, 128, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(128, 128, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ZeroPad2d((5, 6, 5, 6)),  # Keras 'same' for a 12x12 kernel
            nn.Conv2d(128, spec.channels, 12, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = z * self.embed(c)
        return self.net(self.fc(z).view(-1, 128, self.bh, self.bw))


class RefJointDiscriminator(nn.Module):
    """Keras FER2013 BiGAN discriminator: concat[z, flatten(x)] -> 3 x (Dense 1024 + LeakyReLU(0.2) +
    Dropout 0.5) -> Dense(1). Returns a tuple with one logit tensor (N,)."""

    def __init__(self, spec: DataSpec, z_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = z_dim + spec.channels * spec.height * spec.width
        for _ in range(3):
            layers += [nn.Linear(cin, 1024), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
            cin = 1024
        self.net = nn.Sequential(*layers, nn.Linear(1024, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self.net(torch.cat([z, x.flatten(1)], dim=1)).squeeze(1),)


# --------------------------------------------------------------------------------------------
# default nets (also used by BiCoGAN's default)


class ConvEncoder(nn.Module):
    """Strided-conv encoder: Conv(ch, 3x3) then 4 x (Conv 4x4 s2 + BN + LeakyReLU 0.2) at ch, 2ch, 4ch,
    8ch (H/16 x W/16) -> Linear heads.

    Input float N x C x H x W in [-1, 1]; ``forward`` returns ``(z float N x z_dim, class logits float
    N x K or None)`` (the class head exists when ``num_classes > 0``).
    """

    def __init__(self, spec: DataSpec, z_dim: int, ch: int, num_classes: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(spec.channels, ch, 3, 1, 1), nn.LeakyReLU(0.2)]
        cin = ch
        for cout in (ch, 2 * ch, 4 * ch, 8 * ch):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
            cin = cout
        self.net = nn.Sequential(*layers, nn.Flatten())
        feat = 8 * ch * _strided(spec.height, 4, 2, 1, 4) * _strided(spec.width, 4, 2, 1, 4)
        self.z = nn.Linear(feat, z_dim)
        self.c = nn.Linear(feat, num_classes) if num_classes else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.net(x)
        return self.z(h), (self.c(h) if self.c is not None else None)


class JointDiscriminator(nn.Module):
    """BigBiGAN-style D(x, z[, c]) (Donahue & Simonyan 2019, sec. 3), spectrally normalized (Miyato et al. 2018).

    F(x): the SNGAN trunk (8ch features); H(z): 2-layer SN MLP (8ch); J: SN MLP on [F, H] (16ch) with a
    linear joint score s_xz, plus, with ``num_classes > 0``, a projection term <W c, J> (Miyato & Koyama
    2018) where c is a float N x K class vector (one-hot, or a straight-through encoded one). With
    ``unary`` the unary scores s_x = w_x . F(x) and s_z = w_z . H(z) are returned too.

    Returns a tuple of logit tensors (N,): ``(s_xz,)`` or ``(s_xz, s_x, s_z)``.
    """

    def __init__(self, spec: DataSpec, z_dim: int, ch: int, num_classes: int = 0, unary: bool = True) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.F = SNDiscriminatorTrunk(spec, ch)
        d = self.F.out_dim
        self.H = nn.Sequential(sn(nn.Linear(z_dim, d)), nn.LeakyReLU(0.1), sn(nn.Linear(d, d)), nn.LeakyReLU(0.1))
        self.J = nn.Sequential(sn(nn.Linear(2 * d, 2 * d)), nn.LeakyReLU(0.1))
        self.s_xz = sn(nn.Linear(2 * d, 1))
        self.proj = sn(nn.Linear(num_classes, 2 * d, bias=False)) if num_classes else None
        self.unary = unary
        if unary:
            self.s_x, self.s_z = sn(nn.Linear(d, 1)), sn(nn.Linear(d, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        fx, hz = self.F(x), self.H(z)
        j = self.J(torch.cat([fx, hz], dim=1))
        s = self.s_xz(j).squeeze(1)
        if self.proj is not None:
            s = s + (self.proj(c) * j).sum(dim=1)
        if not self.unary:
            return (s,)
        return s, self.s_x(fx).squeeze(1), self.s_z(hz).squeeze(1)


# --------------------------------------------------------------------------------------------
# the plugin


@dataclass
class BiGANConfig(AdversarialConfig):
    """Hyper-parameters of the BiGAN: :class:`~.blocks.AdversarialConfig` (``arch``, ``z_dim``, ``ch``,
    ``loss`` (see :func:`ge_loss`), ``lr_g``, ``lr_d``, ``betas``) plus

    Attributes:
        unary: BigBiGAN unary scores s_x, s_z in D (``sngan`` only).
        lr_e: Adam learning rate of E.
    """

    unary: bool = True
    lr_e: float = field(default=2e-4, metadata={'gt': 0})


def pair_losses(kind: str, real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> tuple:
    """(D loss, G/E loss): :func:`~.blocks.d_loss` and :func:`ge_loss` summed over D's scores."""
    ld = sum(d_loss(kind, r, f) for r, f in zip(real, fake))
    lge = sum(ge_loss(kind, r, f) for r, f in zip(real, fake))
    return ld, lge


@register_model("bigan")
class BiGAN(AdversarialPlugin, Sampler, Encoder):
    """BiGAN plugin: G(z) -> x, E(x) -> z, D(x, z) -> logit(s); one D then one joint G+E update per step."""

    Config = BiGANConfig
    named_configs = {
        # resize-conv up-sampling (results/ablation: cGAN FID_ml 4.91 -> 3.13, checker energy 35x -> 0.4x real faces')
        "default": {"model.upsample": "nearest", "train.ema": True, "train.batch_size": 64, "train.steps": 20000},
        "reference": {
            "model.arch": "reference", "model.z_dim": 100, "model.loss": "bce", "model.unary": False,
            "model.lr_g": 2e-4, "model.lr_e": 2e-4, "model.lr_d": 2e-4, "model.betas": [0.5, 0.999],
            "train.batch_size": 128, "train.steps": 20000, "data.augment.hflip": False,
        },
    }

    def __init__(self, cfg: BiGANConfig, spec: DataSpec, device="cpu", channels_last: bool = False) -> None:
        super().__init__(cfg, spec, device, channels_last)
        self.init_nets({
            "reference": lambda: {"G": RefGenerator(spec, cfg.z_dim), "E": RefEncoder(spec, cfg.z_dim),
                                  "D": RefJointDiscriminator(spec, cfg.z_dim)},
            "sngan": lambda: {"G": DCGenerator(spec, cfg.z_dim, cfg.ch, upsample=cfg.upsample), "E": ConvEncoder(spec, cfg.z_dim, cfg.ch),
                              "D": JointDiscriminator(spec, cfg.z_dim, cfg.ch, unary=cfg.unary)},
        }, {"G": cfg.lr_g, "E": cfg.lr_e, "D": cfg.lr_d})

    g_nets = ("G", "E")
    g_loss_name = "loss_ge"

    def d_inputs(self, batch: Batch):
        z = self.noise(batch.x.shape[0])
        fake, z_hat = self.nets["G"](z), self.nets["E"](batch.x)[0]
        return (batch.x, z_hat), (fake, z), {}

    def d_objective(self, batch: Batch, real_s, fake_s, ctx):
        loss_d, _ = pair_losses(self.cfg.loss, real_s, fake_s)
        return loss_d, {"d_real": real_s[0].mean().item(), "d_fake": fake_s[0].mean().item()}

    def g_objective(self, batch: Batch, ctx):
        G, E, D, x = self.nets["G"], self.nets["E"], self.nets["D"], batch.x
        z = self.noise(x.shape[0])
        z_hat = E(x)[0]
        real_g, fake_g = D(x, z_hat), D(G(z), z)
        _, loss_ge = pair_losses(self.cfg.loss, real_g, fake_g)
        return loss_ge, {"z_hat_std": z_hat.detach().std().item()}

    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """G(z) for z ~ N(0, I) drawn with the CPU ``generator``: float32 n x C x H x W in [-1, 1]; ``labels`` ignored."""
        return self.generate(self.randn(n, self.cfg.z_dim, generator=generator))

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """E(x): ``{"z": float32 N x z_dim}`` for float32 N x C x H x W images in [-1, 1] (see base)."""
        x, _ = self.check_images(x)
        with evaluating(self.nets["E"]):
            return {"z": self.nets["E"](x)[0].float()}

    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """G(E(x)) with the training G, float32 N x C x H x W in [-1, 1]; ``c`` is ignored (unconditional)."""
        x, _ = self.check_images(x)
        with evaluating(self.nets["E"], self.nets["G"]):
            return self.nets["G"](self.nets["E"](x)[0]).float()
