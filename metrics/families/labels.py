"""Label utilities shared by every metric of the layer: the confusion matrix, per-class accuracy and
the class-balanced subset."""

from __future__ import annotations

from typing import Sequence

import torch

from exprbench.core.errors import UserError


def confusion_matrix(true: torch.Tensor, pred: torch.Tensor, k: int) -> list[list[int]]:
    """K x K counts: row = true class, column = predicted class."""
    m = torch.bincount(true.cpu() * k + pred.cpu(), minlength=k * k).reshape(k, k)
    return m.tolist()


def per_class_accuracy(cm: list[list[int]], class_names: Sequence[str]) -> dict[str, float | None]:
    """Recall of each class from a confusion matrix (None for a class with no image)."""
    out = {}
    for i, name in enumerate(class_names):
        tot = sum(cm[i])
        out[name] = (cm[i][i] / tot) if tot else None
    return out



def balanced_subset(labels: torch.Tensor, k: int, per_class: int, seed: int, short: str = "all") -> torch.Tensor:
    """Indices (int64, grouped by class 0..k-1) of ``per_class`` random items of each class, drawn with ``seed``.

    Args:
        labels: int64 N labels in 0..k-1.
        k: number of classes; per_class: items wanted per class; seed: seed of the draw.
        short: for a class with fewer items: ``all`` keeps all of them (the probe and attribute-vector
            subsets), ``resample`` draws ``per_class`` with replacement (CAS's real baseline; a class
            with no item at all raises).

    Raises:
        UserError: ``short="resample"`` and a class has no item.
    """
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    idx = []
    for c in range(k):
        pool = torch.nonzero(labels == c).flatten()
        if short == "resample" and len(pool) < per_class:
            if len(pool) == 0:
                raise UserError(f"class {c} has no training image")
            idx.append(pool[torch.randint(len(pool), (per_class,), generator=g)])
        else:
            idx.append(pool[torch.randperm(len(pool), generator=g)[:per_class]])
    return torch.cat(idx)
