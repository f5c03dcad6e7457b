"""The Glow network of the ``flow`` plugin (:mod:`.flow`): an ``nf.MultiscaleFlow`` of ``nf.flows.GlowBlock``
steps (Kingma & Dhariwal 2018) with class-conditional diagonal Gaussian priors per level, and the shapes of
its latents."""

from __future__ import annotations

import math

import normflows as nf
import torch
from torch import nn

from exprbench.data import DataSpec


def latent_shapes(spec: DataSpec, levels: int) -> list[tuple[int, int, int]]:
    """Shapes (C, H, W) of the latents, coarsest level first (normflows' order of ``z``).

    Raises:
        ValueError: ``levels`` < 1, or H or W of ``spec`` not divisible by 2**levels.
    """
    c, h, w = spec.channels, spec.height, spec.width
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"model.levels={levels!r}: expected an integer >= 1")
    if h % 2 ** levels or w % 2 ** levels:
        raise ValueError(f"images {c}x{h}x{w}: height and width must be divisible by 2**levels = "
                         f"{2 ** levels} (model.levels={levels})")
    shapes = [(c * 2 ** (levels + 1), h >> levels, w >> levels)]
    shapes += [(c * 2 ** (levels - i), h >> (levels - i), w >> (levels - i)) for i in range(1, levels)]
    return shapes


class GlowNet(nn.Module):
    """The invertible network and its prior: an ``nf.MultiscaleFlow`` of ``nf.flows.GlowBlock`` steps.

    normflows' convention: ``forward`` maps latents to data, ``inverse`` data to latents. Here y is the
    flow's input (float N x C x H x W in [-0.5, 0.5], see :func:`dequantize`), z a list of per-level
    latents (coarsest first, shapes :func:`latent_shapes`) or their flattened concatenation (N x D).

    Actnorm initialization: normflows' ``ActNorm`` initializes itself from the first batch it sees
    (buffer ``data_dep_init_done``), whichever direction and whatever the batch is (samples, a test
    input). To keep sampling and encoding free of side effects, all actnorms are marked initialized
    (identity) at construction, and :meth:`data_init` re-runs the data-dependent initialization
    explicitly on the first training batch; the ``initialized`` buffer records that it happened, so a
    loaded checkpoint is never re-initialized.
    """

    def __init__(self, spec: DataSpec, cfg) -> None:  # cfg: a flow.FlowConfig
        super().__init__()
        self.shapes = latent_shapes(spec, cfg.levels)
        self.sizes = [math.prod(s) for s in self.shapes]
        self.num_classes = spec.num_classes
        q0, flows, merges = [], [], []
        for i in range(cfg.levels):
            channels = spec.channels * 2 ** (cfg.levels + 1 - i)
            flows.append([nf.flows.GlowBlock(channels, cfg.ch, scale=True, scale_map=cfg.scale_map,
                                             split_mode=cfg.split_mode, net_actnorm=cfg.net_actnorm)
                          for _ in range(cfg.steps_per_level)] + [nf.flows.Squeeze()])
            if i > 0:
                merges.append(nf.flows.Merge())
            q0.append(nf.distributions.ClassCondDiagGaussian(self.shapes[i], spec.num_classes))
        self.flow = nf.MultiscaleFlow(q0, flows, merges, class_cond=True)
        if cfg.weight_y > 0:  # Glow's y_logits: linear_zeros on the spatial mean of the top-level latent
            self.y_head = nn.Linear(self.shapes[0][0], spec.num_classes)
            nn.init.zeros_(self.y_head.weight)
            nn.init.zeros_(self.y_head.bias)
        self.register_buffer("initialized", torch.tensor(False))
        self._mark_actnorms(1.0)

    def _mark_actnorms(self, done: float) -> None:
        for m in self.modules():
            if isinstance(m, nf.flows.ActNorm):
                # normflows rebinds this buffer to a new CPU tensor when it initializes; rebind on our device
                m.data_dep_init_done = torch.tensor(done, device=m.s.device)

    @torch.no_grad()
    def data_init(self, y: torch.Tensor) -> None:
        """Data-dependent actnorm initialization (Glow sec. 3.1) from a batch y (N x C x H x W)."""
        self._mark_actnorms(0.0)
        self.flow.inverse_and_log_det(y)
        self._mark_actnorms(1.0)
        self.initialized.fill_(True)

    def latents(self, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """y -> (per-level latents, log|det dz/dy| float N)."""
        return self.flow.inverse_and_log_det(y.contiguous())  # Squeeze uses .view: needs NCHW-contiguous

    def generate(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """Per-level latents -> y (N x C x H x W)."""
        return self.flow.forward_and_log_det(zs)[0]

    def y_logits(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """Glow's class logits from the top-level latent's spatial mean: float N x K (needs ``weight_y > 0``)."""
        return self.y_head(zs[0].mean(dim=(2, 3)))

    def prior_log_prob(self, zs: list[torch.Tensor], c: torch.Tensor) -> torch.Tensor:
        """log p(z | c) in nats (float N) under the class-conditional priors; c int64 N."""
        return sum(q.log_prob(z, c) for q, z in zip(self.flow.q0, zs))

    def class_log_probs(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """log p(z | c = k) for every class k: float N x K (nats)."""
        n = zs[0].shape[0]
        return torch.stack([self.prior_log_prob(zs, torch.full((n,), k, dtype=torch.long, device=zs[0].device))
                            for k in range(self.num_classes)], dim=1)

    def log_prob(self, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Exact log-density log p(y | c) in nats (float N) by the change of variables."""
        zs, log_det = self.latents(y)
        return self.prior_log_prob(zs, c) + log_det

    def prior_params(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flattened prior mean and log-scale for labels c: two float N x D tensors."""
        loc = [q.loc.permute(q.n_dim, *range(q.n_dim))[c].flatten(1) for q in self.flow.q0]
        log_scale = [q.log_scale.permute(q.n_dim, *range(q.n_dim))[c].flatten(1) for q in self.flow.q0]
        return torch.cat(loc, 1), torch.cat(log_scale, 1)

    def flatten(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """Per-level latents -> N x D (concatenated, coarsest level first)."""
        return torch.cat([z.flatten(1) for z in zs], dim=1)

    def unflatten(self, z: torch.Tensor) -> list[torch.Tensor]:
        """N x D -> per-level latents (inverse of :meth:`flatten`)."""
        return [part.reshape(-1, *s) for part, s in zip(z.split(self.sizes, dim=1), self.shapes)]
