"""Tests of metrics/families/classaware.py: label accuracy (GAN-test) and the Classification Accuracy Score."""

from __future__ import annotations

import json

import pytest
import torch

from exprbench.data import load_fer2013
from exprbench.metrics.families import cas as CS
from exprbench.metrics.families import classaware as C
from exprbench.metrics.extractors.evaluator import load_evaluator
from exprbench.metrics.extractors.evaluator_net import read_card
from exprbench.metrics.families.fidelity_inputs import MetricInputError
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
    proto = CS.CASProtocol(width=4, feat_dim=16, epochs=1, batch_size=32)
    tr = small.split("train")
    res = CS.classifier_accuracy_on_real(tr.images, tr.labels, small.split("test"), proto)
    assert 0 <= res["value"] <= 1 and res["n_train"] == len(tr)
    base = CS.cas_real_baseline(small, 10, proto)
    files = list((tmp_path / "metrics").glob("cas-real-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["value"] == base["value"]
    assert CS.cas_real_baseline(small, 10, proto) == base  # served from the cache
    CS.cas_real_baseline(small, 10, CS.CASProtocol(width=4, feat_dim=16, epochs=1, batch_size=32, seed=1))
    assert len(list((tmp_path / "metrics").glob("cas-real-*.json"))) == 2  # another recipe, another key
    threads = torch.get_num_threads()
    try:  # the classifier depends on the CPU thread count: another count, another key
        torch.set_num_threads(threads + 1)
        other = CS.cas_real_baseline(small, 10, proto)
    finally:
        torch.set_num_threads(threads)
    assert other["threads"] == threads + 1 and base["threads"] == threads
    assert len(list((tmp_path / "metrics").glob("cas-real-*.json"))) == 3


def test_balanced_real_subset(small):
    x, y = CS.balanced_real_subset(small.split("train"), 50, seed=0)  # 40 per class available: with replacement
    assert x.shape == (350, 1, 48, 48) and torch.bincount(y).tolist() == [50] * 7


TINY = CS.CASProtocol(width=4, feat_dim=16, epochs=2, batch_size=32, seeds=3, seeds_from=0)  # 3 seeds at any size


def _fake_generated(k: int = 7, per_class: int = 20, seed: int = 0):
    """A tiny 'generated' set: noise images, 20 per class, labels int64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (k * per_class, 1, 48, 48), generator=g, dtype=torch.uint8)
    return x, torch.arange(k).repeat_interleave(per_class)


def test_cas_training_is_deterministic(small):
    """Two CAS trainings of the same images at the same thread count give the same classifiers: every number
    equal, exactly (seeded init, data order and augmentation; deterministic kernels)."""
    x, y = _fake_generated()
    test = small.split("test")
    before = torch.are_deterministic_algorithms_enabled()  # other tests (a harness run) may have set it
    a = CS.cas_over_seeds(x, y, test, TINY)
    torch.manual_seed(999)  # whatever the global RNG was before, the classifiers are the same
    b = CS.cas_over_seeds(x, y, test, TINY)
    drop = ("train_seconds",)
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    assert a["classifier_seeds"] == [0, 1, 2] and len(a["per_seed"]) == 3
    one = CS.classifier_accuracy_on_real(x, y, test, TINY, seed=1)
    assert one["balanced_acc"] == a["per_seed"][1] and one["correct"] == CS.classifier_accuracy_on_real(
        x, y, test, TINY, seed=1)["correct"]
    # the mean over seeds: balanced accuracy, per-class recall, and per-image outcomes that keep the balanced mean
    assert a["balanced_acc"] == pytest.approx(sum(a["per_seed"]) / 3, abs=1e-12)
    labels = test.labels.tolist()
    per = [sum(c for c, l in zip(a["correct"], labels) if l == k) / labels.count(k) for k in sorted(set(labels))]
    assert sum(per) / len(per) == pytest.approx(a["balanced_acc"], abs=1e-12)
    assert a["seed_sd"] == pytest.approx(torch.tensor(a["per_seed"], dtype=torch.float64).std().item(), abs=1e-12)
    assert torch.are_deterministic_algorithms_enabled() == before  # the caller's setting is back


def test_cas_classifier_seeds_rule():
    assert CS.CAS.seeds == 3 and CS.CAS.classifier_seeds(7000) == [0, 1, 2]
    assert CS.CAS.classifier_seeds(350) == [0]  # the smoke suite's cas350: one classifier, as cheap as before
    assert CS.CASProtocol(seed=5, seeds=2, seeds_from=0).classifier_seeds(1) == [5, 6]


def test_cas_interval_combines_bootstrap_and_seed_spread():
    """The bootstrap interval over test faces, each side widened in quadrature by t(0.975, n-1)*sd/sqrt(n)."""
    from scipy import stats

    boot = {"ci95": [0.30, 0.36], "ci_method": "bootstrap over test images", "ci_draws": 200}
    per_seed = [0.31, 0.33, 0.35]
    out = CS.seed_interval(boot, 0.33, per_seed)
    h = stats.t.ppf(0.975, 2) * 0.02 / 3 ** 0.5  # sd of (0.31, 0.33, 0.35) is 0.02
    assert out["ci95"] == pytest.approx([0.33 - (0.03 ** 2 + h ** 2) ** 0.5, 0.33 + (0.03 ** 2 + h ** 2) ** 0.5])
    assert out["ci_bootstrap95"] == [0.30, 0.36] and "3 classifier seeds" in out["ci_method"]
    assert CS.seed_interval(boot, 0.33, [0.33]) == boot  # one seed: the bootstrap alone
    assert CS.seed_interval(boot, 0.33, [0.33, 0.33, 0.33])["ci95"] == pytest.approx([0.30, 0.36])  # no spread


def test_cas_real_reference_is_reproducible(small, monkeypatch, tmp_path):
    """The leaderboard's real-data CAS row: computed twice (no cache) it is the same, and it is the generated
    path's function (same seeds, same deterministic training) applied to the real subset."""
    monkeypatch.setenv("EXPRBENCH_CACHE", str(tmp_path))
    a = CS.cas_real_baseline(small, 20, TINY, use_cache=False)
    b = CS.cas_real_baseline(small, 20, TINY, use_cache=False)
    timing = ("train_seconds",)  # wall time differs between two trainings; everything else must not
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert a["classifier_seeds"] == [0, 1, 2]
    x, y = CS.balanced_real_subset(small.split("train"), 20, TINY.seed + 1)
    direct = CS.cas_over_seeds(x, y, small.split("test"), TINY)
    assert {k: v for k, v in direct.items() if k != "train_seconds"} == \
        {k: v for k, v in a.items() if k not in ("train_seconds", "cache_key", "threads", "cpu_capability")}
    cached = CS.cas_real_baseline(small, 20, TINY)
    assert cached["balanced_acc"] == a["balanced_acc"] and cached["per_seed"] == a["per_seed"]


def test_cas_refuses_fewer_than_20_images_per_class():
    """cas70 (10 per emotion) is refused before any training: a classifier of a handful of images per class
    answers one class."""
    from types import SimpleNamespace

    from exprbench.metrics.protocols.catalog import resolve_metric

    spec = resolve_metric("cas70")
    assert spec.min_samples == 20 and spec.per_class
    ctx = SimpleNamespace(k=7, note=lambda *a: pytest.fail("trained"), data=None)
    with pytest.raises(MetricInputError, match="at least 20 images per class"):
        CS.compute_cas(spec, ctx)
    assert resolve_metric("cas140").min_samples == 20  # 20 per class: accepted (tests/metrics/test_evaluate.py)
