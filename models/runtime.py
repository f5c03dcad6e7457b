"""Runtime helpers every plugin may import (no plugin imports another plugin for them): eval-mode
context, optimizer steps, device-independent random draws.

Random draws for sampling APIs come from a CPU ``torch.Generator`` and are then moved to the device,
so a fixed seed gives the same latents on any device; training draws use the global RNG on the device.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn


@contextlib.contextmanager
def evaluating(*nets: nn.Module) -> Iterator[None]:
    """Put ``nets`` in eval mode under ``torch.no_grad()``, restoring their modes afterwards."""
    modes = [n.training for n in nets]
    try:
        for n in nets:
            n.eval()
        with torch.no_grad():
            yield
    finally:
        for n, m in zip(nets, modes):
            n.train(m)


@contextlib.contextmanager
def frozen(net: nn.Module) -> Iterator[nn.Module]:
    """``net.requires_grad_(False)`` inside the block, True again afterwards (D during a G step)."""
    net.requires_grad_(False)
    try:
        yield net
    finally:
        net.requires_grad_(True)


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """zero_grad (to None), backward ``loss``, step: one update of the nets ``opt`` owns."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def joint_step(opts: Sequence[torch.optim.Optimizer], loss: torch.Tensor) -> None:
    """zero_grad every optimizer in ``opts``, backward ``loss`` once, step them all (e.g. G and E together)."""
    for o in opts:
        o.zero_grad(set_to_none=True)
    loss.backward()
    for o in opts:
        o.step()


def cpu_randn(device: torch.device, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """float32 standard normal noise of ``shape`` drawn on the CPU with ``generator``, moved to ``device``."""
    return torch.randn(*shape, generator=generator).to(device)


def cpu_labels(n: int, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """int64 n uniform labels in 0..num_classes-1 drawn on the CPU with ``generator`` (left on the CPU)."""
    return torch.randint(0, num_classes, (n,), generator=generator)


def fp32(device: torch.device) -> contextlib.AbstractContextManager:
    """A context with autocast disabled on ``device``'s type (likelihood math stays float32)."""
    return torch.autocast(device.type, enabled=False)
