"""The realism space ``fer-multilayer`` (metrics/extractors/multilayer.py): its card, its features and what it separates."""

from __future__ import annotations

import json

import pytest
import torch

from exprbench.metrics.extractors.evaluator import load_evaluator
from exprbench.metrics.extractors.evaluator_net import EvaluatorError
from exprbench.metrics.families.fidelity import fid_from_features
from exprbench.metrics.extractors.evaluator_net import DEFAULT_WEIGHTS
from exprbench.metrics.extractors.multilayer import (DEFAULT_CARD, build_multilayer_card, multilayer_card_path, multilayer_features,
                                         read_multilayer_card)
from exprbench.metrics.protocols.names import MULTILAYER_NAME
from exprbench.metrics.protocols.catalog import resolve_metric, table_of

from ..bench_helpers import need_evaluator


def _stats(f: torch.Tensor) -> dict:
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return fid_features_to_statistics(f)


def test_shipped_card_names_the_shipped_evaluator():
    need_evaluator()
    ev = load_evaluator()
    card = read_multilayer_card(multilayer_card_path(DEFAULT_WEIGHTS), ev.sha256)
    assert multilayer_card_path(DEFAULT_WEIGHTS) == DEFAULT_CARD
    assert card["feature_dim"] == sum(card["stage_dims"]) == 15 * ev.card["net"]["width"]
    assert len(card["stage_scales"]) == 4 and all(s > 0 for s in card["stage_scales"])


def test_card_for_other_weights_is_refused(tmp_path):
    bad = tmp_path / "card.json"
    bad.write_text(json.dumps({**json.loads(DEFAULT_CARD.read_text()), "evaluator_sha256": "0" * 64}))
    with pytest.raises(EvaluatorError, match="made for evaluator weights 000000000000"):
        read_multilayer_card(bad, "f" * 64)
    bad.write_text("{not json")
    with pytest.raises(EvaluatorError, match="malformed"):
        read_multilayer_card(bad)


def test_card_is_rebuilt_from_data(tmp_path):
    need_evaluator()
    ev = load_evaluator()
    imgs = torch.randint(0, 256, (64, 1, 48, 48), dtype=torch.uint8)
    card = build_multilayer_card(ev.net, ev.sha256, imgs, "fp", tmp_path / "c.json", "test")
    again = read_multilayer_card(tmp_path / "c.json", ev.sha256)
    assert again["stage_scales"] == pytest.approx(card["stage_scales"]) and again["n_train"] == 64


def test_features_are_batch_size_independent():
    need_evaluator()
    ev = load_evaluator()
    scales = read_multilayer_card(None, ev.sha256)["stage_scales"]
    x = torch.rand(24, 1, 48, 48) * 2 - 1
    with torch.no_grad():
        whole = multilayer_features(ev.net, x, scales)
        parts = torch.cat([multilayer_features(ev.net, x[i:i + 5], scales) for i in range(0, 24, 5)])
    assert whole.shape == (24, 360) and torch.allclose(whole, parts, atol=1e-5)


def test_realism_space_ranks_real_above_blurred_above_noise(real_zip):
    """Real test faces are nearer the train faces than blurred ones, and those nearer than noise."""
    need_evaluator()
    from torchvision.transforms.v2.functional import gaussian_blur

    from exprbench.data import load_dataset, to_float

    real_data = load_dataset(real_zip, "fer7")
    ev = load_evaluator()
    scales = read_multilayer_card(None, ev.sha256)["stage_scales"]
    g = torch.Generator().manual_seed(0)
    train = real_data.images[real_data.splits == 0][torch.randperm(28709, generator=g)[:1500]]
    test = real_data.images[real_data.splits == 2][:1500]

    def feats(u8):
        with torch.no_grad():
            return multilayer_features(ev.net, to_float(u8), scales).double()

    ref = _stats(feats(train))
    blurred = gaussian_blur(test, [7, 7], [1.5, 1.5])
    noise = torch.randint(0, 256, test.shape, dtype=torch.uint8, generator=g)
    fids = [fid_from_features(feats(x), ref) for x in (test, blurred, noise)]
    assert fids[0] < fids[1] < fids[2], fids


def test_realism_protocols_are_declared_first_in_their_tables():
    need_evaluator()
    fid = resolve_metric("fid10k_train_ml")
    assert fid.extractor == MULTILAYER_NAME and fid.direction == "lower" and fid.show.ranks_samples
    assert table_of("fid10k_train_ml") == "fidelity" and table_of("mem10k_train_ml") == "coverage"
    assert resolve_metric("fid2k_train_ml").n_samples == 2000
