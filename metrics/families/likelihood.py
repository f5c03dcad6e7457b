"""Likelihood metrics (capability ``likelihood``) and the ``bpd`` protocol.

Mean test bits/dim from ``model.bits_per_dim`` (exact for flows, the negative ELBO for VAEs), and the
importance-weighted bound (Burda et al. 2016) with K samples for models with the capability
``iw_likelihood`` (contract method ``iw_bits_per_dim``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from exprbench.data import to_float

from exprbench.metrics.families.imageops import check_labels, check_model_images, need
from exprbench.metrics.protocols.names import BPD_IW_K

if TYPE_CHECKING:
    from exprbench.metrics.protocols.spec import Entry, MetricSpec
    from exprbench.metrics.run.context import EvalContext


@torch.no_grad()
def likelihood_metrics(model, images: torch.Tensor, labels: torch.Tensor, iw_k: int = 0, seed: int = 0,
                       batch_size: int = 256) -> dict:
    """Mean bits/dim of real images under the model (capability ``likelihood``).

    Args:
        model: a plugin with ``likelihood`` (``bits_per_dim``); with the capability ``iw_likelihood`` also
            ``iw_bits_per_dim`` (the IWAE bound).
        images: uint8 N x C x H x W real images; labels: int64 N (conditional models).
        iw_k: importance samples for the IWAE bound (0 = skip; only models with ``iw_likelihood``).
        seed: seed of the dequantization / posterior noise.

    Returns:
        ``{"bpd": mean bits/dim, "bpd_std": std over images, "exact": bool, "iw_bpd": float | None,
        "iw_k": int | None, "n": N}``.

    Raises:
        CapabilityMetricError: no ``likelihood`` capability or bad inputs.
    """
    need(model, "likelihood")
    images = check_model_images(images, model.spec, "images")
    labels = check_labels(labels, images.shape[0], model.spec.num_classes, "labels")
    g = torch.Generator().manual_seed(seed)
    bpd = torch.cat([model.bits_per_dim(to_float(images[i : i + batch_size]), labels[i : i + batch_size],
                                        generator=g).float().cpu() for i in range(0, images.shape[0], batch_size)])
    iw = None
    if iw_k and "iw_likelihood" in model.capabilities:
        g = torch.Generator().manual_seed(seed)
        iw = float(torch.cat([model.iw_bits_per_dim(to_float(images[i : i + batch_size]), labels[i : i + batch_size],
                                                    k=iw_k, generator=g).float().cpu()
                              for i in range(0, images.shape[0], batch_size)]).mean())
    return {"bpd": float(bpd.mean()), "bpd_std": float(bpd.std()) if bpd.numel() > 1 else 0.0,
            "exact": bool(model.likelihood_exact), "iw_bpd": iw, "iw_k": int(iw_k) if iw is not None else None,
            "n": int(images.shape[0])}


def compute_bpd(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """Mean bits/dim (> 0) of real test images (exact for flows, ELBO for VAEs) plus the IWAE bound with
    :data:`BPD_IW_K` samples for models with ``iw_likelihood``; no real-data reference."""
    iw_k = BPD_IW_K
    imgs, labs = ctx.test_subset(spec.n_samples, spec.seed)
    res = likelihood_metrics(ctx.model, imgs, labs, iw_k=iw_k, seed=spec.seed, batch_size=ctx.model_batch_size)
    kind = "exact" if res["exact"] else "bound (negative ELBO)"
    return {"value": res["bpd"], "n_samples": res["n"],
            "details": {"kind": kind, "exact": res["exact"], "bpd_std_over_images": res["bpd_std"],
                        "iw_bpd": res["iw_bpd"], "iw_k": res["iw_k"], "split": "test (PrivateTest)",
                        "units": "bits per dimension (C x H x W), 8-bit discrete pixel values"}}
