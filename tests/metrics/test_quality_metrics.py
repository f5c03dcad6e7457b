"""Issue 12, first slice: density/coverage, memorisation, bootstrap intervals, FID at infinite N,
class-balanced accuracy with trivial baselines, and the data-fingerprint warning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from exprbench.metrics.families.bootstrap import FrechetToFixed, fid_ci, fid_infinity, interval, mean_ci
from exprbench.metrics.families.classaware import accuracy_baselines, balanced_accuracy
from exprbench.metrics.families.coverage import density_coverage
from exprbench.metrics.families.memorisation import memorisation, nearest_neighbours, pairs_grid


def _blobs(n, centers, seed, dim=8, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor(centers, dtype=torch.float32)
    idx = torch.arange(n) % len(c)
    return c[idx] + spread * torch.randn(n, dim, generator=g), idx


CENTERS = [[5.0 * (i == j) for j in range(8)] for i in range(4)]


def test_density_coverage_matching_and_dropped_mode():
    real, _ = _blobs(400, CENTERS, 0)
    same, _ = _blobs(400, CENTERS, 1)
    full = density_coverage(real, same)
    assert full["coverage"] > 0.9 and 0.7 < full["density"] < 1.3 and full["k"] == 5
    dropped, lab = _blobs(400, CENTERS[:3], 2)
    part = density_coverage(real, dropped)
    assert part["coverage"] < 0.8 < full["coverage"]
    a = density_coverage(real, same, ci_draws=50, ci_seed=3)
    b = density_coverage(real, same, ci_draws=50, ci_seed=3)
    assert a["coverage_ci"] == b["coverage_ci"] and a["density_ci"]["ci95"] == b["density_ci"]["ci95"]
    for key in ("coverage", "density"):
        lo, hi = a[f"{key}_ci"]["ci95"]
        assert lo <= a[key] <= hi
    with pytest.raises(ValueError, match="more than 5"):
        density_coverage(real[:5], same)


def test_memorisation_flags_planted_copies():
    train, _ = _blobs(500, CENTERS, 0)
    test, _ = _blobs(200, CENTERS, 1)
    fresh, _ = _blobs(200, CENTERS, 2)
    d, i = nearest_neighbours(fresh[:3], train, chunk=2)
    ref = torch.cdist(fresh[:3], train).min(1)
    assert torch.allclose(d, ref.values, atol=1e-3) and torch.equal(i, ref.indices)
    base = memorisation(fresh, train, test)
    copies = torch.cat([train[:100] + 1e-4, fresh[:100]])
    mem = memorisation(copies, train, test, ci_draws=40, ci_seed=0)
    assert base["fraction"] < 0.15 and mem["fraction"] >= 0.5
    real = memorisation(test, train, test)
    assert abs(real["fraction"] - 0.05) < 0.011
    top = mem["closest_pairs"]
    assert len(top) == 16 and all(p["sample"] < 100 for p in top)
    assert [p["distance"] for p in top] == sorted(p["distance"] for p in top)
    assert top[0]["train_index"] == top[0]["sample"]
    lo, hi = mem["fraction_ci"]["ci95"]
    assert lo <= mem["fraction"] <= hi
    grid = pairs_grid(torch.zeros(16, 1, 48, 48, dtype=torch.uint8), torch.ones(16, 1, 48, 48, dtype=torch.uint8))
    assert grid.dtype == np.uint8 and grid.shape == (4 * 50 + 2, 4 * (96 + 10) - 6)


def test_bootstrap_fid_matches_torch_fidelity_and_is_seeded():
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    real, _ = _blobs(600, CENTERS, 0)
    gen, _ = _blobs(300, CENTERS, 1, spread=0.4)
    rs = fid_features_to_statistics(real)
    tf = fid_statistics_to_metric(fid_features_to_statistics(gen), rs, False)["frechet_inception_distance"]
    assert abs(FrechetToFixed(rs)(gen.double().numpy()) - tf) <= 1e-6 * max(1.0, abs(tf))
    a, b = fid_ci(gen, rs, tf, draws=60, seed=7), fid_ci(gen, rs, tf, draws=60, seed=7)
    assert a == b and a["ci_draws"] == 60 and a["ci_seed"] == 7
    assert a["ci95"][0] <= tf <= a["ci95"][1]
    assert fid_ci(gen, rs, tf, draws=60, seed=8)["ci95"] != a["ci95"]
    inf = fid_infinity(gen, rs)
    assert set(inf["fid_at_n"]) == {"300", "150", "75"} and inf["fid_inf"] < inf["fid_at_n"]["300"]


def test_mean_ci_and_interval():
    x = np.array([1.0] * 70 + [0.0] * 30)
    ci = mean_ci(x, draws=200, seed=1)
    assert ci["ci95"][0] <= 0.7 <= ci["ci95"][1] and ci == mean_ci(x, draws=200, seed=1)
    assert interval(1.0, np.array([1.0, 1.0])) == [1.0, 1.0]


def test_balanced_accuracy_and_baselines():
    assert balanced_accuracy({"a": 1.0, "b": 0.0, "c": None}) == 0.5 and balanced_accuracy({"a": None}) is None
    b = accuracy_baselines(torch.tensor([0, 1, 1, 2]), torch.tensor([1, 0, 0, 0]), ["x", "y", "z"])
    assert b["majority_class"] == "y" and b["majority_acc"] == 0.25 and b["chance"] == pytest.approx(1 / 3)


def test_fingerprint_warning(tmp_path):
    from exprbench.metrics.run.run_checks import fingerprint_warnings, run_train_fingerprint

    assert run_train_fingerprint(tmp_path) is None
    (tmp_path / "status.json").write_text(json.dumps({"data_fingerprint": "a" * 64}))
    assert run_train_fingerprint(tmp_path) == "a" * 64
    assert fingerprint_warnings("a" * 64, "a" * 64, "d.zip") == []
    (w,) = fingerprint_warnings("a" * 64, "b" * 64, "d.zip")
    assert "aaaaaaaaaaaa" in w and "bbbbbbbbbbbb" in w and "d.zip" in w


def test_precision_recall_ci_around_torch_fidelity():
    from torch_fidelity.metric_prc import calculate_precision_recall_part

    from exprbench.metrics.families.coverage import precision_recall_ci

    real, _ = _blobs(300, CENTERS, 0)
    gen, _ = _blobs(200, CENTERS[:3], 1, spread=0.5)
    p, r = calculate_precision_recall_part(gen, real, neighborhood=3)
    vals = {"precision": p, "recall": r, "f_score": 2 * p * r / (p + r)}
    a = precision_recall_ci(real, gen, vals, k=3, draws=50, seed=2)
    assert a == precision_recall_ci(real, gen, vals, k=3, draws=50, seed=2)
    for key, v in vals.items():
        lo, hi = a[key]["ci95"]
        assert lo <= v <= hi, (key, v, a[key])


def test_kid_ci_contains_torch_fidelity_value():
    from torch_fidelity.metric_kid import kid_features_to_metric

    from exprbench.metrics.families.bootstrap import kid_ci

    real, _ = _blobs(300, CENTERS, 0)
    gen, _ = _blobs(200, CENTERS, 1, spread=0.5)
    v = kid_features_to_metric(gen, real, kid_subsets=20, kid_subset_size=100, verbose=False,
                               rng_seed=0)["kernel_inception_distance_mean"]
    a = kid_ci(gen, real, v, draws=50, seed=4, chunk=64)
    assert a == kid_ci(gen, real, v, draws=50, seed=4, chunk=64)
    assert a["ci95"][0] <= v <= a["ci95"][1]


def test_ball_hits_counts_and_cap():
    from exprbench.metrics.families.coverage import ball_hits, kth_neighbour_radii

    real, _ = _blobs(120, CENTERS, 0)
    gen, _ = _blobs(90, CENTERS, 1)
    r = kth_neighbour_radii(real, 5)
    d = torch.cdist(real, gen) <= r[:, None]
    rc, cc, m = ball_hits(real, gen, r, "row", max_members=3, chunk=17)
    assert torch.equal(rc, d.sum(1)) and torch.equal(cc, d.sum(0))
    dense = torch.from_numpy(m.toarray()) > 0
    assert (dense <= d).all() and torch.equal(dense.sum(1), d.sum(1).clamp(max=3))
    assert ball_hits(real, gen, r, "row", max_members=0)[2] is None


def test_duplicates_left_out_of_the_threshold():
    """With more than 5% of the test faces copied from train (FER2013: 8%), the threshold would be 0."""
    from exprbench.metrics.families.memorisation import duplicate_mask

    train, _ = _blobs(500, CENTERS, 0)
    test, _ = _blobs(200, CENTERS, 1)
    test[:20] = train[:20]  # 10% exact copies
    d, _ = nearest_neighbours(test[:20], train)
    assert (d == 0).all()  # copies are at distance exactly 0 (not cdist's ~1e-3)
    assert memorisation(test, train, test)["threshold"] == 0.0
    excl = torch.zeros(200, dtype=torch.bool)
    excl[:20] = True
    res = memorisation(test[20:], train, test, test_exclude=excl)
    assert res["threshold"] > 0 and res["n_test_excluded"] == 20 and res["n_test"] == 180
    assert abs(res["fraction"] - 0.05) < 0.011
    imgs = torch.randint(0, 256, (6, 1, 4, 4), dtype=torch.uint8)
    assert duplicate_mask(imgs, imgs[[1, 3]]).tolist() == [False, True, False, True, False, False]


def test_balanced_mean_ci_stratified():
    from exprbench.metrics.families.bootstrap import balanced_mean_ci

    # 90 of class 0 all right, 10 of class 1 all wrong: plain accuracy 0.9, balanced 0.5
    outcomes, labels = [1.0] * 90 + [0.0] * 10, [0] * 90 + [1] * 10
    a = balanced_mean_ci(outcomes, labels, draws=50, seed=1, over="test images")
    assert a["ci95"] == [0.5, 0.5] and "stratified" in a["ci_method"]
    rng = np.random.default_rng(0)
    outcomes, labels = rng.random(300) < 0.6, rng.integers(0, 3, 300)
    b = balanced_mean_ci(outcomes, labels, draws=100, seed=2)
    value = np.mean([outcomes[labels == c].mean() for c in range(3)])
    assert b["ci95"][0] <= value <= b["ci95"][1] and b == balanced_mean_ci(outcomes, labels, draws=100, seed=2)
