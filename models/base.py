"""The plugin contract every model implements (mimicry-style: the model owns losses and updates).

The harness builds a plugin from ``(cfg, spec, device)``, calls :meth:`ModelPlugin.training_step`
once per step with a :class:`Batch`, and checkpoints it through :meth:`state_dict`. It never
branches on the model type; metrics ask for :attr:`ModelPlugin.capabilities`.

Capabilities (a subset of :data:`CAPABILITIES`):
    ``sample``       generate images (``sample(n, labels)``)
    ``conditional``  generation takes class labels c
    ``encode``       x -> z (and c where predicted)
    ``translate``    (x, c_target) -> x'
    ``edit``         latent -> latent along an attribute direction
    ``likelihood``   bits/dim, exact or a bound
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from exprbench.data import DataSpec

CAPABILITIES = frozenset({"sample", "conditional", "encode", "translate", "edit", "likelihood"})


@dataclass
class Batch:
    """One training batch on the training device.

    Attributes:
        x: float32 N x C x H x W real images in [-1, 1] (augmented).
        c: int64 N class labels, indices into ``spec.class_names``.
    """

    x: torch.Tensor
    c: torch.Tensor


class ModelPlugin:
    """Base class of model plugins.

    Subclasses set ``name``, ``capabilities``, ``Config`` (a dataclass of model hyper-parameters,
    optimizer settings included) and ``named_configs`` (``{"default": {...}, "reference": {...}}``:
    dotted overrides over the whole run config, ``model.*``, ``train.*`` and ``data.*``), build
    their nets into ``self.nets`` and their optimizers into ``self.optimizers``, and implement
    :meth:`training_step` and :meth:`sample`.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    Config: ClassVar[type]
    named_configs: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    ema_net: ClassVar[str | None] = "G"  # the net whose EMA copy is used for sampling

    def __init__(self, cfg: Any, spec: DataSpec, device: torch.device | str = "cpu", channels_last: bool = False) -> None:
        self.cfg = cfg
        self.spec = spec
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.nets = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.ema: AveragedModel | None = None

    # -- construction helpers ------------------------------------------------------------
    def place(self) -> None:
        """Move ``self.nets`` to the device (and channels_last); call before building optimizers."""
        self.nets.to(self.device)
        if self.channels_last:
            self.nets.to(memory_format=torch.channels_last)

    def adam(self, net: str, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        """Adam over ``self.nets[net]``'s parameters, registered as ``self.optimizers[net]``."""
        opt = torch.optim.Adam(self.nets[net].parameters(), lr=lr, betas=betas)
        self.optimizers[net] = opt
        return opt

    def enable_ema(self, decay: float) -> None:
        """Keep an EMA copy of ``self.nets[self.ema_net]`` (buffers averaged too) for sampling."""
        if self.ema_net is None:
            return
        self.ema = AveragedModel(
            self.nets[self.ema_net], multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True
        )

    def update_ema(self) -> None:
        """Fold the current weights into the EMA copy (called by the harness after each step)."""
        if self.ema is not None:
            self.ema.update_parameters(self.nets[self.ema_net])

    def sampling_net(self, name: str | None = None) -> nn.Module:
        """The net used for generation: the EMA copy when enabled, else the training net."""
        name = name or self.ema_net
        if self.ema is not None and name == self.ema_net:
            return self.ema.module
        return self.nets[name]

    # -- the contract ---------------------------------------------------------------------
    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """Do one update of every net from ``batch``; return scalar losses/diagnostics as floats."""
        raise NotImplementedError

    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate ``n`` images, float32 n x C x H x W in [-1, 1], on ``self.device``.

        Args:
            n: number of images.
            labels: int64 n class indices (conditional models; uniform random when None,
                ignored by unconditional ones).
            generator: a CPU ``torch.Generator`` for z and random labels, so a fixed seed gives the
                same latents on any device.
        """
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Run :meth:`sampling_net` in eval mode on ``inputs`` (restoring its mode); float32 output."""
        G = self.sampling_net()
        was = G.training
        G.eval()
        try:
            return G(*inputs).float()
        finally:
            G.train(was)

    def conditional_sample(self, n: int, z_dim: int, labels: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        """:meth:`sample` for models whose generator is ``G(z, c)`` with z ~ N(0, I) of size ``z_dim``."""
        z = self.randn(n, z_dim, generator=generator)
        if labels is None:
            labels = self.random_labels(n, generator)
        return self.generate(z, labels.to(self.device))

    def draw_fake(self, n: int, z_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fakes for a training step of a ``G(z, c)`` model: (images N x C x H x W, uniform labels N)."""
        z = torch.randn(n, z_dim, device=self.device)
        c = torch.randint(0, self.spec.num_classes, (n,), device=self.device)
        return self.nets["G"](z, c), c

    def random_labels(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Uniform int64 labels 0..num_classes-1 drawn on the CPU with ``generator``."""
        return torch.randint(0, self.spec.num_classes, (n,), generator=generator)

    def randn(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise drawn on the CPU with ``generator``, moved to the device."""
        return torch.randn(*shape, generator=generator).to(self.device)

    # -- state ----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> None:
        self.nets.train(mode)

    def state_dict(self) -> dict[str, Any]:
        """Everything the plugin owns: nets, optimizers, EMA (tensors and plain Python only)."""
        return {
            "nets": self.nets.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (strict: missing or unexpected keys raise)."""
        self.nets.load_state_dict(state["nets"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])

    def num_parameters(self) -> dict[str, int]:
        """Parameter count per net."""
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.nets.items()}


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """zero_grad (to None), backward ``loss``, step: one update of the nets ``opt`` owns."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
