"""The plugin base every model subclasses (mimicry-style: the model owns its losses and updates).

The harness builds a plugin from ``(cfg, spec, device)``, calls :meth:`ModelPlugin.training_step`
once per step with a :class:`Batch`, and checkpoints it through :meth:`ModelPlugin.state_dict`. It
never branches on the model type; metrics ask for :attr:`ModelPlugin.capabilities`, whose methods
live in the contracts of :mod:`.contracts` (checked at registration), not here.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from exprbench.data import DataSpec
from exprbench.core.validate import check_class, check_float_images, check_labels

from .runtime import cpu_labels, cpu_randn


@dataclass
class Batch:
    """One training batch on the training device.

    Attributes:
        x: float32 N x C x H x W real images in [-1, 1] (augmented).
        c: int64 N class labels, indices into ``spec.class_names``.
        epoch: epochs of the training split consumed before this batch (float >= 0), for epoch-based
            schedules (BiCoGAN's EFL weight).
        progress: fraction of the run's budget spent before this batch, in [0, 1] (steps done / steps,
            or training seconds / minutes budget, whichever is larger), for budget-relative schedules
            (the VAE's KL warm-up).
    """

    x: torch.Tensor
    c: torch.Tensor
    epoch: float = 0.0
    progress: float = 0.0


@dataclass(frozen=True)
class Resources:
    """Trained parts a plugin is built on, handed in by the layer that builds it: a plugin imports nothing above
    ``models/`` to find them. A plugin names what it uses in :attr:`ModelPlugin.needs`.

    Attributes:
        load_run: ``(run_dir, device) -> (cfg, plugin, spec, step)``, a trained run (the runs layer's
            ``load_trained``); InterFaceGAN's base GAN.
        load_scorer: ``(weights path or None, device) -> scorer`` whose ``probs(imgs, class_names)`` maps uint8
            N x C x H x W images to float32 N x K probabilities; None loads the shipped auxiliary FER classifier
            (the metrics layer's ``load_aux_classifier``); InterFaceGAN's boundary scorer.
    """

    load_run: Callable[..., tuple] | None = None
    load_scorer: Callable[..., Any] | None = None

    def get(self, name: str, model: str) -> Callable:
        """The resource ``name``.

        Raises:
            RuntimeError: it was not handed in (naming the plugin ``model`` that needs it).
        """
        fn = getattr(self, name)
        if fn is None:
            raise RuntimeError(f"{model}: no {name} was handed in; build the plugin with "
                               f"build_model(..., resources=Resources({name}=...)) (exprbench train passes it)")
        return fn


class ModelPlugin:
    """Base class of model plugins.

    Subclasses set ``name``, ``capabilities``, ``Config`` (a dataclass of model hyper-parameters,
    optimizer settings included) and ``named_configs`` (``{"default": {...}, "reference": {...}}``:
    dotted overrides over the whole run config, ``model.*``, ``train.*`` and ``data.*``), build
    their nets into ``self.nets`` and their optimizers into ``self.optimizers``, implement
    :meth:`training_step`, and inherit the contract class of each declared capability
    (:mod:`.contracts`) with its methods implemented.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    Config: ClassVar[type]
    named_configs: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    ema_net: ClassVar[str | None] = "G"  # the net whose EMA copy is used for sampling
    #: batches x images drawn to recompute the EMA net's BatchNorm statistics (see :meth:`recalibrate_ema`)
    ema_bn_batches: ClassVar[tuple[int, int]] = (8, 256)
    #: nets needed only to train (left out of published weights, see :mod:`exprbench.runs.weights`)
    training_only_nets: ClassVar[frozenset[str]] = frozenset({"D"})
    #: the :class:`Resources` fields the plugin uses (its constructor then takes ``resources=``)
    needs: ClassVar[frozenset[str]] = frozenset()
    #: config fields that change only how a trained model samples (a diffusion model's guidance weight and
    #: sampler steps): ``exprbench sweep`` varies them on one checkpoint, without training again
    sampling_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: Any, spec: DataSpec, device: torch.device | str = "cpu", channels_last: bool = False,
                 resources: Resources | None = None) -> None:
        self.cfg = cfg
        self.resources = resources or Resources()
        self.spec = spec
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.nets = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.ema: AveragedModel | None = None
        self._ema_recalibrates = self._ema_stale = False

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

    def init_nets(self, builders: dict[str, Callable[[], dict[str, nn.Module]]], lrs: dict[str, float]) -> None:
        """Build the nets of ``builders[self.cfg.arch]`` (name -> module) into ``self.nets``, place
        them, and create one Adam optimizer per entry of ``lrs`` (net name -> learning rate) with
        ``cfg.betas``.

        Raises:
            ValueError: ``cfg.arch`` is not a key of ``builders``.
        """
        if self.cfg.arch not in builders:
            raise ValueError(f"model.arch={self.cfg.arch!r}: expected one of {', '.join(map(repr, builders))}")
        for name, net in builders[self.cfg.arch]().items():
            self.nets[name] = net
        self.place()
        for name, lr in lrs.items():
            self.adam(name, lr, self.cfg.betas)

    def enable_ema(self, decay: float) -> None:
        """Keep an EMA copy of ``self.nets[self.ema_net]`` for sampling.

        The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the
        ``num_updates`` schedule of TensorFlow's ExponentialMovingAverage), so early samples are not
        dominated by the initial weights. BatchNorm statistics of the training net belong to the
        training weights, not to the averaged ones: plugins whose :meth:`bn_calibration_inputs` gives
        the net's inputs get them recomputed for the EMA weights before each use
        (:meth:`recalibrate_ema`); the others average the buffers with the weights.
        """
        if self.ema_net is None:
            return

        def avg_fn(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
            d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
            return avg * d + new * (1.0 - d)

        probe = self.bn_calibration_inputs(1, torch.Generator().manual_seed(0))
        self._ema_recalibrates = probe is not None
        self.ema = AveragedModel(self.nets[self.ema_net], avg_fn=avg_fn, use_buffers=not self._ema_recalibrates)
        self._ema_stale = True

    def update_ema(self) -> None:
        """Fold the current weights into the EMA copy (called by the harness after each step)."""
        if self.ema is not None:
            self.ema.update_parameters(self.nets[self.ema_net])
            self._ema_stale = True

    def bn_calibration_inputs(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...] | None:
        """Inputs of the EMA net for :meth:`recalibrate_ema` (e.g. ``(z,)`` or ``(z, c)`` of ``n``
        latents drawn with the CPU ``generator``), or None (the default) when the plugin cannot draw
        them: then the EMA copy averages the training net's BatchNorm buffers instead."""
        return None

    @torch.no_grad()
    def recalibrate_ema(self) -> None:
        """Recompute the BatchNorm running statistics of the EMA net for its averaged weights.

        Runs ``ema_bn_batches`` batches of :meth:`bn_calibration_inputs` (from a fixed private
        generator, so the result depends on the weights only and the training's random stream is
        untouched) through the EMA net in train mode with cumulative averaging
        (``momentum=None``), as ``torch.optim.swa_utils.update_bn`` does for SWA (Izmailov et al.
        2018). A no-op without EMA, without BatchNorm layers, or when nothing changed since the last call.
        """
        if self.ema is None or not self._ema_recalibrates or not self._ema_stale:
            return
        net = self.ema.module
        bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        self._ema_stale = False
        if not bns:
            return
        momenta = [m.momentum for m in bns]
        was = net.training
        gen = torch.Generator().manual_seed(20141210)
        n_batches, size = self.ema_bn_batches
        try:
            for m in bns:
                m.reset_running_stats()
                m.momentum = None
            net.train()
            for _ in range(n_batches):
                net(*self.bn_calibration_inputs(size, gen))
        finally:
            for m, mom in zip(bns, momenta):
                m.momentum = mom
            net.train(was)

    def curve_sampling(self) -> contextlib.AbstractContextManager:
        """A context in which :meth:`sample` is cheaper, for the periodic training-curve evaluations (a
        diffusion model's fewer sampler steps); the default changes nothing. What it samples with is in
        :meth:`sampling_info`."""
        return contextlib.nullcontext()

    def sampling_info(self) -> dict:
        """The settings that define this plugin's samples beyond its config (sampler steps, guidance weight),
        recorded beside every evaluation in eval.json; {} when there are none."""
        return {}

    def sampling_net(self, name: str | None = None) -> nn.Module:
        """The net used for generation: the EMA copy when enabled (its BatchNorm statistics
        recomputed first where the plugin supports it), else the training net."""
        name = name or self.ema_net
        if self.ema is not None and name == self.ema_net:
            self.recalibrate_ema()
            return self.ema.module
        return self.nets[name]

    # -- the training contract -------------------------------------------------------------
    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """Do one update of every net from ``batch``; return scalar losses/diagnostics as floats."""
        raise NotImplementedError

    def check_labels(self, c: torch.Tensor, n: int) -> torch.Tensor:
        """``c`` as int64 n labels on the device (:func:`exprbench.core.validate.check_labels`).

        Raises:
            ValueError: ``c`` not n integer labels in 0..K-1 (the message gives its shape and dtype).
        """
        return check_labels(c, n, self.spec.num_classes).to(self.device)

    def check_class(self, k: int, what: str = "class") -> int:
        """``k`` as a class index; raises ValueError naming the value otherwise."""
        return check_class(k, self.spec.num_classes, what)

    def check_images(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate capability-API inputs and move them to the device (x float32, c int64).

        Raises:
            ValueError: ``x`` not a float N x C x H x W of the spec's shape; ``c`` not N labels in 0..K-1.
        """
        s = self.spec
        check_float_images(x, "images", s.channels, (s.height, s.width))
        if c is not None:
            c = self.check_labels(c, x.shape[0])
        x = x.float().to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, c

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

    def random_labels(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Uniform int64 labels 0..num_classes-1 drawn on the CPU with ``generator``."""
        return cpu_labels(n, self.spec.num_classes, generator)

    def randn(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise drawn on the CPU with ``generator``, moved to the device."""
        return cpu_randn(self.device, *shape, generator=generator)

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
            self._ema_stale = True

    def num_parameters(self) -> dict[str, int]:
        """Parameter count per net."""
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.nets.items()}


