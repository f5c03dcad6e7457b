"""Metrics: registered protocols (one declared function each) over the FER2013 evaluator's feature space.

Modules (imported lazily, so ``exprbench --help`` stays fast):

* :mod:`.spec` - :class:`~.spec.MetricSpec`, :func:`~.spec.register_metric` and the registry accessors
  (``METRICS``, ``resolve_metric``, ``higher_is_better``, ``table_of``, ``LEADERBOARD_TABLES``, ...).
* :mod:`.protocols` - the built-in protocols (``fid10k_train``, ``kid10k_train``, ``pr10k_train``,
  ``ifid_train``, ``acc_gen``, ``cas``, ...), each declared in one place.
* the families, each beside its math: :mod:`.fidelity_metrics` (fid, kid, pr, dc, mem), :mod:`.classaware`,
  :mod:`.encoding`, :mod:`.translation`, :mod:`.editing`, :mod:`.likelihood`.
* :mod:`.evaluator` - the shipped FER2013 classifier (weights + card under ``weights/``), registered
  with torch-fidelity as the ``fer-evaluator`` feature extractor (:mod:`.tf_extractor`).
* :mod:`.evaluate` - :func:`evaluate_run`, which writes a run's ``eval.json`` and figure inputs.
"""

from __future__ import annotations

__all__ = ["evaluate_run", "load_evaluator", "resolve_metric", "METRICS"]


def __getattr__(name: str):
    if name == "evaluate_run":
        from .evaluate import evaluate_run

        return evaluate_run
    if name == "load_evaluator":
        from .evaluator import load_evaluator

        return load_evaluator
    if name in ("resolve_metric", "METRICS"):
        from . import spec

        spec._load_builtin()
        return getattr(spec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
