"""Memorisation: how many generated samples sit closer to a training face than real unseen faces do.

For each generated sample, its nearest training face in a feature space (a parameter: the protocol's
extractor, today the FER evaluator's penultimate features). The threshold is the ``q`` = 5th
percentile of the nearest-train distances of real PrivateTest faces (faces the model never saw); the
value is the fraction of generated samples whose nearest-train distance is below it. A model that
draws new faces from the training distribution scores about ``q`` (5%); a model that copies training
faces scores well above it. The same statistic on the test faces themselves is the real-data value
(``q`` by construction, up to ties). The closest (sample, train face) pairs are kept for a figure.

Nearest neighbours in chunks with ``torch.cdist`` (float32, ``chunk`` query rows at a time, so a 10k x
28,709 search stays under ~150 MB).
"""

from __future__ import annotations

import numpy as np
import torch

MEM_QUANTILE = 0.05
N_PAIRS = 16
CHUNK = 1024


def nearest_neighbours(query: torch.Tensor, ref: torch.Tensor, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean nearest neighbour in ``ref`` of each row of ``query``.

    Args:
        query: float M x D; ref: float N x D (same D).
        chunk: query rows per ``torch.cdist`` call (memory ~ chunk x N x 4 bytes).

    Returns:
        ``(distances float32 M, indices int64 M)`` into ``ref``.

    Raises:
        ValueError: empty or non-2-D inputs, different widths.
    """
    for t, what in ((query, "query"), (ref, "reference")):
        if not torch.is_tensor(t) or t.dim() != 2 or t.shape[0] == 0:
            raise ValueError(f"{what} features: expected a float N x D tensor")
    if query.shape[1] != ref.shape[1]:
        raise ValueError(f"feature widths differ: {query.shape[1]} vs {ref.shape[1]}")
    q, r = query.float().cpu(), ref.float().cpu()
    ix = []
    for i in range(0, q.shape[0], chunk):
        ix.append(torch.cdist(q[i : i + chunk], r).argmin(dim=1))
    ix = torch.cat(ix)
    # cdist's matrix-product form has errors of ~1e-3 (identical vectors at > 0): the distance to the
    # neighbour found is recomputed directly, so an exact copy is at distance 0
    return (q - r[ix]).norm(dim=1), ix


def duplicate_mask(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """bool N: which of ``images`` are exact pixel copies of an image of ``reference`` (uint8 N x C x H x W).

    FER2013 has them: 288 of the 3,589 PrivateTest faces (8.0%) also appear in the train split.
    """
    import hashlib

    def key(x: torch.Tensor) -> bytes:
        return hashlib.sha1(x.contiguous().numpy().tobytes()).digest()

    seen = {key(x) for x in reference.cpu()}
    return torch.tensor([key(x) in seen for x in images.cpu()], dtype=torch.bool)


def memorisation(generated: torch.Tensor, train: torch.Tensor, test: torch.Tensor, q: float = MEM_QUANTILE,
                 n_pairs: int = N_PAIRS, ci_draws: int = 0, ci_seed: int = 0,
                 test_exclude: torch.Tensor | None = None) -> dict:
    """The memorisation statistic of generated features (or, for the real-data value, of test features).

    Args:
        generated: float M x D features of the samples scored; train: float N x D training features;
            test: float T x D features of real unseen faces (the threshold).
        q: quantile of the test-to-train nearest distances used as threshold.
        n_pairs: closest (sample, train) pairs recorded.
        ci_draws, ci_seed: bootstrap over the scored samples (0: none).
        test_exclude: bool T, test faces left out of the threshold (exact copies of a train face, see
            :func:`duplicate_mask`: they are not unseen faces, and with more than ``q`` of them the
            threshold would be 0).

    Returns:
        ``{"fraction": float, "threshold": float, "quantile": q, "n_generated": M, "n_train": N,
        "n_test": T used for the threshold, "n_test_excluded": int, "closest_pairs": [{"sample": j, "train_index": i, "distance": d}] (closest first),
        "nn_distance_quantiles": {"generated": {...}, "test": {...}}}`` (+ ``"fraction_ci"``).
    """
    n_excl = 0
    if test_exclude is not None:
        n_excl = int(test_exclude.sum())
        test = test[~test_exclude.cpu()]
    d_test, _ = nearest_neighbours(test, train)
    thr = float(torch.quantile(d_test.double(), q))
    d_gen, i_gen = nearest_neighbours(generated, train)
    below = (d_gen.double() < thr).double().numpy()
    order = torch.argsort(d_gen)[:n_pairs]
    qs = (0.01, 0.05, 0.25, 0.5)
    out = {"fraction": float(below.mean()), "threshold": thr, "quantile": float(q),
           "n_generated": int(generated.shape[0]), "n_train": int(train.shape[0]), "n_test": int(test.shape[0]),
           "n_test_excluded": n_excl,
           "closest_pairs": [{"sample": int(j), "train_index": int(i_gen[j]), "distance": float(d_gen[j])}
                             for j in order.tolist()],
           "nn_distance_quantiles": {
               "generated": {str(x): float(v) for x, v in zip(qs, torch.quantile(d_gen.double(), torch.tensor(qs, dtype=torch.float64)))},
               "test": {str(x): float(v) for x, v in zip(qs, torch.quantile(d_test.double(), torch.tensor(qs, dtype=torch.float64)))}}}
    if ci_draws:
        from exprbench.metrics.families.bootstrap import mean_ci

        out["fraction_ci"] = mean_ci(below, ci_draws, ci_seed)
    return out


def pairs_grid(samples: torch.Tensor, neighbours: torch.Tensor, pad: int = 2) -> np.ndarray:
    """A uint8 gray image (white background) of the pairs, 4 per row: sample, then its neighbour
    ``pad`` pixels to the right, pairs ``4 * pad`` pixels apart.

    Args:
        samples, neighbours: uint8 P x 1 x H x W (P pairs).
    """
    p, _, h, w = samples.shape
    cols = 4 if p > 4 else 1  # 4 pairs per row
    rows = (p + cols - 1) // cols
    step = 2 * w + 5 * pad  # a pair (sample, pad, neighbour) and a gap of 4 pads to the next pair
    grid = np.full((rows * (h + pad) + pad, cols * step - 3 * pad), 255, dtype=np.uint8)
    for k in range(p):
        r, c = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + c * step
        grid[y : y + h, x : x + w] = samples[k, 0].numpy()
        grid[y : y + h, x + w + pad : x + 2 * w + pad] = neighbours[k, 0].numpy()
    return grid
