"""Bootstrap confidence intervals over generated samples, and FID's sample-count bias.

Every interval here resamples the *generated* side (features or per-sample outcomes) with
replacement, ``CI_DRAWS`` = 200 times with a fixed seed, the real side staying fixed (Efron &
Tibshirani 1993). FID is biased upward at finite N and resampling with replacement adds duplicates,
which biases the draws further; so the interval reported is the percentile interval of the draws
shifted by the bootstrap estimate of that bias (mean of the draws minus the full-set value), i.e.
``[q2.5 - b, q97.5 - b]`` with ``b = mean(draws) - value``. For a mean (an accuracy) ``b`` is ~0 and
this is the plain percentile interval. Entries carry ``ci95: [lo, hi]``, ``ci_draws``, ``ci_seed``,
``ci_method`` (:func:`ci_fields`).

FID's sample-count bias (Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and
where to find them"): FID is close to linear in 1/N, so FID at N, N/2 and N/4 (nested random subsets
of the generated features) fitted by least squares in 1/N gives ``fid_inf``, the intercept at 1/N = 0.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

CI_DRAWS = 200
CI_SEED = 12345
CI_METHOD = "bootstrap over generated samples, percentile interval shifted by the bootstrap bias estimate"


def bootstrap_draws(n: int, draws: int = CI_DRAWS, seed: int = CI_SEED) -> np.ndarray:
    """int64 ``draws x n`` indices drawn with replacement from ``0..n-1`` (numpy PCG64, ``seed``)."""
    if n < 1:
        raise ValueError(f"bootstrap over an empty set (n={n})")
    return np.random.default_rng(seed).integers(0, n, size=(int(draws), int(n)))


def interval(value: float, draws: np.ndarray, level: float = 0.95) -> list[float]:
    """The bias-shifted percentile interval ``[lo, hi]`` of bootstrap ``draws`` around ``value``."""
    d = np.asarray(draws, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0 or float(d.min()) == float(d.max()):  # no spread (e.g. every class all right or all wrong)
        return [float(value), float(value)]
    b = float(d.mean()) - float(value)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(d, [a, 1.0 - a]) - b
    return [float(lo), float(hi)]


def ci_fields(value: float, draws: np.ndarray, seed: int = CI_SEED, over: str = "generated samples") -> dict:
    """``{"ci95": [lo, hi], "ci_draws", "ci_seed", "ci_method", "ci_over"}`` for an eval.json entry."""
    return {"ci95": interval(value, draws), "ci_draws": int(len(draws)), "ci_seed": int(seed),
            "ci_method": CI_METHOD.replace("generated samples", over), "ci_over": over}


def mean_ci(outcomes, draws: int = CI_DRAWS, seed: int = CI_SEED, over: str = "generated samples") -> dict:
    """Bootstrap interval of the mean of per-sample outcomes (e.g. 1.0 = correctly classified).

    Args:
        outcomes: float array of N per-sample values.
    """
    x = np.asarray(outcomes, dtype=np.float64).ravel()
    idx = bootstrap_draws(x.size, draws, seed)
    return ci_fields(float(x.mean()), x[idx].mean(axis=1), seed, over)


def balanced_mean_ci(outcomes, labels, draws: int = CI_DRAWS, seed: int = CI_SEED,
                     over: str = "generated samples", value: float | None = None) -> dict:
    """Bootstrap interval of a class-balanced mean (e.g. balanced accuracy: the mean per-class recall),
    resampling within each class (stratified: every draw keeps the class counts).

    Args:
        outcomes: float array of N per-sample values; labels: int array of N class indices (classes
            without a sample do not count).
        value: the full-set value the interval is placed around (default: computed here).
    """
    x = np.asarray(outcomes, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    classes = np.unique(y)
    if value is None:
        value = float(np.mean([x[y == c].mean() for c in classes]))
    per = [x[y == c][bootstrap_draws(int((y == c).sum()), draws, seed + int(c))].mean(axis=1) for c in classes]
    return ci_fields(value, np.mean(np.array(per), axis=0), seed, over + ", stratified by class")


class FrechetToFixed:
    """Fréchet distance of resampled generated features to fixed real statistics, fast.

    ``Tr((S_g S_r)^(1/2)) = sum sqrt(eig(A S_g A))`` with ``A = S_r^(1/2)`` symmetric (computed once), so
    each draw needs one symmetric eigendecomposition (``eigvalsh``) instead of a general one.

    Args:
        real_statistics: ``{"mu": D, "sigma": D x D}`` as torch-fidelity's ``fid_features_to_statistics``.
    """

    def __init__(self, real_statistics: dict) -> None:
        self.mu = np.asarray(real_statistics["mu"], dtype=np.float64)
        s = np.asarray(real_statistics["sigma"], dtype=np.float64)
        w, v = np.linalg.eigh((s + s.T) / 2)
        self.a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        self.tr = float(np.trace(s))

    def __call__(self, feats: np.ndarray) -> float:
        """FID of float N x D features against the real statistics."""
        f = np.asarray(feats, dtype=np.float64)
        mu = f.mean(0)
        sg = np.cov(f, rowvar=False)
        m = self.a @ sg @ self.a
        ev = np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)
        d = mu - self.mu
        return float(d @ d + np.trace(sg) + self.tr - 2 * np.sqrt(ev).sum())


def fid_ci(generated: torch.Tensor, real_statistics: dict, value: float, draws: int = CI_DRAWS,
           seed: int = CI_SEED) -> dict:
    """Bootstrap interval of FID over generated features (real statistics fixed).

    Args:
        generated: float32 N x D generated features; real_statistics: the reference's mu/sigma;
        value: the full-set FID (torch-fidelity's), around which the interval is placed.
    """
    f = generated.double().numpy()
    fd = FrechetToFixed(real_statistics)
    idx = bootstrap_draws(f.shape[0], draws, seed)
    return ci_fields(value, np.array([fd(f[i]) for i in idx]), seed)


def fid_infinity(generated: torch.Tensor, real_statistics: dict, fid_n: Callable | None = None,
                 fractions=(1.0, 0.5, 0.25), seed: int = CI_SEED) -> dict:
    """FID extrapolated to infinitely many generated samples (linear fit in 1/N, Chong & Forsyth 2020).

    Args:
        generated: float32 N x D features; real_statistics: mu/sigma of the reference.
        fractions: subset sizes as fractions of N (nested random subsets, permutation with ``seed``).

    Returns:
        ``{"fid_inf": float, "fid_at_n": {N_i: FID}, "fid_inf_slope": float}`` (FID ~ fid_inf + slope / N).
    """
    f = generated.double().numpy()
    fd = fid_n or FrechetToFixed(real_statistics)
    perm = np.random.default_rng(seed).permutation(f.shape[0])
    ns = sorted({max(2, int(round(f.shape[0] * q))) for q in fractions}, reverse=True)
    vals = [fd(f[perm[:n]]) for n in ns]
    if len(ns) < 2:
        return {"fid_inf": None, "fid_at_n": {str(n): v for n, v in zip(ns, vals)}, "fid_inf_slope": None}
    slope, icpt = np.polyfit(1.0 / np.array(ns, dtype=np.float64), np.array(vals), 1)
    return {"fid_inf": float(icpt), "fid_at_n": {str(n): float(v) for n, v in zip(ns, vals)},
            "fid_inf_slope": float(slope)}


def kid_ci(generated: torch.Tensor, real: torch.Tensor, value: float, draws: int = CI_DRAWS, seed: int = CI_SEED,
           degree: int = 3, coef0: float = 1.0, chunk: int = 2048) -> dict:
    """Bootstrap interval of KID over generated features (real features fixed).

    Each draw is the unbiased MMD^2 of the resampled generated multiset against all real features
    with torch-fidelity's kernel ``(x.y / D + coef0)^degree``, over distinct positions of the draw;
    the real-real term is the same in every draw, so it cancels in the bias-shifted interval and is not
    computed. (torch-fidelity's own number averages MMD^2 over random subsets; the interval is placed
    around it.) Memory: the M x M generated kernel in float32 (400 MB at M = 10,000).

    Args:
        generated: float M x D; real: float N x D; value: the full-set KID (torch-fidelity's mean).
    """
    x = generated.double()
    y = real.double()
    m, d = x.shape
    gamma = 1.0 / d
    kxx = torch.empty(m, m, dtype=torch.float32)
    kxy = torch.zeros(m, dtype=torch.float64)
    for i in range(0, m, chunk):
        xi = x[i : i + chunk]
        kxx[i : i + chunk] = ((xi @ x.T) * gamma + coef0).pow(degree).float()
        for j in range(0, y.shape[0], chunk * 4):
            kxy[i : i + chunk] += ((xi @ y[j : j + chunk * 4].T) * gamma + coef0).pow(degree).sum(1)
    diag = kxx.diagonal().double()
    idx = bootstrap_draws(m, draws, seed)
    w = torch.stack([torch.bincount(torch.from_numpy(r), minlength=m) for r in idx], 1)  # M x draws
    wf = w.float()
    quad = (wf * (kxx @ wf)).sum(0).double()
    xx = (quad - (w.double() * diag[:, None]).sum(0)) / (m * (m - 1))
    xy = (w.double() * kxy[:, None]).sum(0) / (m * y.shape[0])
    stat = (xx - 2 * xy).numpy()
    return ci_fields(value, stat, seed)


def stratified_fid_ci(per_class_feats: list, per_class_stats: list, value: float, draws: int = CI_DRAWS,
                      seed: int = CI_SEED) -> dict:
    """Bootstrap interval of a mean of per-class FIDs (intra-class FID), resampling within each class.

    Args:
        per_class_feats: K float tensors n_k x D of generated features; per_class_stats: K real
            statistics; value: the full-set mean (torch-fidelity's).
    """
    per = []
    for k, (f, st) in enumerate(zip(per_class_feats, per_class_stats)):
        fd = FrechetToFixed(st)
        a = f.double().numpy()
        per.append([fd(a[i]) for i in bootstrap_draws(a.shape[0], draws, seed + k)])
    return ci_fields(value, np.mean(np.array(per), axis=0), seed)
