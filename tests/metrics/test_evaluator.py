"""Tests of metrics/extractors/evaluator.py: the network, weights + card (sha256, weights_only), fer6, torch-fidelity."""

from __future__ import annotations

import json

import pytest
import torch

from exprbench.data import FER7, load_fer2013
from exprbench.metrics.extractors import evaluator as E
from exprbench.metrics.testing import real_data_path, subset, tiny_evaluator

DATA = real_data_path()
needs_data = pytest.mark.skipif(DATA is None, reason="FER2013 not found ($EXPRBENCH_DATA or ../shared/data/fer2013.zip)")


@pytest.fixture(scope="module")
def small():
    return subset(load_fer2013(DATA), {"train": 40, "val": 10, "test": 20})


@pytest.fixture(scope="module")
def tiny(small, tmp_path_factory):
    return tiny_evaluator(small, tmp_path_factory.mktemp("ev") / "ev.pt")


def test_fernet_shapes():
    net = E.FERNet(E.NetConfig(width=4, feat_dim=16)).eval()
    f, l = net(torch.zeros(3, 1, 48, 48))
    assert f.shape == (3, 16) and l.shape == (3, 7) and bool((f >= 0).all())


@needs_data
def test_card_fields_and_load(tiny, small):
    card = json.loads(tiny.with_suffix(".json").read_text())
    for key in ("sha256", "command", "data_fingerprint", "epochs", "val_accuracy", "test_accuracy",
                "per_class_test_accuracy", "test_confusion_matrix", "wall_seconds", "hardware", "net"):
        assert key in card, key
    assert card["data_fingerprint"] == small.fingerprint
    assert sum(map(sum, card["test_confusion_matrix"])) == len(small.split("test"))
    ev = E.load_evaluator(tiny)
    assert ev.sha256 == card["sha256"] == E.file_sha256(tiny)
    f, l = ev.features_and_logits(small.images[:5])
    assert f.shape == (5, 32) and l.shape == (5, 7) and f.dtype == torch.float32


@needs_data
def test_sha_mismatch_refused(tiny, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(tiny.read_bytes() + b"x")
    (tmp_path / "bad.json").write_text(tiny.with_suffix(".json").read_text())
    with pytest.raises(E.EvaluatorError, match="sha256"):
        E.load_evaluator(bad)
    with pytest.raises(E.EvaluatorError, match="not found"):
        E.load_evaluator(tmp_path / "missing.pt")


@needs_data
def test_fer6_masks_disgust(tiny, small):
    ev = E.load_evaluator(tiny)
    fer6 = [n for n in FER7 if n != "disgust"]
    p6 = ev.probs(small.images[:20], fer6)
    assert p6.shape == (20, 6) and torch.allclose(p6.sum(1), torch.ones(20), atol=1e-5)
    with pytest.raises(E.EvaluatorError, match="class"):
        ev.probs(small.images[:2], ["joy"])


@pytest.mark.parametrize("bad, msg", [
    (torch.zeros(2, 1, 48, 48), "uint8"),
    (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), "shape"),
    (torch.zeros(0, 1, 48, 48, dtype=torch.uint8), "empty"),
])
def test_evaluator_input_errors(bad, msg):
    with pytest.raises(E.EvaluatorError, match=msg):
        E.Evaluator.check_images(bad)


@needs_data
def test_registered_with_torch_fidelity(tiny, small):
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    from exprbench.metrics.extractors import tf_extractor  # importing it registers the extractor

    cls = FEATURE_EXTRACTORS_REGISTRY["fer-evaluator"]
    assert cls is tf_extractor.FERFeatureExtractor
    fx = cls("fer-evaluator", ["penultimate", "logits"], feature_extractor_weights_path=str(tiny)).eval()
    f, l = fx(small.images[:4])
    f3, _ = fx(small.images[:4].expand(-1, 3, -1, -1))  # gray repeated to RGB gives the same features
    assert f.shape == (4, 32) and l.shape == (4, 7) and torch.allclose(f, f3)


def test_shipped_weights_card():
    """The committed evaluator: <= 10 MB, card sha256 matches, fer7 classes."""
    if not E.DEFAULT_WEIGHTS.exists():
        pytest.skip("no shipped evaluator weights yet (exprbench evaluator train)")
    card = E.read_card()
    assert E.DEFAULT_WEIGHTS.stat().st_size <= 10 * 2**20
    assert card["sha256"] == E.file_sha256(E.DEFAULT_WEIGHTS)
    assert card["class_names"] == list(FER7) and 0 < card["test_accuracy"] <= 1


@needs_data
def test_fine_tune_starts_from_the_given_weights(tiny, small, tmp_path):
    """``evaluator train --init``: the net config comes from the weights' card, the first epoch starts from them
    (at a tiny rate its parameters stay theirs), the card records the init; a bad path
    is refused in one line."""
    from exprbench.cli import main
    from exprbench.metrics.testing import write_fer_csv

    csv = write_fer_csv(small, tmp_path / "fer2013.csv")
    out = tmp_path / "tuned.pt"
    rc = main(["evaluator", "train", "--data", str(csv), "--init", str(tiny), "--epochs", "1", "--lr", "1e-6",
               "--out", str(out), "--threads", "1", "--device", "cpu"])
    assert rc == 0
    card, before = json.loads(out.with_suffix(".json").read_text()), json.loads(tiny.with_suffix(".json").read_text())
    assert card["recipe"]["init"] == str(tiny) and card["net"] == before["net"]
    tuned, base = E.load_evaluator(out), E.load_evaluator(tiny)
    params = dict(base.net.named_parameters())  # (BatchNorm's running statistics move with any epoch)
    for name, p in tuned.net.named_parameters():
        assert torch.allclose(p, params[name], atol=1e-4), name
    assert main(["evaluator", "train", "--data", str(csv), "--init", str(tmp_path / "none.pt"), "--epochs", "1",
                 "--out", str(tmp_path / "x.pt")]) == 2
