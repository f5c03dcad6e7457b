"""Class-conditional diffusion model: EDM (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models", arXiv:2206.00364) with classifier-free guidance (Ho & Salimans 2022,
arXiv:2207.12598).

Denoiser (EDM Table 1, "Ours"; sigma_data 0.5; x are the images in [-1, 1] times sigma_data / data_std,
so that their std is sigma_data: FER2013's training faces have std 0.614, hence x = 0.81 image):

    D(x; sigma, c) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma), c)
    c_skip = s_d^2 / (sigma^2 + s_d^2)    c_out = sigma s_d / sqrt(sigma^2 + s_d^2)
    c_in = 1 / sqrt(sigma^2 + s_d^2)      c_noise = ln(sigma) / 4

Training (:class:`EDMLoss`): ln(sigma) ~ N(P_mean, P_std^2) with P_mean -1.2, P_std 1.2, loss
lambda(sigma) ||D(x + n sigma; sigma, c) - x||^2 with lambda = (sigma^2 + s_d^2) / (sigma s_d)^2, n ~ N(0, I);
labels are replaced by the null class K with probability ``label_dropout`` (0.1, Ho & Salimans).
Sampling (:func:`heun_sampler`): EDM Algorithm 1, the deterministic Heun 2nd-order solver of the
probability-flow ODE on the sigmas of eq. 5 (sigma_min 0.002, sigma_max 80, rho 7; 18 steps = 35
evaluations of D), with the guided denoiser D_w = D(x; c) + w (D(x; c) - D(x; null)) (:func:`cfg_denoiser`;
w = ``guidance``, 0 is the plain conditional model and costs one evaluation per step instead of two).

The raw network F is our UNet (:mod:`.diffusion_nets`), stored as ``nets["F"]``; sampling reads its EMA
copy (``train.ema``). It was kept over ``diffusers.UNet2DModel`` (0.42.1) built to the same topology
(``block_out_channels`` 16/32/64, 2 ``layers_per_block``, attention at 12x12, ``num_class_embeds`` K + 1,
``class_embed_type`` None: 0.99M parameters each) because it was as fast or faster, measured on the
2-core CI-class machine at 1 thread, batch 64, channels_last, best of 10 steps (two other trainings were
running, so medians were noisy): training 49-51 img/s vs 46-48; sampling evaluations of F 142-152 img/s vs
122-124 at batch 128 and 116-135 vs 101 at batch 2. Both cost 1.8-1.9 GFLOP per training image
(``FlopCounterMode``, forward + backward; the cGAN of the cpu suite: about 1.8), i.e. 0.60-0.63 GFLOP per
evaluation of F, so one sample at 18 Heun steps costs 21 GFLOP (twice that with guidance), measured
0.27 s on one thread (``benchmarks/perf/test_diffusion_sampling.py``; docs/MODELS.md, "Diffusion").

Configs:
    ``reference``  EDM's class-conditional CIFAR-10 setup (Table 7, DDPM++ network) scaled to 48x48:
                   widths 128 x (2, 2, 2), 4 residual blocks per resolution, attention at the second
                   resolution (24x24, as 16x16 at 32x32; 53.6M parameters vs DDPM++'s 56M), dropout 0.13,
                   Adam 1e-3 (0.9, 0.999) with a linear ramp-up over 10 Mimg (19,531 steps), batch 512,
                   EMA half-life 0.5 Mimg (decay 0.5 ** (512 / 500,000) = 0.99929 per step), 200 Mimg
                   (390,625 steps), 18 Heun steps. Kept from EDM's augmentation (probability 0.12, with
                   augmentation labels fed to the net): the horizontal flip only. Differences: our UNet
                   (ADM-style stride-2 conv down / nearest up-sampling instead of DDPM++'s FIR resampling
                   blocks, the class embedding added after the noise MLP); bf16 autocast on CUDA (the
                   harness's; EDM trained CIFAR-10 in fp32); the harness's EMA warm-up instead of EDM's
                   half-life ramp-up; the images scaled to std sigma_data; and label dropout 0.1 (not in
                   EDM), so that a reference run can also be sampled with guidance (w = 0 is EDM's sampler).
    ``default``    sized for the cpu suite: widths 16 x (1, 2, 4), 2 blocks per resolution, attention
                   at 12x12, no dropout, Adam 1e-3 with a 300-step ramp-up, batch 64, EMA 0.999, flips,
                   guidance 0 (its weight w is to be chosen by measurement).
Capabilities: ``sample``, ``conditional`` (no likelihood: the ODE likelihood is not implemented).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch

from exprbench.data import DataSpec

from . import register_model
from .base import Batch, ModelPlugin
from .contracts import Conditional, Sampler
from .diffusion_nets import UNet
from .runtime import optimizer_step

#: D(x, sigma, labels) -> denoised x; x float N x C x H x W, sigma a float or float N, labels int64 N
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class DiffusionConfig:
    """Hyper-parameters of the EDM diffusion model (see the module docstring).

    Attributes:
        ch, mult, blocks: UNet widths ``ch * mult[i]`` per resolution (H and W divisible by
            2 ** (len(mult) - 1)) and residual blocks per resolution.
        attn_levels: resolutions (0 = full size) with self-attention; head_dim: channels per head.
        dropout: dropout in the residual blocks.
        label_dropout: probability that a training label is replaced by the null class (CFG).
        sigma_data, p_mean, p_std: EDM's data std and log-normal training sigmas.
        data_std: the std of the training images in [-1, 1] (FER2013 train: 0.614); the diffusion runs on
            images times sigma_data / data_std, and samples are divided by it again.
        sigma_min, sigma_max, rho, sample_steps: the sampler's sigmas (EDM eq. 5) and its steps N
            (2N - 1 evaluations of D).
        guidance: CFG weight w at sampling (0 = the conditional model).
        curve_steps: Heun steps of the cheaper sampler the training-curve points use (:meth:`curve_sampling`).
        lr, betas, warmup_steps: Adam settings; the learning rate ramps up linearly over ``warmup_steps``.
    """

    ch: int = field(default=16, metadata={"min": 1})
    mult: tuple[int, ...] = field(default=(1, 2, 4), metadata={"min": 1})
    blocks: int = field(default=2, metadata={"min": 1})
    attn_levels: tuple[int, ...] = field(default=(2,), metadata={"min": 0})
    head_dim: int = field(default=64, metadata={"min": 1})
    dropout: float = field(default=0.0, metadata={"min": 0, "lt": 1})
    label_dropout: float = field(default=0.1, metadata={"min": 0, "lt": 1})
    sigma_data: float = field(default=0.5, metadata={"gt": 0})
    data_std: float = field(default=0.614, metadata={"gt": 0})
    p_mean: float = -1.2
    p_std: float = field(default=1.2, metadata={"gt": 0})
    sigma_min: float = field(default=0.002, metadata={"gt": 0})
    sigma_max: float = field(default=80.0, metadata={"gt": 0})
    rho: float = field(default=7.0, metadata={"gt": 0})
    sample_steps: int = field(default=18, metadata={"min": 2})
    curve_steps: int = field(default=6, metadata={"min": 2})
    guidance: float = field(default=0.0, metadata={"min": 0})
    lr: float = field(default=1e-3, metadata={"gt": 0})
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = field(default=300, metadata={"min": 0})


# --------------------------------------------------------------------------------------------
# the method (EDM equations)


def edm_precond(sigma: torch.Tensor, sigma_data: float = 0.5) -> tuple[torch.Tensor, ...]:
    """EDM's preconditioning (Table 1): (c_skip, c_out, c_in, c_noise) of float ``sigma`` > 0, each of its
    shape and dtype: s_d^2 / (sigma^2 + s_d^2), sigma s_d / sqrt(sigma^2 + s_d^2), 1 / sqrt(sigma^2 + s_d^2),
    ln(sigma) / 4."""
    total = sigma ** 2 + sigma_data ** 2
    return sigma_data ** 2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt(), sigma.log() / 4


def precond_denoiser(F: Callable, x: torch.Tensor, sigma: torch.Tensor | float, labels: torch.Tensor,
                     sigma_data: float = 0.5) -> torch.Tensor:
    """D(x; sigma, c) = c_skip x + c_out F(c_in x; c_noise, c) (EDM eq. 7) in float32.

    Args:
        F: the raw net, ``F(x, c_noise, labels)`` with x float N x C x H x W, c_noise float N.
        x: float N x C x H x W noisy images; sigma: a float, or float N (one per image), > 0.
        labels: int64 N class indices (K = the null class).

    Returns:
        float32 N x C x H x W, the denoised estimate of the clean images.
    """
    x = x.float()
    n = x.shape[0]
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1, 1, 1, 1).expand(n, 1, 1, 1)
    c_skip, c_out, c_in, c_noise = edm_precond(sigma, sigma_data)
    return c_skip * x + c_out * F(c_in * x, c_noise.flatten(), labels).float()


class EDMLoss:
    """EDM's training loss (Karras et al. 2022, sec. 5 and Table 1; NVlabs/edm ``training/loss.py`` EDMLoss):
    ln(sigma) ~ N(P_mean, P_std^2), y = x + n sigma with n ~ N(0, I), loss = lambda(sigma) (D(y; sigma, c) - x)^2
    with lambda(sigma) = (sigma^2 + s_d^2) / (sigma s_d)^2, per element (float32 N x C x H x W)."""

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = 0.5) -> None:
        self.p_mean, self.p_std, self.sigma_data = p_mean, p_std, sigma_data

    def __call__(self, D: Denoiser, x: torch.Tensor, labels: torch.Tensor, sigma: torch.Tensor | None = None,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of denoiser D on clean images x (float N x C x H x W in [-1, 1]) with int64 N labels; sigma
        (float N) and noise (like x) are drawn from the global RNG on x's device unless given."""
        if sigma is None:
            sigma = (torch.randn(x.shape[0], device=x.device) * self.p_std + self.p_mean).exp()
        noise = torch.randn_like(x) if noise is None else noise
        s = sigma.float().reshape(-1, 1, 1, 1)
        weight = (s ** 2 + self.sigma_data ** 2) / (s * self.sigma_data) ** 2
        return weight * (D(x + noise * s, sigma, labels) - x.float()) ** 2


def edm_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM eq. 5: t_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho for
    i < N = ``steps``, and t_N = 0: float64 N + 1, decreasing from sigma_max to 0.

    Raises:
        ValueError: ``steps`` < 2 or not 0 < sigma_min < sigma_max.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"model.sample_steps={steps!r}: expected an integer >= 2")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"model.sigma_min={sigma_min}, model.sigma_max={sigma_max}: expected 0 < sigma_min < sigma_max")
    i = torch.arange(steps, dtype=torch.float64)
    t = (sigma_max ** (1 / rho) + i / (steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)])


def heun_sampler(D: Callable[[torch.Tensor, float], torch.Tensor], latents: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """EDM Algorithm 1 (deterministic Heun 2nd order; S_churn = 0): solve dx/dsigma = (x - D(x; sigma)) / sigma
    from x_0 = latents * t_0 along ``sigmas`` (float64 N + 1 ending at 0; :func:`edm_sigmas`), with an
    Euler last step: 2N - 1 evaluations of D(x float32, sigma float) -> float.

    Args:
        latents: float n x C x H x W standard normal noise.

    Returns:
        float64 n x C x H x W, the ODE's end point x_N (unclamped).
    """
    t = [float(s) for s in sigmas]
    x = latents.double() * t[0]
    for t_cur, t_next in zip(t[:-1], t[1:]):
        d = (x - D(x.float(), t_cur).double()) / t_cur
        x_next = x + (t_next - t_cur) * d
        if t_next > 0:
            d_next = (x_next - D(x_next.float(), t_next).double()) / t_next
            x_next = x + (t_next - t_cur) * (d + d_next) / 2
        x = x_next
    return x


def cfg_denoiser(D: Denoiser, labels: torch.Tensor, null: int, w: float) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6 in denoiser form): D_w(x; sigma) = D(x; sigma, c)
    + w (D(x; sigma, c) - D(x; sigma, null)), both evaluated in one batch of 2n; labels int64 n."""
    both = torch.cat([labels, torch.full_like(labels, null)])

    def guided(x: torch.Tensor, sigma: float) -> torch.Tensor:
        d_c, d_u = D(torch.cat([x, x]), sigma, both).chunk(2)
        return d_c + w * (d_c - d_u)

    return guided


# --------------------------------------------------------------------------------------------
# plugin


@register_model("diffusion")
class Diffusion(ModelPlugin, Sampler, Conditional):
    """EDM diffusion plugin: one Adam step on the EDM loss per ``training_step``; sampling by Heun's method."""

    Config = DiffusionConfig
    ema_net = "F"
    training_only_nets = frozenset()
    sampling_settings = ("guidance", "sample_steps")  # exprbench sweep varies them on a trained checkpoint
    named_configs = {
        "default": {"train.ema": True, "train.ema_decay": 0.999, "train.batch_size": 64, "train.steps": 20000},
        "reference": {
            "model.ch": 128, "model.mult": [2, 2, 2], "model.blocks": 4, "model.attn_levels": [1],
            "model.dropout": 0.13, "model.label_dropout": 0.1, "model.lr": 1e-3, "model.betas": [0.9, 0.999],
            "model.warmup_steps": 19531, "model.guidance": 0.0, "train.batch_size": 512,
            "train.steps": 390625, "train.ema": True, "train.ema_decay": 0.99929, "data.augment.hflip": True,
        },
    }

    def __init__(self, cfg: DiffusionConfig, spec: DataSpec, device="cpu", channels_last: bool = False) -> None:
        super().__init__(cfg, spec, device, channels_last)
        self.check_config(cfg, spec)
        self.nets["F"] = UNet(spec.channels, spec.num_classes, cfg.ch, tuple(cfg.mult), cfg.blocks,
                              tuple(cfg.attn_levels), cfg.dropout, cfg.head_dim)
        self.place()
        self.adam("F", cfg.lr, cfg.betas)
        self.loss = EDMLoss(cfg.p_mean, cfg.p_std, cfg.sigma_data)
        self.null = spec.num_classes  # the null class index K of classifier-free guidance
        self.scale = cfg.sigma_data / cfg.data_std  # images in [-1, 1] -> the diffusion's x (std sigma_data)

    @staticmethod
    def check_config(cfg: DiffusionConfig, spec: DataSpec) -> None:
        """Checks across fields and against the image size.

        Raises:
            ValueError: one line naming the key and value.
        """
        levels = len(cfg.mult)
        if not levels or min(cfg.mult) < 1 or cfg.ch < 1 or cfg.blocks < 1:
            raise ValueError(f"model.mult={list(cfg.mult)}, model.ch={cfg.ch}, model.blocks={cfg.blocks}: expected positive sizes")
        if spec.height % 2 ** (levels - 1) or spec.width % 2 ** (levels - 1):
            raise ValueError(f"diffusion: images {spec.height}x{spec.width} not divisible by 2**(len(model.mult) - 1) "
                             f"= {2 ** (levels - 1)}")
        if any(not 0 <= a < levels for a in cfg.attn_levels):
            raise ValueError(f"model.attn_levels={list(cfg.attn_levels)}: expected levels in 0..{levels - 1}")
        edm_sigmas(cfg.sample_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
        if not (0 <= cfg.label_dropout < 1 and 0 <= cfg.dropout < 1 and cfg.guidance >= 0):
            raise ValueError(f"model.label_dropout={cfg.label_dropout}, model.dropout={cfg.dropout}, "
                             f"model.guidance={cfg.guidance}: expected probabilities in [0, 1) and w >= 0")

    # -- the denoiser ------------------------------------------------------------------------
    def denoiser(self, F: torch.nn.Module | None = None) -> Denoiser:
        """D(x, sigma, labels) of net F (default: the training net), see :func:`precond_denoiser`."""
        F = self.nets["F"] if F is None else F
        return lambda x, sigma, labels: precond_denoiser(F, x, sigma, labels, self.cfg.sigma_data)

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step`` (0-based): linear ramp-up to ``cfg.lr`` over ``warmup_steps`` (EDM's ramp-up)."""
        w = self.cfg.warmup_steps
        return self.cfg.lr * min(1.0, (step + 1) / w) if w > 0 else self.cfg.lr

    # -- training ----------------------------------------------------------------------------
    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One Adam step on the mean EDM loss of the batch, labels dropped to the null class with
        probability ``label_dropout`` (global RNG on the device), on the images times ``self.scale``. Returns ``loss`` (the mean weighted
        squared error per pixel), ``label_dropped`` (fraction of null labels) and ``lr``."""
        opt, lr = self.optimizers["F"], self.lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        c = batch.c.to(self.device)
        drop = torch.rand(c.shape[0], device=self.device) < self.cfg.label_dropout
        labels = torch.where(drop, torch.full_like(c, self.null), c)
        loss = self.loss(self.denoiser(), batch.x * self.scale, labels).mean()
        optimizer_step(opt, loss)
        return {"loss": loss.item(), "label_dropped": drop.float().mean().item(), "lr": lr}

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images by Heun's method (:func:`heun_sampler`, ``sample_steps`` steps) with the guided
        denoiser of weight ``guidance`` (:func:`cfg_denoiser`; w = 0: the conditional D alone) of the EMA net
        in eval mode, under ``torch.inference_mode``. The latents (float32 n x C x H x W ~ N(0, I)) and
        then, when None, uniform labels are drawn on the CPU with ``generator``.

        Returns:
            float32 n x C x H x W in [-1, 1] (clamped) on the device.

        Raises:
            ValueError: bad labels.
        """
        s = self.spec
        latents = self.randn(n, s.channels, s.height, s.width, generator=generator)
        labels = self.check_labels(self.random_labels(n, generator) if labels is None else labels, n)
        return self.sample_from(latents, labels, self.cfg.guidance)

    def sample_from(self, latents: torch.Tensor, labels: torch.Tensor, guidance: float) -> torch.Tensor:
        """Heun-sample from given latents (float n x C x H x W) and int64 n labels on the device with CFG
        weight ``guidance``, divided by ``self.scale``: float32 n x C x H x W in [-1, 1] (clamped), an
        ordinary tensor (not an inference tensor)."""
        cfg, F = self.cfg, self.sampling_net()
        if self.channels_last:
            latents = latents.contiguous(memory_format=torch.channels_last)
        was = F.training
        F.eval()
        try:
            with torch.inference_mode():
                D = self.denoiser(F)
                den = (lambda x, sigma: D(x, sigma, labels)) if guidance == 0 else cfg_denoiser(D, labels, self.null, guidance)
                x = heun_sampler(den, latents, edm_sigmas(cfg.sample_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho))
        finally:
            F.train(was)
        return (x / self.scale).float().clamp(-1.0, 1.0).contiguous()

    def num_evaluations(self) -> int:
        """Evaluations of F per image by :meth:`sample`: (2N - 1), doubled with guidance."""
        return (2 * self.cfg.sample_steps - 1) * (1 if self.cfg.guidance == 0 else 2)

    @contextlib.contextmanager
    def curve_sampling(self):
        """``curve_steps`` Heun steps instead of ``sample_steps`` while training curves are evaluated (the
        curve points rank checkpoints of one run; the final evaluation uses the full sampler)."""
        full = self.cfg.sample_steps
        self.cfg.sample_steps = min(self.cfg.curve_steps, full)
        try:
            yield
        finally:
            self.cfg.sample_steps = full

    def sampling_info(self) -> dict:
        """EDM Heun sampler steps N, evaluations of F per image and the CFG weight w, as :meth:`sample` uses them."""
        return {"sampler": "edm-heun", "steps": self.cfg.sample_steps, "evaluations": self.num_evaluations(),
                "guidance": self.cfg.guidance}

