"""Tests of metrics/classaware.py: label accuracy (GAN-test) and the Classification Accuracy Score."""

from __future__ import annotations

import json

import pytest
import torch

from exprbench.data import load_fer2013
from exprbench.metrics import classaware as C
from exprbench.metrics.evaluator import load_evaluator, read_card
from exprbench.metrics.fidelity import MetricInputError
from exprbench.metrics.testing import real_data_path, subset, tiny_evaluator

DATA = real_data_path()
pytestmark = pytest.mark.skipif(DATA is None, reason="FER2013 not found ($EXPRBENCH_DATA or ../shared/data/fer2013.zip)")


@pytest.fixture(scope="module")
def small():
    return subset(load_fer2013(DATA), {"train": 40, "val": 10, "test": 30})


@pytest.fixture(scope="module")
def tiny(small, tmp_path_factory):
    return tiny_evaluator(small, tmp_path_factory.mktemp("ev") / "ev.pt")


def test_label_accuracy_of_real_test_equals_card(small, tiny):
    ev = load_evaluator(tiny)
    te = small.split("test")
    res = C.label_accuracy(ev, te.images, te.labels, small.class_names)
    card = read_card(tiny)
    assert res["value"] == card["test_accuracy"]
    assert res["confusion_matrix"] == card["test_confusion_matrix"]
    assert res["per_class"] == card["per_class_test_accuracy"]


def test_label_accuracy_bad_inputs(small, tiny):
    ev = load_evaluator(tiny)
    te = small.split("test")
    with pytest.raises(MetricInputError, match="labels"):
        C.label_accuracy(ev, te.images, te.labels[:-1], small.class_names)
    with pytest.raises(MetricInputError, match="outside"):
        C.label_accuracy(ev, te.images, te.labels + 7, small.class_names)
    with pytest.raises(MetricInputError, match="uint8"):
        C.label_accuracy(ev, te.images.float(), te.labels, small.class_names)


def test_cas_and_cached_baseline(small, monkeypatch, tmp_path):
    monkeypatch.setenv("EXPRBENCH_CACHE", str(tmp_path))
    proto = C.CASProtocol(width=4, feat_dim=16, epochs=1, batch_size=32)
    tr = small.split("train")
    res = C.classifier_accuracy_on_real(tr.images, tr.labels, small.split("test"), proto)
    assert 0 <= res["value"] <= 1 and res["n_train"] == len(tr)
    base = C.cas_real_baseline(small, 10, proto)
    files = list((tmp_path / "metrics").glob("cas-real-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["value"] == base["value"]
    assert C.cas_real_baseline(small, 10, proto) == base  # served from the cache
    C.cas_real_baseline(small, 10, C.CASProtocol(width=4, feat_dim=16, epochs=1, batch_size=32, seed=1))
    assert len(list((tmp_path / "metrics").glob("cas-real-*.json"))) == 2  # another recipe, another key
    threads = torch.get_num_threads()
    try:  # the classifier depends on the CPU thread count: another count, another key
        torch.set_num_threads(threads + 1)
        other = C.cas_real_baseline(small, 10, proto)
    finally:
        torch.set_num_threads(threads)
    assert other["threads"] == threads + 1 and base["threads"] == threads
    assert len(list((tmp_path / "metrics").glob("cas-real-*.json"))) == 3


def test_balanced_real_subset(small):
    x, y = C.balanced_real_subset(small.split("train"), 50, seed=0)  # 40 per class available: with replacement
    assert x.shape == (350, 1, 48, 48) and torch.bincount(y).tolist() == [50] * 7
