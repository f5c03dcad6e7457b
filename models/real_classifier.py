"""The real-face classifier C that guides a generator toward an asked-for class (the ACGAN / cGAN / BiCoGAN /
CCycleGAN defaults, and the VAE's class loss on decoded prior samples, the CVAE-GAN recipe of Bao et al.
2017): a small BatchNorm CNN trained by cross-entropy on real faces only, read in eval mode on generated
images; with ``cfg.diffaugment`` it sees DiffAugmented inputs (Zhao et al. 2020), real and generated alike,
so a generator cannot pass its class by writing pixel-exact marks that only C reads.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from .blocks import BNClassifier
from .diffaugment import augment_inputs, parse_policy
from .runtime import optimizer_step


class RealClassifierMixin:
    """Adds C to a :class:`~.base.ModelPlugin` (``self.nets``, ``self.optimizers``, ``self.spec``, ``self.cfg``).

    ``augmented_nets`` names the nets that DiffAugment every image they are called with (``cfg.diffaugment``;
    installed by :meth:`place` as forward pre-hooks, so checkpoints are unchanged); the plugin lists C in
    ``training_only_nets``.
    """

    augmented_nets: ClassVar[tuple[str, ...]] = ("C",)

    def place(self) -> None:
        """Place the nets, then make every net of ``augmented_nets`` DiffAugment its image input."""
        super().place()
        policy = parse_policy(getattr(self.cfg, "diffaugment", ""))
        for name in self.augmented_nets:
            if name in self.nets:
                augment_inputs(self.nets[name], policy)

    def init_real_classifier(self, ch: int, lr: float) -> None:
        """Add C, a :class:`~.blocks.BNClassifier` of width ``ch`` with its own Adam (``lr``, default betas)."""
        self.nets["C"] = BNClassifier(self.spec, ch)
        self.place()
        self.optimizers["C"] = torch.optim.Adam(self.nets["C"].parameters(), lr=lr)

    def real_classifier_step(self, batch) -> dict[str, float]:
        """C's cross-entropy update on the real batch (x float N x C x H x W in [-1, 1], c int64 N); logs
        ``loss_c`` and ``c_acc_real`` ({} without C)."""
        if "C" not in self.nets:
            return {}
        logits = self.nets["C"](batch.x)
        loss_c = F.cross_entropy(logits, batch.c)
        optimizer_step(self.optimizers["C"], loss_c)
        return {"loss_c": loss_c.item(), "c_acc_real": (logits.argmax(1) == batch.c).float().mean().item()}

    def real_classifier_logits(self, fake: torch.Tensor) -> torch.Tensor:
        """C's class logits (float N x K) for generated images: eval mode (running statistics of real faces),
        no gradient into C's weights (the gradient flows to ``fake``), C back in train mode afterwards."""
        C = self.nets["C"]
        C.eval()
        C.requires_grad_(False)
        try:
            return C(fake)
        finally:
            C.requires_grad_(True)
            C.train()
