"""Former name of the metrics registry, kept for importers outside the metrics layer (the report, the suite).

Use :mod:`exprbench.metrics.spec`: ``Protocol`` is :class:`~exprbench.metrics.spec.MetricSpec`,
``PROTOCOLS`` is ``METRICS``, ``resolve_protocol`` is ``resolve_metric``, ``default_protocols`` is
``default_metrics``.
"""

from __future__ import annotations

from . import protocols as _builtin  # noqa: F401  (registers the built-in protocols)
from .names import BPD_IW_K, CAPABILITY_SEED, EDIT_FIT_PER_CLASS, EDIT_SEED, PROBE_TRAIN_PER_CLASS  # noqa: F401
from .spec import (METRICS, PROTOCOL_VERSION, MetricSpec, default_metrics, format_count,  # noqa: F401
                   parse_count, resolve_metric)

PROTOCOLS = METRICS
Protocol = MetricSpec
resolve_protocol = resolve_metric
default_protocols = default_metrics
