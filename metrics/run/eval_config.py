"""The configuration of one evaluation (:class:`EvalConfig`), fixed when its context is built, and whether the
configured data suits the networks a protocol reads (:func:`network_mismatch`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from exprbench.data import FaceDataset

from exprbench.metrics.families.bootstrap import CI_DRAWS
from exprbench.metrics.protocols.names import CAS_NAME, EXTRACTOR_NAME

GENERATION_BATCH = 500  # images per model.sample call (the evaluation's batch-size knobs)
MODEL_BATCH = 256  # real images per encode / reconstruct / translate / bits_per_dim call
CAS_INPUT = (48, 48)  # the CAS classifier is a narrow FERNet: 48 x 48 inputs


@dataclass(frozen=True)
class EvalConfig:
    """What one evaluation is configured with; :class:`~exprbench.metrics.run.context.EvalContext` builds it once
    and exposes each field read-only.

    Attributes:
        model: the plugin evaluated (its ``capabilities`` decide what runs), or a source of given images.
        data: the dataset (train and test splits); device: of the evaluator and the feature extractors.
        evaluator_weights, inception_weights: extractor weights (a path, or None: shipped / hub cache).
        out_dir: the run directory figure inputs go below; None: nothing written.
        ci_draws: bootstrap draws of the intervals (>= 0; 0: no intervals, e.g. training curves).
        batch_size: images per ``model.sample`` call; model_batch_size: real images per encode, reconstruct,
            translate or bits_per_dim call (neither changes a number).
        image_words: what the scored images are, for the start lines (``generated images``, ``given images``).
    """

    model: Any
    data: FaceDataset
    device: torch.device
    evaluator_weights: Any = None
    inception_weights: Any = None
    out_dir: Path | None = None
    ci_draws: int = CI_DRAWS
    batch_size: int = GENERATION_BATCH
    model_batch_size: int = MODEL_BATCH
    image_words: str = "generated images"


def network_mismatch(network: str, data: FaceDataset, evaluator) -> str | None:
    """Why the network ``network`` (a protocol's ``uses``) cannot read ``data``, from its card; None if it can.

    ``fer-evaluator``: gray or RGB images of the card's input size and classes among the card's;
    ``cas-classifier``: 48 x 48 images. Other networks (Inception-V3 resizes itself) always apply.
    """
    _, c, h, w = data.images.shape
    if network == EXTRACTOR_NAME:
        size = tuple(evaluator.card.get("input_size", (48, 48)))
        names = tuple(evaluator.card.get("class_names") or evaluator.class_names)
        if (h, w) != size or c not in (1, 3):
            return (f"the {network} reads {size[0]} x {size[1]} faces (its card), the data has {c} x {h} x {w} "
                    f"images ({data.label_set})")
        extra = [n for n in data.class_names if n not in names]
        if extra:
            return f"the {network} knows the classes {', '.join(names)}, not {', '.join(extra)} ({data.label_set})"
    elif network == CAS_NAME and (h, w) != CAS_INPUT:
        return f"the {network} reads {CAS_INPUT[0]} x {CAS_INPUT[1]} images, the data has {c} x {h} x {w} images"
    return None
