"""The torch-fidelity feature extractors over the FER2013 evaluator: ``"fer-evaluator"`` (its penultimate
features and logits) and ``"fer-multilayer"`` (pooled features of all its stages, :mod:`.multilayer`)."""

from __future__ import annotations

import copy

import torch

from exprbench.data import to_float

from exprbench.metrics.extractors.evaluator import Evaluator, load_evaluator
from exprbench.metrics.extractors.evaluator_net import FEATURE_LOGITS, FEATURE_PENULTIMATE
from exprbench.metrics.protocols.names import EXTRACTOR_NAME
from exprbench.metrics.extractors.multilayer import FEATURE_MULTILAYER, MULTILAYER_NAME, multilayer_card_path, multilayer_features, read_multilayer_card


def _fidelity_base():
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    return FeatureExtractorBase


class FERFeatureExtractor(_fidelity_base()):
    """torch-fidelity feature extractor ``"fer-evaluator"`` over the FER2013 evaluator.

    Input: uint8 B x 1 x 48 x 48 or B x 3 x 48 x 48 (gray repeated; the channel mean is used).
    Output: a tuple in the order of the requested features, from ``("penultimate", "logits")``:
    float32 B x feat_dim and B x 7. FID, KID and precision/recall default to ``"penultimate"``.

    The weights come from ``feature_extractor_weights_path`` (torch-fidelity's kwarg; default the
    shipped file) and are sha256-checked against their card by :func:`load_evaluator`.
    """

    def __init__(self, name: str, features_list, feature_extractor_weights_path=None, **kwargs) -> None:
        super().__init__(name, features_list)
        ev = load_evaluator(feature_extractor_weights_path, "cpu")
        self.net = copy.deepcopy(ev.net)
        self.weights_sha256 = ev.sha256

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_PENULTIMATE, FEATURE_LOGITS)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": FEATURE_LOGITS, "fid": FEATURE_PENULTIMATE, "kid": FEATURE_PENULTIMATE,
                "prc": FEATURE_PENULTIMATE}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 48, 48, dtype=torch.uint8)

    def forward(self, x):
        x = Evaluator.check_images(x, "fer-evaluator input")
        f, l = self.net(to_float(x).contiguous(memory_format=torch.channels_last))
        got = {FEATURE_PENULTIMATE: f.float(), FEATURE_LOGITS: l.float()}
        return tuple(got[name] for name in self.features_list)


class FERMultilayerExtractor(FERFeatureExtractor):
    """torch-fidelity feature extractor ``"fer-multilayer"``: the realism space of :mod:`.multilayer`.

    Input: uint8 B x 1 x 48 x 48 or B x 3 x 48 x 48 (gray repeated). Output: a 1-tuple, float32
    B x 15*width (360 for the shipped evaluator), for FID, KID and precision/recall. The evaluator weights
    come from ``feature_extractor_weights_path`` (sha256-checked); the stage scales from their card
    ``<stem>_multilayer.json`` beside them, which must name the same weights.
    """

    def __init__(self, name: str, features_list, feature_extractor_weights_path=None, **kwargs) -> None:
        super().__init__(name, features_list, feature_extractor_weights_path, **kwargs)
        from exprbench.metrics.extractors.evaluator import resolve_weights

        card = multilayer_card_path(resolve_weights(feature_extractor_weights_path))
        self.scales = read_multilayer_card(card, self.weights_sha256)["stage_scales"]

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_MULTILAYER,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"fid": FEATURE_MULTILAYER, "kid": FEATURE_MULTILAYER, "prc": FEATURE_MULTILAYER}[metric]

    def forward(self, x):
        x = Evaluator.check_images(x, "fer-multilayer input")
        return (multilayer_features(self.net, to_float(x).contiguous(memory_format=torch.channels_last), self.scales),)


_EXTRACTOR_CLASSES = {EXTRACTOR_NAME: FERFeatureExtractor, MULTILAYER_NAME: FERMultilayerExtractor}


def register_with_fidelity() -> None:
    """Register ``"fer-evaluator"`` and ``"fer-multilayer"`` with torch-fidelity (idempotent)."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    for name, cls in _EXTRACTOR_CLASSES.items():
        if FEATURE_EXTRACTORS_REGISTRY.get(name) is not cls:
            FEATURE_EXTRACTORS_REGISTRY.pop(name, None)
            register_feature_extractor(name, cls)


register_with_fidelity()
