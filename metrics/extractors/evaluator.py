"""The FER2013 evaluator: a fixed expression classifier whose features define the suite's feature space.

Standard FID uses Inception-V3 features of images upscaled to 299x299 RGB; on 48x48 gray faces those say
little about expressions and need downloaded weights. The suite therefore ships its own network,
trained on FER2013 (train split), selected on val (PublicTest), reported on test (PrivateTest):

* :class:`FERNet` - a compact VGG-style CNN (Simonyan & Zisserman 2015) with batch norm (Ioffe &
  Szegedy 2015): four stages of two 3x3 conv-BN-ReLU layers and 2x2 max pooling (48 -> 24 -> 12 -> 6 -> 3),
  global average pooling, a fully connected ReLU layer (the *penultimate features*, ``feat_dim`` wide,
  used for FID / KID / precision-recall) and a linear classifier (the *logits*).
* :class:`Evaluator` - a loaded, verified network with its card: features, logits, hflip-averaged
  predictions, label-set mapping (``fer6`` = the same network with the disgust logit masked).
* :func:`train_classifier` - the training recipe (SGD + Nesterov, one-cycle LR, label smoothing, random
  shift / rotation / horizontal flip), shared with the Classification Accuracy Score.
* :func:`train_evaluator` - ``exprbench evaluator train``: trains, selects the best val epoch, writes
  ``fer_evaluator.pt`` (a plain state dict, loaded with ``weights_only=True``) and the JSON card beside it.
* :class:`~exprbench.metrics.extractors.tf_extractor.FERFeatureExtractor` - the torch-fidelity
  ``FeatureExtractorBase`` registered as ``"fer-evaluator"``, exposing ``"penultimate"`` and ``"logits"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from exprbench.data import to_float
from exprbench.core.io import file_sha256

from exprbench.metrics.extractors.evaluator_net import (AUX_WEIGHTS, DEFAULT_WEIGHTS, EvaluatorError, FERNet,
    NetConfig, build_net, card_path, read_card)


class Evaluator:
    """A verified, loaded evaluator network in eval mode.

    Attributes:
        net: the :class:`FERNet` (eval mode, no grad).
        card: the JSON card (dict).
        sha256: sha256 of the weights file, checked against the card on load.
        class_names: the network's classes (fer7).
        device: where it runs.
    """

    def __init__(self, net: FERNet, card: dict, sha256: str, device: torch.device) -> None:
        self.net, self.card, self.sha256, self.device = net, card, sha256, device
        self.class_names = tuple(net.cfg.class_names)

    @property
    def feat_dim(self) -> int:
        return self.net.cfg.feat_dim

    # -- inputs ------------------------------------------------------------------------------
    @staticmethod
    def check_images(images: torch.Tensor, what: str = "images") -> torch.Tensor:
        """Check uint8 N x {1,3} x 48 x 48 images; return N x 1 x 48 x 48 (gray: the channel mean of RGB).

        Raises:
            EvaluatorError: wrong type, dtype, shape, or an empty batch.
        """
        if not torch.is_tensor(images):
            raise EvaluatorError(f"{what}: expected a torch.Tensor, got {type(images).__name__}")
        if images.dtype != torch.uint8:
            raise EvaluatorError(f"{what}: expected dtype uint8 (0..255; use exprbench.data.to_uint8), got {images.dtype}")
        if images.dim() != 4 or images.shape[1] not in (1, 3) or tuple(images.shape[2:]) != (48, 48):
            raise EvaluatorError(f"{what}: expected shape N x 1 x 48 x 48 (or N x 3 x 48 x 48), got {tuple(images.shape)}")
        if images.shape[0] == 0:
            raise EvaluatorError(f"{what}: empty set (0 images)")
        if images.shape[1] == 3:
            images = images.float().mean(1, keepdim=True).round().to(torch.uint8)
        return images

    def _batches(self, images: torch.Tensor, batch_size: int):
        for i in range(0, images.shape[0], batch_size):
            x = to_float(images[i : i + batch_size].to(self.device))
            yield x.contiguous(memory_format=torch.channels_last)

    # -- outputs -----------------------------------------------------------------------------
    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features (float32 N x feat_dim) and logits (float32 N x 7) of uint8 images, on the CPU.

        No test-time augmentation: features are a fixed function of the image.

        Raises:
            EvaluatorError: see :meth:`check_images`.
        """
        images = self.check_images(images)
        fs, ls = [], []
        for x in self._batches(images, batch_size):
            f, l = self.net(x)
            fs.append(f.float().cpu())
            ls.append(l.float().cpu())
        return torch.cat(fs), torch.cat(ls)

    @torch.no_grad()
    def probs(self, images: torch.Tensor, class_names: Sequence[str] | None = None, tta: bool = True,
              batch_size: int = 512) -> torch.Tensor:
        """Class probabilities, float32 N x K, averaged over the image and its mirror when ``tta``.

        Args:
            images: uint8 N x 1 x 48 x 48 (0..255).
            class_names: the label set to predict in (e.g. the 6 ``fer6`` names); logits of the
                evaluator's other classes are masked out (fer6 = disgust masked). Default: all 7.
            tta: horizontal-flip test-time averaging of the softmax.

        Raises:
            EvaluatorError: bad images, or a class name the evaluator does not know.
        """
        images = self.check_images(images)
        idx = self.class_indices(class_names)
        out = []
        for x in self._batches(images, batch_size):
            p = F.softmax(self.net(x)[1].float()[:, idx], dim=1)
            if tta:
                p = 0.5 * (p + F.softmax(self.net(torch.flip(x, dims=[3]))[1].float()[:, idx], dim=1))
            out.append(p.cpu())
        return torch.cat(out)

    def predict(self, images: torch.Tensor, class_names: Sequence[str] | None = None, tta: bool = True) -> torch.Tensor:
        """Predicted labels, int64 N, indices into ``class_names`` (default the evaluator's 7 classes)."""
        return self.probs(images, class_names, tta).argmax(1)

    def class_indices(self, class_names: Sequence[str] | None) -> list[int]:
        """Indices of ``class_names`` among the evaluator's classes.

        Raises:
            EvaluatorError: an unknown class name.
        """
        if class_names is None:
            return list(range(len(self.class_names)))
        unknown = [c for c in class_names if c not in self.class_names]
        if unknown:
            raise EvaluatorError(f"the evaluator does not know class {unknown[0]!r} (knows: {', '.join(self.class_names)})")
        return [self.class_names.index(c) for c in class_names]


_LOADED: dict[tuple[str, str, str], Evaluator] = {}


def resolve_weights(weights: str | Path | None = None) -> Path:
    """The evaluator weights path: ``weights``, else the shipped ``metrics/weights/fer_evaluator.pt``.

    Raises:
        EvaluatorError: the file does not exist.
    """
    p = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    if not p.exists():
        raise EvaluatorError(f"evaluator weights {p} not found (train them with `exprbench evaluator train`)")
    return p


def load_evaluator(weights: str | Path | None = None, device: str | torch.device = "cpu") -> Evaluator:
    """Load the evaluator: check the file's sha256 against its card, then ``torch.load(weights_only=True)``.

    Loaded evaluators are memoized per (path, sha256, device).

    Raises:
        EvaluatorError: missing weights or card, sha256 mismatch, or a state dict that does not fit.
    """
    p = resolve_weights(weights).resolve()
    dev = torch.device(device)
    card = read_card(p)
    sha = file_sha256(p)
    key = (str(p), sha, str(dev))
    if key in _LOADED:
        return _LOADED[key]
    if card.get("sha256") != sha:
        raise EvaluatorError(
            f"evaluator weights {p} have sha256 {sha[:12]}..., the card {card_path(p).name} says "
            f"{str(card.get('sha256'))[:12]}...: the weights are not the ones the card describes"
        )
    try:
        cfg = NetConfig.from_dict(card["net"])
        net = build_net(cfg)
        net.load_state_dict(torch.load(p, map_location="cpu", weights_only=True))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EvaluatorError(f"evaluator weights {p} do not load ({msg})") from None
    net.to(dev).to(memory_format=torch.channels_last).eval().requires_grad_(False)
    ev = Evaluator(net, card, sha, dev)
    _LOADED[key] = ev
    return ev


def load_aux_classifier(weights: str | Path | None = None, device: str | torch.device = "cpu") -> Evaluator:
    """Load the auxiliary FER classifier that model plugins fit on (InterFaceGAN's boundaries): ``weights``, else
    the shipped ``metrics/weights/fer_aux_classifier.pt`` (same net family and card as the evaluator, trained
    with another width and seed; ``exprbench evaluator train --width 16 --feat-dim 128 --seed 1``).

    Raises:
        EvaluatorError: missing weights or card, sha256 mismatch, or a state dict that does not fit.
    """
    return load_evaluator(AUX_WEIGHTS if weights is None else weights, device)


def plugin_resources():
    """The trained parts a plugin may be built on, as the layers above the metrics hand them in
    (:class:`exprbench.models.base.Resources`): runs through the one run loader
    (:func:`exprbench.runs.loader.load_trained`), images scored by :func:`load_aux_classifier`."""
    from exprbench.models.base import Resources
    from exprbench.runs.loader import load_trained

    return Resources(load_run=load_trained, load_scorer=load_aux_classifier)
