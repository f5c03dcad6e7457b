"""Metrics: the FER2013 evaluator network, fidelity metrics through torch-fidelity, class-aware metrics.

Modules (imported lazily, so ``exprbench --help`` stays fast):

* :mod:`.evaluator` - the shipped FER2013 classifier (weights + card under ``weights/``), registered
  with torch-fidelity as the ``fer-evaluator`` feature extractor.
* :mod:`.fidelity` - FID, KID, precision/recall and intra-class FID via ``torch_fidelity.calculate_metrics``.
* :mod:`.classaware` - label accuracy (GAN-test) and the Classification Accuracy Score (CAS).
* :mod:`.registry` - protocol names (``fid10k_train``, ``kid10k_train``, ``pr10k_train``, ``ifid_train``,
  ``acc_gen``, ``cas``, ...).
* :mod:`.evaluate` - :func:`evaluate_run`, which writes a run's ``eval.json``.
"""

from __future__ import annotations

__all__ = ["evaluate_run", "load_evaluator", "resolve_protocol", "PROTOCOLS"]


def __getattr__(name: str):
    if name == "evaluate_run":
        from .evaluate import evaluate_run

        return evaluate_run
    if name == "load_evaluator":
        from .evaluator import load_evaluator

        return load_evaluator
    if name in ("resolve_protocol", "PROTOCOLS"):
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
