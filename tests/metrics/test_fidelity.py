"""Tests of metrics/families/fidelity.py: FID/KID/PR through torch-fidelity on the fer-evaluator features."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from exprbench.data import load_fer2013
from exprbench.metrics.families import fidelity as Fm
from exprbench.metrics.families import fidelity_inputs as Fi
from exprbench.metrics.extractors.evaluator import load_evaluator
from exprbench.metrics.testing import real_data_path, subset, tiny_evaluator

DATA = real_data_path()
pytestmark = pytest.mark.skipif(DATA is None, reason="FER2013 not found ($EXPRBENCH_DATA or ../shared/data/fer2013.zip)")


@pytest.fixture(scope="module")
def real():
    return load_fer2013(DATA) if DATA else None


@pytest.fixture(scope="module")
def tiny(real, tmp_path_factory):
    return tiny_evaluator(subset(real, {"train": 60, "val": 10, "test": 10}), tmp_path_factory.mktemp("ev") / "ev.pt",
                          epochs=3)


@pytest.fixture(scope="module")
def sets(real):
    g = torch.Generator().manual_seed(0)
    test = real.split("test").images
    train = real.split("train").images
    return test[torch.randperm(len(test), generator=g)[:400]], train[torch.randperm(len(train), generator=g)[:600]]


def scores(a, b, tiny, tmp_path, metrics=("fid",), **kw):
    return Fm.fidelity_scores(a, b, metrics, evaluator_weights=tiny, cache_root=tmp_path, **kw)


def test_fid_self_is_zero(sets, tiny, tmp_path):
    a, _ = sets
    r = scores(a, a, tiny, tmp_path, ("fid", "kid"))
    assert abs(r["fid"]) < 1e-3 * max(1.0, float(scores(a, sets[1], tiny, tmp_path)["fid"]))
    assert abs(r["kid_mean"]) < 1e-3


def _blur(x, sigma):
    if sigma == 0:
        return x
    from torchvision.transforms.functional import gaussian_blur

    k = int(2 * round(3 * sigma) + 1)
    return gaussian_blur(x.float(), [k, k], [sigma, sigma]).round().clamp(0, 255).to(torch.uint8)


def _noise(x, sigma):
    g = torch.Generator().manual_seed(1)
    return (x.float() + sigma * torch.randn(x.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("degrade, levels", [(_blur, [0, 1.0, 2.0, 4.0]), (_noise, [0, 15, 40, 90])])
def test_fid_kid_grow_with_degradation(sets, tiny, tmp_path, degrade, levels):
    test, train = sets
    fids, kids = [], []
    for lv in levels:
        r = scores(degrade(test, lv), train, tiny, tmp_path, ("fid", "kid"), real_cache_name="ref-train-600")
        fids.append(r["fid"])
        kids.append(r["kid_mean"])
    assert all(b > a for a, b in zip(fids, fids[1:])), fids
    assert all(b > a for a, b in zip(kids, kids[1:])), kids


def test_fid_matches_independent_frechet(sets, tiny, tmp_path):
    test, train = sets
    ours = scores(test, train, tiny, tmp_path)["fid"]
    ev = load_evaluator(tiny)
    f1 = ev.features_and_logits(test)[0].double().numpy()
    f2 = ev.features_and_logits(train)[0].double().numpy()
    m1, m2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    # Tr (S1 S2)^(1/2) = Tr (S1^(1/2) S2 S1^(1/2))^(1/2), with symmetric eigendecompositions (PSD-safe
    # when dead ReLU units make the covariances singular); torch-fidelity uses eigvals(S1 S2) instead
    w, v = scipy.linalg.eigh(s1)
    s1h = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(scipy.linalg.eigvalsh(s1h @ s2 @ s1h), 0, None)).sum()
    ref = float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
    assert ours == pytest.approx(ref, rel=1e-3)


def test_kid_subset_size_adapts(sets, tiny, tmp_path):
    test, train = sets
    r = scores(test[:150], train, tiny, tmp_path, ("kid",))
    assert r["kid_subset_size"] == 150 and r["kid_std"] >= 0
    assert Fm.adapted_kid_subset_size(5000, 20000) == 1000
    assert Fm.adapted_kid_subset_size(300, 20000) == 300
    with pytest.raises(Fi.MetricInputError):
        Fm.adapted_kid_subset_size(1, 100)


def test_precision_recall(sets, tiny, tmp_path):
    test, train = sets
    r = scores(test, train, tiny, tmp_path, ("prc",))
    assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
    flat = torch.full_like(test, 128)
    flat[:, :, ::2] = 0  # all-identical stripes: far from real faces
    assert scores(flat, train, tiny, tmp_path, ("prc",))["precision"] < r["precision"]


def test_cache_key_changes_with_content():
    base = dict(data_sha256="a" * 64, split="train", label_set="fer7", extractor="fer-evaluator",
                weights_sha256="b" * 64, n_samples=100)
    k = Fi.reference_cache_name(**base)
    assert Fi.reference_cache_name(**{**base, "weights_sha256": "c" * 64}) != k
    assert Fi.reference_cache_name(**{**base, "n_samples": 101}) != k
    assert Fi.reference_cache_name(**{**base, "data_sha256": "d" * 64}) != k
    assert Fi.reference_cache_name(**{**base, "split": "test"}) != k
    assert Fi.reference_cache_name(**base) == k


def test_cache_key_changes_when_weights_change(real, tiny, tmp_path):
    other = tiny_evaluator(subset(real, {"train": 20, "val": 5, "test": 5}), tmp_path / "other.pt", epochs=1, seed=1)
    _, sha1 = Fi.extractor_info("fer-evaluator", tiny)
    _, sha2 = Fi.extractor_info("fer-evaluator", other)
    assert sha1 != sha2
    k = lambda sha: Fi.reference_cache_name(real.content_sha256(), "train", "fer7", "fer-evaluator", sha, 600)
    assert k(sha1) != k(sha2)


def test_inception_unavailable_without_weights(monkeypatch, tmp_path, sets):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert Fi.inception_weights_path() is None
    with pytest.raises(Fi.ExtractorUnavailable, match="inception-weights"):
        Fm.fidelity_scores(sets[0][:10], sets[1][:10], ("fid",), extractor="inception-v3-compat")
    with pytest.raises(Fi.MetricInputError, match="no such file"):
        Fi.inception_weights_path(tmp_path / "nope.pth")


@pytest.mark.parametrize("bad, msg", [
    (torch.rand(4, 1, 48, 48) * 2 - 1, "to_uint8"),
    (torch.rand(4, 1, 48, 48) * 255, r"outside \[-1, 1\]"),
    (torch.full((4, 1, 48, 48), 300, dtype=torch.int64), "outside 0..255"),
    (torch.zeros(4, 48, 48, dtype=torch.uint8), "4-D"),
    (torch.zeros(4, 2, 48, 48, dtype=torch.uint8), "channels"),
    (torch.zeros(4, 1, 64, 64, dtype=torch.uint8), "48x48"),
    (torch.zeros(0, 1, 48, 48, dtype=torch.uint8), "empty"),
    (np.zeros((4, 1, 48, 48), dtype=np.uint8), "torch.Tensor"),
])
def test_bad_inputs(bad, msg, sets, tiny, tmp_path):
    with pytest.raises(Fi.MetricInputError, match=msg):
        scores(bad, sets[1], tiny, tmp_path)


def test_intra_class_fid(real, tiny, tmp_path):
    sm = subset(real, {"train": 40, "test": 20})
    tr, te = sm.split("train"), sm.split("test")
    r = Fm.intra_class_fid(te.images, te.labels, tr.images, tr.labels, sm.class_names, evaluator_weights=tiny,
                           cache_root=tmp_path)
    assert set(r["per_class"]) == set(sm.class_names)
    assert r["mean"] == pytest.approx(np.mean(list(r["per_class"].values())))
    with pytest.raises(Fi.MetricInputError, match="class"):
        Fm.intra_class_fid(te.images[:3], te.labels[:3], tr.images, tr.labels, sm.class_names, evaluator_weights=tiny)


def test_inception_explicit_path_and_hub_cache(monkeypatch, tmp_path):
    """An explicit --inception-weights file or one in torch's hub cache is used (never a download)."""
    w = tmp_path / "inc.pth"
    w.write_bytes(b"not really weights")
    p, sha = Fi.extractor_info("inception-v3-compat", inception_weights=w)
    assert p == w and len(sha) == 64
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / Fi.INCEPTION_FILE).write_bytes(b"x")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    assert Fi.inception_weights_path() == hub / "checkpoints" / Fi.INCEPTION_FILE
    with pytest.raises(Fi.MetricInputError, match="unknown feature extractor"):
        Fi.extractor_info("vgg16")


def test_cached_subset_features_are_read_not_extracted(sets, tiny, tmp_path):
    _, train = sets
    full = Fm.fidelity_features(train, "full", evaluator_weights=tiny, cache_root=tmp_path)
    rows = torch.arange(0, 600, 3)
    Fm.cache_features(full[rows], "subset", cache_root=tmp_path)
    # the subset's name now reads the stored rows, whatever images are passed: nothing is extracted
    assert torch.equal(Fm.fidelity_features(train[:5], "subset", evaluator_weights=tiny, cache_root=tmp_path),
                       full[rows])
    # and the rows are what extracting the subset's images gives (another batch composition)
    direct = Fm.fidelity_features(train[rows], None, evaluator_weights=tiny, cache_root=tmp_path)
    assert torch.allclose(direct, full[rows], rtol=1e-4, atol=1e-5)
    # FID against the stored subset equals FID against the freshly extracted one
    test = sets[0]
    stored = scores(test, train[rows], tiny, tmp_path, real_cache_name="subset")["fid"]
    fresh = scores(test, train[rows], tiny, tmp_path / "fresh")["fid"]
    assert stored == pytest.approx(fresh, rel=1e-4)
    # an existing entry is kept
    Fm.cache_features(torch.zeros(3, full.shape[1]), "subset", cache_root=tmp_path)
    assert torch.equal(Fm.fidelity_features(train[:5], "subset", evaluator_weights=tiny, cache_root=tmp_path), full[rows])


def test_reference_extraction_holds_a_lock_per_cache_name(sets, tiny, tmp_path, monkeypatch):
    from filelock import FileLock, Timeout
    from torch_fidelity import utils

    seen = {}
    real_extract = utils.extract_featuresdict_from_input_id

    def extract(*a, **kw):  # while extracting, another process cannot take the name's lock
        try:
            with FileLock(str(tmp_path / "ref.lock"), timeout=0.05):
                seen["free"] = True
        except Timeout:
            seen["free"] = False
        return real_extract(*a, **kw)

    monkeypatch.setattr(utils, "extract_featuresdict_from_input_id", extract)
    Fm.fidelity_features(sets[1][:50], "ref", evaluator_weights=tiny, cache_root=tmp_path)
    assert seen == {"free": False}
    Fm.fidelity_features(sets[1][:50], "ref", evaluator_weights=tiny, cache_root=tmp_path)  # read back: unlocked after
    with FileLock(str(tmp_path / "ref.lock"), timeout=0.05):
        pass
