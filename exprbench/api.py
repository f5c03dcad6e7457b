"""exprbench's Python API (issue "a Python API"): what torch-fidelity's ``calculate_metrics`` and clean-fid's
``compute_fid`` give their users, with this benchmark's protocols and real-data references.

* :func:`score` scores images from anywhere (a folder of 48x48 PNGs, an ``.npz``/``.npy``, or an array or
  tensor) with the protocols that apply, as ``exprbench evaluate --images`` does;
* :func:`load` gives a trained run's plugin, ready to ``sample``.

The CLI's ``evaluate --images`` and ``sample`` are built on the same functions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np


def _as_uint8(images) -> np.ndarray:
    """A tensor/array of images -> uint8 N x C x H x W (float input in [-1, 1] or [0, 1] is quantized).

    Raises:
        UserError: not 3-D or 4-D, or float values outside [-1, 1].
    """
    from exprbench.core.errors import UserError

    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.ndim not in (3, 4):
        raise UserError(f"score: images must be N x H x W or N x C x H x W, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise UserError(f"score: images must be uint8 (0..255) or float, got dtype {arr.dtype}")
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1.0 or hi > 1.0:
        raise UserError(f"score: float images must lie in [-1, 1] (or [0, 1]), got values in [{lo:.3g}, {hi:.3g}]")
    x = (arr + 1.0) / 2.0 if lo < 0 else arr  # [-1, 1] as exprbench's generators give them, else [0, 1]
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def score(images, labels=None, metrics: Sequence[str] | None = None, device: str = "auto",
          data: str | os.PathLike | None = None, details: bool = False) -> dict:
    """Score generated images with exprbench's protocols (against FER2013: ``data`` or ``$EXPRBENCH_DATA``).

    Args:
        images: a folder of 48x48 images, an ``.npz`` (``images``, optional ``labels``) or ``.npy`` path, or an
            array / tensor N x H x W or N x C x H x W: uint8 0..255, or float in [-1, 1] (or [0, 1]).
        labels: class indices (fer7 order) or emotion names, one per image (a sequence, array, tensor or a file
            path); enables the class-aware protocols.
        metrics: protocol names (default: the default set, renamed to the count given when fewer images than
            a protocol takes are given, e.g. ``fid60_train``).
        device: ``auto``, ``cpu`` or ``cuda``; data: the FER2013 zip, csv or folder.
        details: return the whole eval.json entries instead of the values.

    Returns:
        ``{protocol: value}`` (None where a protocol was skipped; ``details=True``: ``{protocol: entry}`` with
        status, reason, interval, real-data reference under ``"references"``).

    Raises:
        UserError: bad images or labels, an unknown protocol, one that asked by name cannot be fed.
    """
    from exprbench.metrics.run.images_eval import evaluate_images

    with tempfile.TemporaryDirectory(prefix="exprbench-score-") as tmp:
        src, lab = images, labels
        if not isinstance(images, (str, os.PathLike)):
            src = Path(tmp) / "images.npz"
            np.savez(src, images=_as_uint8(images))
        if labels is not None and not isinstance(labels, (str, os.PathLike)):
            lab = Path(tmp) / "labels.npy"
            arr = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
            np.save(lab, arr if arr.dtype.kind in "iu" else arr.astype(str))
        res = evaluate_images(src, labels=lab, out=Path(tmp) / "out", metrics=list(metrics) if metrics else None,
                              device=device, data=data)
    if details:
        return {**res["metrics"], "references": res.get("references", {})}
    return {name: e.get("value") for name, e in res["metrics"].items()}


def load(run_dir: str | os.PathLike, device: str = "cpu"):
    """A trained run's model plugin at its newest checkpoint (or published weights), ready to
    ``sample(n, labels=None, generator=None)`` -> float32 n x C x H x W in [-1, 1].

    Args:
        run_dir: a run directory (checkpoints) or a published one (``weights.safetensors``); device: where it runs.

    Raises:
        UserError: no run there; CheckpointError: weights or a checkpoint that do not verify.
    """
    from exprbench.runs.loader import load_trained

    return load_trained(run_dir, device)[1]
