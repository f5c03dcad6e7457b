"""How much a conditional generator's output depends on the asked-for class c (the ``c_response`` protocol).

For n latents and two different classes c1 != c2, the mean L1 distance (pixels on the [0, 1] scale)
between G(z, c1) and G(z, c2) (same z, another c), divided by the mean L1 distance between G(z, c1)
and G(z', c1) (another z, the same c). A decoder that ignores c scores near 0 (the committed CVAE:
0.026); the cGAN scores about 0.27. It reads ``model.sample(n, labels, generator)`` three times with
generators of fixed seeds, so it assumes, as every plugin here does, that ``sample`` draws its latents
from the generator independently of the labels it is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from exprbench.data import to_uint8

from exprbench.metrics.families.fidelity_inputs import MetricInputError

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext


def _draw(model, labels: torch.Tensor, seed: int, batch_size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = [to_uint8(model.sample(len(lab), labels=lab, generator=g)).cpu() for lab in labels.split(batch_size)]
    return torch.cat(out).float() / 255.0


def c_response(model, n: int, k: int, seed: int, batch_size: int = 256) -> dict:
    """The response of samples to c relative to z (module docstring).

    Args:
        model: a plugin with ``sample`` and ``conditional``; n: latents (pairs); k: number of classes (>= 2);
        seed: seed of the labels and of the latents (the second z set uses ``seed + 1``).

    Returns:
        ``{"value": by_c / by_z, "by_c": mean L1 same z, "by_z": mean L1 same c, "n_pairs": pairs with c1 != c2}``.

    Raises:
        ValueError: k < 2 or n < 2.
    """
    if k < 2 or n < 2:
        raise ValueError(f"c_response needs at least 2 classes and 2 samples, got k={k}, n={n}")
    g = torch.Generator().manual_seed(seed)
    c1 = torch.randint(0, k, (n,), generator=g)
    c2 = (c1 + torch.randint(1, k, (n,), generator=g)) % k  # always another class
    base = _draw(model, c1, seed, batch_size)
    by_c = (_draw(model, c2, seed, batch_size) - base).abs().mean()
    by_z = (_draw(model, c1, seed + 1, batch_size) - base).abs().mean()
    return {"value": float(by_c / by_z) if float(by_z) > 0 else None, "by_c": float(by_c), "by_z": float(by_z),
            "n_pairs": n}


def compute_c_response(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """``c_response``: :func:`c_response` of the model on ``spec.n_samples`` latents (no real-data reference).

    Raises:
        MetricInputError: the "model" is a set of given images (nothing to hold fixed).
    """
    if not callable(getattr(ctx.model, "sample", None)):
        raise MetricInputError(f"{spec.name}: needs a model that samples from latents, not given images")
    res = c_response(ctx.model, spec.n_samples, ctx.k, spec.seed, ctx.batch_size)
    return {"value": res.pop("value"), "n_samples": spec.n_samples, "extractor_sha256": None,
            "details": {**res, "statistic": "mean L1 between samples of one z under two classes / between samples of "
                                             "one class under two z (pixels in [0, 1])"}}
