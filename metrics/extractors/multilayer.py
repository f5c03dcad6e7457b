"""The realism feature space ``fer-multilayer``: pooled features from every depth of the FER2013 evaluator.

A classifier's penultimate layer keeps what tells the classes apart and saturates once an image is "not a
real face", so it ranks unrealistic samples poorly. Inception's FID reads a deep *pooled* layer of a net
not trained for the task (Heusel et al. 2017); here the same idea reads all four stages of the evaluator
(:class:`~.evaluator_net.FERNet`): after each stage's max pooling (24, 12, 6, 3 pixels) the channel means
over space (``width x (1, 2, 4, 8)`` values), each stage divided by a fixed scale so that every depth
weighs the same, concatenated (``15 x width`` dimensions; 360 for the shipped width-24 evaluator). Early
stages see texture, contrast and edges, late ones parts and expression.

The scales are the square root of the total variance of each stage's pooled features over the train
split, computed once per evaluator (``exprbench evaluator train`` writes them, ``exprbench evaluator
multilayer`` rewrites them) into a card beside its weights (``fer_evaluator.pt`` ->
``fer_evaluator_multilayer.json``, shipped) with the evaluator's sha256 and the data fingerprint; the
extractor refuses a card made for other evaluator weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from exprbench.data import to_float
from exprbench.core.io import file_sha256, write_json

from exprbench.metrics.extractors.evaluator_net import WEIGHTS_DIR, EvaluatorError, FERNet
from exprbench.metrics.protocols.names import MULTILAYER_NAME

FEATURE_MULTILAYER = "multilayer"
DEFAULT_CARD = WEIGHTS_DIR / "fer_evaluator_multilayer.json"
CARD_VERSION = 1


def stage_features(net: FERNet, x: torch.Tensor) -> list[torch.Tensor]:
    """Channel means after each max pooling of ``net`` (eval mode is the caller's).

    Args:
        net: a :class:`FERNet`; x: float32 N x 1 x H x W in [-1, 1].

    Returns:
        One float32 N x C_k tensor per stage (C_k = width x 1, 2, 4, 8).
    """
    return [h.mean((2, 3)) for h in net.stages(x)]


def multilayer_features(net: FERNet, x: torch.Tensor, scales: list[float]) -> torch.Tensor:
    """``concat_k(stage_k(x) / scales[k])``: float32 N x sum(C_k) (see :func:`stage_features`)."""
    return torch.cat([f / s for f, s in zip(stage_features(net, x), scales)], 1).float()


def multilayer_card_path(weights: str | Path) -> Path:
    """The ``fer-multilayer`` card of evaluator ``weights``: ``<stem>_multilayer.json`` beside them."""
    return Path(weights).with_name(Path(weights).stem + "_multilayer.json")


def read_multilayer_card(path: str | Path | None = None, evaluator_sha256: str | None = None) -> dict:
    """Read a ``fer-multilayer`` card (default: the shipped evaluator's).

    Args:
        path: the card file (see :func:`multilayer_card_path`); evaluator_sha256: the evaluator weights
            in use (checked against the card).

    Raises:
        EvaluatorError: missing or malformed card, or a card built for other evaluator weights.
    """
    p = Path(path or DEFAULT_CARD)
    if not p.is_file():
        raise EvaluatorError(f"{MULTILAYER_NAME} card {p} not found (make it with `exprbench evaluator multilayer`)")
    try:
        card = json.loads(p.read_text())
        scales = [float(s) for s in card["stage_scales"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise EvaluatorError(f"{p}: malformed {MULTILAYER_NAME} card ({type(e).__name__}: {e})") from None
    if evaluator_sha256 is not None and card.get("evaluator_sha256") != evaluator_sha256:
        raise EvaluatorError(
            f"{p} was made for evaluator weights {str(card.get('evaluator_sha256'))[:12]}..., these are "
            f"{evaluator_sha256[:12]}...: rerun `exprbench evaluator multilayer --weights ...`")
    if any(s <= 0 for s in scales):
        raise EvaluatorError(f"{p}: stage_scales must be positive, got {scales}")
    return {**card, "stage_scales": scales, "card_sha256": file_sha256(p)}


def build_multilayer_card(net: FERNet, evaluator_sha256: str, train_images: torch.Tensor, fingerprint: str,
                          dest: Path, command: str, batch_size: int = 512) -> dict:
    """Compute each stage's scale (sqrt of the total variance of its pooled features over ``train_images``)
    and write the card to ``dest`` atomically.

    Args:
        net: the evaluator's :class:`FERNet`; evaluator_sha256: its weights file's sha256;
        train_images: uint8 N x 1 x 48 x 48 (the train split); fingerprint: the data's sha256;
        dest: the card path; command: the command line, for the card.

    Returns:
        The card as written.
    """
    parts: list[list[torch.Tensor]] = []
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    with torch.no_grad():
        for i in range(0, train_images.shape[0], batch_size):
            x = to_float(train_images[i : i + batch_size].to(device)).contiguous(memory_format=torch.channels_last)
            parts.append([f.double().cpu() for f in stage_features(net, x)])
    net.train(was_training)
    stages = [torch.cat([p[k] for p in parts]) for k in range(len(parts[0]))]
    scales = [float(s.var(0).sum().sqrt()) for s in stages]
    card = {"card_version": CARD_VERSION, "name": MULTILAYER_NAME, "evaluator_sha256": evaluator_sha256, "stage_scales": scales,
            "stage_dims": [int(s.shape[1]) for s in stages], "feature_dim": int(sum(s.shape[1] for s in stages)),
            "n_train": int(train_images.shape[0]), "data_fingerprint": fingerprint, "command": command,
            "description": ("channel means over space after each of the evaluator's 4 max poolings, stage k divided by "
                            "stage_scales[k] (sqrt of its total variance over the train split), concatenated")}
    write_json(dest, card)
    return card
