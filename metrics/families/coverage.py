"""Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
Models", ICML), with k-NN balls on the *real* features (k = 5, the paper's choice).

With ``NND_k(r)`` the distance of real sample r to its k-th nearest other real sample and
``B(r) = {x : |x - r| <= NND_k(r)}``:

* density  = ``1/(kM) sum_j sum_i 1[Y_j in B(X_i)]`` (M generated Y, N real X): how many real
  balls a generated sample falls in, on average, over k; 1 for a matching distribution, above 1
  where samples crowd dense real regions; unlike precision it is not fooled by real outliers.
* coverage = ``1/N sum_i 1[exists j: Y_j in B(X_i)]``: the fraction of real balls holding at least
  one generated sample; it drops when modes are dropped and is bounded in [0, 1].

Our own code (the ``prdc`` package does the same with sklearn, its NxN distance matrices do not fit
memory at 10k x 10k); distances in chunks with ``torch.cdist`` in float32, ball memberships kept sparse.
"""

from __future__ import annotations

import numpy as np
import torch

DC_NEIGHBORHOOD = 5
CHUNK = 1024


def _check(feats, what: str) -> torch.Tensor:
    if not torch.is_tensor(feats) or feats.dim() != 2 or feats.shape[0] == 0:
        raise ValueError(f"{what}: expected a float N x D feature tensor, got "
                         f"{tuple(feats.shape) if torch.is_tensor(feats) else type(feats).__name__}")
    return feats.float().cpu()


def kth_neighbour_radii(real: torch.Tensor, k: int = DC_NEIGHBORHOOD, chunk: int = CHUNK) -> torch.Tensor:
    """float32 N: distance of each real sample to its k-th nearest *other* real sample."""
    real = _check(real, "real features")
    if real.shape[0] <= k:
        raise ValueError(f"density/coverage with k={k} needs more than {k} real samples, got {real.shape[0]}")
    out = []
    for i in range(0, real.shape[0], chunk):
        d = torch.cdist(real[i : i + chunk], real)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # index 0 is the sample itself
    return torch.cat(out)


MAX_MEMBERS = 32  # ball members kept per row for the bootstrap (see :func:`ball_hits`)


def ball_hits(rows: torch.Tensor, cols: torch.Tensor, radii: torch.Tensor, radius_of: str = "row",
              max_members: int = MAX_MEMBERS, chunk: int = CHUNK):
    """Which (row, col) pairs lie within a ball: ``|rows[i] - cols[j]| <= radii[i]`` (``radius_of="row"``)
    or ``<= radii[j]`` (``"col"``), in chunks of rows.

    Args:
        rows: float R x D; cols: float C x D; radii: float R or C (per ``radius_of``).
        max_members: hits kept per row in the returned matrix (the first ones in column order; 0: no
            matrix). A row with 32 members misses all of them in a bootstrap draw with probability
            about e^-32, so capping keeps the intervals exact while bounding memory by 32 x R entries.

    Returns:
        ``(row_counts int64 R, col_counts int64 C, members)``: hits per row and per column (uncapped),
        and a scipy CSR float32 R x C matrix of the kept hits (None when ``max_members`` is 0).
    """
    from scipy import sparse

    rows, cols = _check(rows, "features"), _check(cols, "features")
    rc, cc = [], torch.zeros(cols.shape[0], dtype=torch.int64)
    parts = []
    for i in range(0, rows.shape[0], chunk):
        d = torch.cdist(rows[i : i + chunk], cols)
        hit = d <= (radii[i : i + chunk, None] if radius_of == "row" else radii[None, :])
        rc.append(hit.sum(1))
        cc += hit.sum(0)
        if max_members:
            keep = hit & (hit.cumsum(1) <= max_members)
            r, c = torch.nonzero(keep, as_tuple=True)
            parts.append(sparse.csr_matrix((np.ones(len(r), dtype=np.float32), (r.numpy(), c.numpy())),
                                           shape=(hit.shape[0], cols.shape[0])))
    members = sparse.vstack(parts, format="csr") if max_members else None
    return torch.cat(rc), cc, members


def density_coverage(real: torch.Tensor, generated: torch.Tensor, k: int = DC_NEIGHBORHOOD,
                     ci_draws: int = 0, ci_seed: int = 0) -> dict:
    """Density and coverage of generated features against real features (Naeem et al. 2020).

    Args:
        real: float N x D real features (the k-NN balls); generated: float M x D.
        k: neighbourhood size of the balls.
        ci_draws: bootstrap draws over generated samples (0: none), ``ci_seed`` their seed; the real
            balls stay fixed (see :mod:`exprbench.metrics.families.bootstrap`).

    Returns:
        ``{"density": float, "coverage": float, "k": k, "n_real": N, "n_generated": M}`` plus, with
        draws, ``"density_ci": {ci fields}`` and ``"coverage_ci": {ci fields}``.

    Raises:
        ValueError: empty or non-2-D features, N <= k, or different feature widths.
    """
    real, generated = _check(real, "real features"), _check(generated, "generated features")
    if real.shape[1] != generated.shape[1]:
        raise ValueError(f"feature widths differ: real {real.shape[1]}, generated {generated.shape[1]}")
    radii = kth_neighbour_radii(real, k)
    real_hits, counts, members = ball_hits(real, generated, radii, "row", MAX_MEMBERS if ci_draws else 0)
    density = float(counts.double().mean() / k)
    coverage = float((real_hits > 0).double().mean())
    out = {"density": density, "coverage": coverage, "k": int(k), "n_real": int(real.shape[0]),
           "n_generated": int(generated.shape[0])}
    if ci_draws:
        from exprbench.metrics.families.bootstrap import bootstrap_draws, ci_fields

        idx = bootstrap_draws(generated.shape[0], ci_draws, ci_seed)
        c = counts.double().numpy()
        dens, cov = [], []
        for draw in idx:
            w = np.bincount(draw, minlength=generated.shape[0]).astype(np.float32)
            dens.append(c[draw].mean() / k)
            cov.append(float((members @ w > 0).mean()))
        out["density_ci"] = ci_fields(density, np.array(dens), ci_seed)
        out["coverage_ci"] = ci_fields(coverage, np.array(cov), ci_seed)
    return out


def precision_recall_ci(real: torch.Tensor, generated: torch.Tensor, values: dict, k: int = 3,
                        draws: int = 200, seed: int = 0) -> dict:
    """Bootstrap intervals of improved precision / recall (Kynkäänniemi et al. 2019, torch-fidelity's
    definition: k-NN radii including the sample itself) and their F-score, over generated samples.

    The k-NN radii stay those of the full sets (a resampled set's duplicates would shrink them to 0);
    the draws resample which generated samples are present.

    Args:
        real, generated: float N x D and M x D features (torch-fidelity's input2 / input1).
        values: ``{"precision", "recall", "f_score"}`` of the full sets (torch-fidelity's numbers,
            around which the intervals are placed).
        k: neighbourhood size (torch-fidelity's ``prc_neighborhood``).

    Returns:
        ``{"precision": ci fields, "recall": ci fields, "f_score": ci fields}``.
    """
    from exprbench.metrics.families.bootstrap import bootstrap_draws, ci_fields

    real, generated = _check(real, "real features"), _check(generated, "generated features")
    prec_hit = (ball_hits(generated, real, kth_neighbour_radii(real, k), "col", 0)[0] > 0).double().numpy()
    _, _, rec = ball_hits(real, generated, kth_neighbour_radii(generated, k), "col")  # real x generated
    idx = bootstrap_draws(generated.shape[0], draws, seed)
    ps, rs = [], []
    for draw in idx:
        w = np.bincount(draw, minlength=generated.shape[0]).astype(np.float32)
        ps.append(prec_hit[draw].mean())
        rs.append(float((rec @ w > 0).mean()))
    ps, rs = np.array(ps), np.array(rs)
    fs = np.where(ps + rs > 0, 2 * ps * rs / np.maximum(ps + rs, 1e-12), 0.0)
    return {"precision": ci_fields(values["precision"], ps, seed), "recall": ci_fields(values["recall"], rs, seed),
            "f_score": ci_fields(values["f_score"], fs, seed)}
